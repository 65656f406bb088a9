package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"
)

// RunConfig is the "run" section: the whole lifecycle from one configuration.
type RunConfig struct {
	// Supernet is an existing supernet checkpoint; empty trains one with the train section.
	Supernet string `mapstructure:"supernet"`
	// Budgets are targets, each "Nx" (N times fewer unique parameters than the supernet) or
	// any --target form ("macs=1e6", "latency_ms=0.5,params=40000").
	Budgets []string `mapstructure:"budgets"`
	// Expand adds the expanded model (layer reuse + transforms) for each budget.
	Expand bool `mapstructure:"expand"`
	// Scratch trains a model of the extracted size from random weights for the fine-tuning
	// steps, as a baseline.
	Scratch bool `mapstructure:"scratch"`
	// Baselines measures plain-slice and random-unit extractions of the same sizes.
	Baselines bool `mapstructure:"baselines"`
	// LatencyBatch and LatencyRepeats configure the latency table and measurements.
	LatencyBatch   int `mapstructure:"latency_batch"`
	LatencyRepeats int `mapstructure:"latency_repeats"`
}

func defaultRunConfig() RunConfig {
	return RunConfig{Budgets: []string{"2x", "4x", "8x"}, Expand: true, Scratch: true, Baselines: true,
		LatencyBatch: 1, LatencyRepeats: 20}
}

// targets parses the budgets, refusing duplicates.
func (r RunConfig) targets() ([]budget.Target, error) {
	var out []budget.Target
	seen := map[string]bool{}
	for i, b := range r.Budgets {
		t, err := budget.ParseFlag(b)
		if err != nil {
			return nil, fmt.Errorf("%w: run.budgets[%d] %q: %w", errConfig, i, b, err)
		}
		if seen[t.String()] {
			return nil, fmt.Errorf("%w: run.budgets[%d] %q repeats an earlier budget", errConfig, i, b)
		}
		seen[t.String()] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: run.budgets is empty", errConfig)
	}
	return out, nil
}

func (a *app) runCmd() *cobra.Command {
	var force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "The whole lifecycle: train a supernet, then extract, expand, fine-tune and report for each budget",
		Example: `  ofa run --embedded --out runs/demo                         # quick demo on the embedded subset
  ofa run --config configs/fashion-mnist.yaml --out runs/full
  ofa run --supernet runs/fmnist/supernet.safetensors --budgets 2x,4x,8x --out runs/report`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			targets, err := cfg.Run.targets()
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(cfg.Out, "report.md")); err == nil && !force {
				return fmt.Errorf("%w: %s already holds a report: use --force to replace it", errUsage, cfg.Out)
			}
			return a.lifecycle(cmd.Context(), cfg, targets, force)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&force, "force", false, "replace an existing report (and retrain in its directory)")
	fs.String("out", "", "report directory (out)")
	fs.String("supernet", "", "use this supernet instead of training one (run.supernet)")
	fs.StringSlice("budgets", nil, "budgets, e.g. 2x,4x,8x (run.budgets)")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files (data.dir)")
	fs.Bool("embedded", false, "use the embedded subset (data.embedded)")
	fs.Int("epochs", 0, "supernet epochs (train.epochs)")
	fs.Int("finetune-epochs", 0, "fine-tuning epochs (finetune.epochs)")
	for flag, key := range map[string]string{"out": "out", "supernet": "run.supernet", "budgets": "run.budgets",
		"data": "data.dir", "embedded": "data.embedded", "epochs": "train.epochs", "finetune-epochs": "finetune.epochs"} {
		fk.add(fs, flag, key)
	}
	return cmd
}

func (a *app) lifecycle(ctx context.Context, cfg Config, targets []budget.Target, force bool) error {
	start := time.Now()
	out := cfg.Out
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	sp, err := loadSplits(cfg.Data)
	if err != nil {
		return err
	}
	a.say("== data: %s", sp.source)
	rep := &report.Report{Title: "ofa lifecycle report"}
	rep.Notes = append(rep.Notes, "data: "+sp.source, "BLAS: "+nn.Backend(),
		fmt.Sprintf("splits: train %d, validation %d, test %d", sp.train.N(), sp.val.N(), sp.test.N()))

	// 1. the supernet
	var sn *checkpoint.Model
	if cfg.Run.Supernet != "" {
		if sn, err = checkpoint.LoadModel(cfg.Run.Supernet); err != nil {
			return err
		}
		if sn.Kind != checkpoint.KindSupernet {
			return fmt.Errorf("%w: run.supernet %s is a %s model, not a supernet", errConfig, cfg.Run.Supernet, sn.Kind)
		}
		a.say("== supernet: %s", cfg.Run.Supernet)
		rep.Notes = append(rep.Notes, "supernet: "+cfg.Run.Supernet)
	} else {
		a.say("== 1/3 training the supernet")
		tc := cfg
		tc.Out = filepath.Join(out, "supernet")
		res, err := a.train(ctx, tc, false, force)
		if err != nil {
			return err
		}
		sn = res.model
		rep.Notes = append(rep.Notes, fmt.Sprintf("supernet trained for %d steps (%s)", res.steps, tc.Out))
		rep.Losses = append(rep.Losses, res.curve.lossCurve("supernet"))
		rep.Accuracies = append(rep.Accuracies, res.curve.accCurve("supernet (largest, test)", "largest"))
	}
	for _, t := range targets {
		b := extract.Resolve(t, sn.Arch)
		if _, err := extract.Greedy(extract.CostModel{Arch: sn.Arch}, uniformScores(sn.Arch), b, cfg.Extract.Floors, extract.DepthPrefix); err != nil {
			return fmt.Errorf("budget %s: %w", t, err)
		}
	}

	// 2. latency table
	a.say("== 2/3 measuring the latency table")
	lc := extract.DefaultLatencyConfig()
	lc.Batch, lc.Repeats = cfg.Run.LatencyBatch, cfg.Run.LatencyRepeats
	table, err := extract.MeasureLatency(sn.Arch, lc, nil)
	if err != nil {
		return err
	}
	latencyPath := filepath.Join(out, "latency.json")
	if err := table.Save(latencyPath); err != nil {
		return err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("latency: batch %d, median of %d runs; the table predicts whole-model latency within %.1f%% on average (%s)",
		lc.Batch, lc.Repeats, table.MeanAbsErrorPct, latencyPath))
	// identical architectures (an extraction and its baselines) share one measurement
	timed := map[string]float64{}
	measure := func(ar arch.Arch) (float64, error) {
		key := ar.JSON()
		if ms, ok := timed[key]; ok {
			return ms, nil
		}
		ms, err := extract.TimeModel(ar, lc)
		timed[key] = ms
		return ms, err
	}

	ecfg := cfg
	ecfg.Extract.LatencyTable = latencyPath
	env, err := newExtractEnv(ecfg, sn, sp)
	if err != nil {
		return err
	}
	refAcc, err := env.testAccuracy(sn.Arch, sn.Params)
	if err != nil {
		return err
	}
	refLat, err := measure(sn.Arch)
	if err != nil {
		return err
	}
	refCost := sn.Arch.ModelCost()
	rep.Reference = report.Row{Budget: "1x", Variant: "supernet (largest)", Params: refCost.Params, Layers: len(sn.Arch.Layers), Positions: len(sn.Arch.Layers),
		MACs: refCost.MACs, LatencyMS: refLat, Accuracy: refAcc}

	// 3. each budget
	a.say("== 3/3 budgets: %s", strings.Join(cfg.Run.Budgets, ", "))
	for i, t := range targets {
		name := cfg.Run.Budgets[i]
		dir := filepath.Join(out, "budgets", safeName(name))
		a.say("-- budget %s (%s)", name, t)
		rows, curves, err := a.runBudget(ctx, cfg, env, sn, t, name, dir, sp, measure)
		if err != nil {
			return fmt.Errorf("budget %s: %w", name, err)
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Accuracies = append(rep.Accuracies, curves...)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("total wall time %.1f s", time.Since(start).Seconds()))
	if err := rep.Write(out); err != nil {
		return err
	}
	a.say("== report: %s", filepath.Join(out, "report.md"))
	for _, row := range rep.Rows {
		a.say("  %-5s %-22s params %7d  layers %d/positions %2d  MACs %9d  %7.3f ms  test %6.2f%%", row.Budget, row.Variant,
			row.Params, row.Layers, row.Positions, row.MACs, row.LatencyMS, 100*row.Accuracy)
	}
	a.emit(map[string]any{"command": "run", "out": out, "report": filepath.Join(out, "report.md"), "reference": rep.Reference,
		"rows": rep.Rows, "seconds": time.Since(start).Seconds()})
	return nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// uniformScores lets Greedy check feasibility before anything is scored.
func uniformScores(a arch.Arch) *extract.Scores {
	s := &extract.Scores{Layers: make([]float64, len(a.Layers))}
	for _, l := range a.Layers {
		h, n := make([]float64, l.Heads), make([]float64, l.MLP)
		for i := range h {
			h[i] = 1
		}
		for i := range n {
			n[i] = 1
		}
		s.Heads, s.Neurons = append(s.Heads, h), append(s.Neurons, n)
	}
	return s
}

// runBudget extracts, fine-tunes, expands and trains the baselines for one budget.
func (a *app) runBudget(ctx context.Context, cfg Config, env *extractEnv, sn *checkpoint.Model, t budget.Target, name, dir string,
	sp *splits, measure func(arch.Arch) (float64, error)) ([]report.Row, []report.Curve, error) {
	var rows []report.Row
	var curves []report.Curve
	row := func(variant string, m *checkpoint.Model, acc float64, steps int, path string) error {
		c := m.Arch.ModelCost()
		lat, err := measure(m.Arch)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(cfg.Out, path)
		rows = append(rows, report.Row{Budget: name, Variant: variant, Params: c.Params, Layers: len(m.Arch.Layers), Positions: m.Arch.Depth(), MACs: c.MACs,
			LatencyMS: lat, Accuracy: acc, Steps: steps, Model: rel})
		a.say("   %-22s params %7d  MACs %9d  test %6.2f%%", variant, c.Params, c.MACs, 100*acc)
		return nil
	}
	// trained fine-tunes m (from teacher; from the labels alone when teacher is nil) into
	// dir/sub and reports it as variant.
	trained := func(variant, sub, title string, c Config, m, teacher *checkpoint.Model) (*finetuneResult, error) {
		r, err := a.finetune(ctx, c, m, teacher, sp, filepath.Join(dir, sub), name+" "+title)
		if err != nil {
			return nil, err
		}
		return r, row(variant, r.Model, r.Test, r.Steps, r.Path)
	}
	core := cfg.Extract.Core()
	tt := t
	res, err := env.run(core, extract.Selection{Target: &tt, TargetFrom: "run.budgets"}, nil)
	if err != nil {
		return nil, nil, err
	}
	exDir := filepath.Join(dir, "extracted")
	if err := os.MkdirAll(exDir, 0o755); err != nil {
		return nil, nil, err
	}
	exPath := filepath.Join(exDir, fileModel)
	if err := saveExtracted(exPath, filepath.Join(exDir, fileManifest), sn, res); err != nil {
		return nil, nil, err
	}
	extracted, err := checkpoint.LoadModel(exPath)
	if err != nil {
		return nil, nil, err
	}
	acc, err := env.testAccuracy(res.Arch, res.Params)
	if err != nil {
		return nil, nil, err
	}
	if err := row("extracted", extracted, acc, 0, exPath); err != nil {
		return nil, nil, err
	}
	if cfg.Run.Baselines {
		for _, order := range []string{extract.OrderNone, extract.OrderRandom} {
			c := core
			c.Order = order
			sub := res.Subnet
			b, err := env.run(c, extract.Selection{}, &sub)
			if err != nil {
				return nil, nil, err
			}
			acc, err := env.testAccuracy(b.Arch, b.Params)
			if err != nil {
				return nil, nil, err
			}
			variant := map[string]string{extract.OrderNone: "plain slices", extract.OrderRandom: "random units"}[order]
			if err := row(variant, &checkpoint.Model{Arch: b.Arch}, acc, 0, exPath); err != nil {
				return nil, nil, err
			}
		}
	}
	ft, err := trained("extracted+finetune", "finetuned", "finetune", cfg, extracted, sn)
	if err != nil {
		return nil, nil, err
	}
	curves = append(curves, valCurve(name+" extracted+finetune (val)", ft))
	if cfg.Run.Expand {
		em, err := a.extractForExpansion(env, core, t, sn, sp, cfg.Expand, dir)
		if err != nil {
			return nil, nil, err
		}
		eft, err := trained("expanded+finetune", "expanded-finetuned", "expanded", cfg, em, sn)
		if err != nil {
			return nil, nil, err
		}
		curves = append(curves, valCurve(name+" expanded+finetune (val)", eft))
	}
	if cfg.Run.Scratch {
		p, err := supernet.NewParamsWith(extracted.Arch, tensor.Float32, cfg.Model.InitSeed, cfg.Model.InitOptions())
		if err != nil {
			return nil, nil, err
		}
		fresh := &checkpoint.Model{Kind: checkpoint.KindFinetuned, Arch: extracted.Arch, Params: p, Preprocess: sn.Preprocess,
			Extra: map[string]string{"note": "trained from scratch"}}
		sc := cfg
		sc.Finetune.Steps = ft.Steps // the same number of steps as fine-tuning
		sc.Finetune.LR = cfg.Train.LR
		if _, err := trained("scratch (same size)", "scratch", "scratch", sc, fresh, nil); err != nil {
			return nil, nil, err
		}
	}
	return rows, curves, nil
}

// extractForExpansion extracts a model whose expansion fits the budget's unique-parameter
// limit: the transforms' own parameters are taken from the extraction's budget, and the
// extraction is repeated with a smaller budget until the expanded model fits.
func (a *app) extractForExpansion(env *extractEnv, core extract.Config, t budget.Target, sn *checkpoint.Model, sp *splits,
	ec ExpandConfig, dir string) (*checkpoint.Model, error) {
	b := extract.Resolve(t, sn.Arch)
	limit := b.Params
	target := budget.Target{Params: b.Params, MACs: b.MACs, LatencyMS: 0}
	for try := 0; try < 6; try++ {
		res, err := env.run(core, extract.Selection{Target: &target, TargetFrom: "run.budgets (room left for expansion)"}, nil)
		if err != nil {
			return nil, err
		}
		sub := filepath.Join(dir, "extracted-for-expansion")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, err
		}
		path := filepath.Join(sub, fileModel)
		if err := saveExtracted(path, filepath.Join(sub, fileManifest), sn, res); err != nil {
			return nil, err
		}
		m, err := checkpoint.LoadModel(path)
		if err != nil {
			return nil, err
		}
		em, err := expandModel(m, ec, sp)
		if err != nil {
			return nil, err
		}
		got := em.Arch.ModelCost().Params
		if limit == 0 || got <= limit {
			return em, nil
		}
		target.Params -= got - limit + int64(math.Ceil(0.01*float64(limit)))
	}
	return nil, fmt.Errorf("could not fit the expanded model within %d unique params", limit)
}

func valCurve(name string, r *finetuneResult) report.Curve {
	c := report.Curve{Name: name}
	for _, e := range r.Curve {
		for _, s := range e.Subnets {
			c.X, c.Y = append(c.X, float64(e.Step)), append(c.Y, 100*s.Accuracy)
		}
	}
	return c
}

func (h *curveHook) lossCurve(name string) report.Curve {
	c := report.Curve{Name: name}
	for i, l := range h.losses {
		c.X, c.Y = append(c.X, float64(h.steps[i])), append(c.Y, l)
	}
	return c
}

func (h *curveHook) accCurve(name, subnet string) report.Curve {
	c := report.Curve{Name: name}
	for _, e := range h.evals {
		for _, s := range e.Subnets {
			if s.Name == subnet {
				c.X, c.Y = append(c.X, float64(e.Step)), append(c.Y, 100*s.Accuracy)
			}
		}
	}
	return c
}

var _ = train.Named{}
