package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// Files and directories of a lifecycle's output directory.
const (
	DirSupernet    = "supernet"
	DirBudgets     = "budgets"
	FileLatency    = "latency.json"
	FileReport     = "report.md"
	fileReportJSON = "report.json"
	fileReportCSV  = "report.csv"
	dirPlots       = "plots"
)

// LifecycleOptions configures Lifecycle beyond the configuration.
type LifecycleOptions struct {
	Output
	// Dir receives everything: the supernet run, the latency table, a directory per
	// budget with its models, and the report.
	Dir string
	// Resume continues a lifecycle that was stopped: steps whose outputs in Dir are
	// complete are loaded instead of redone; the others are redone (supernet training
	// continues from its resume state). Without Resume, earlier outputs in Dir are removed.
	Resume bool
	// StoredConfig is the configuration as stored in resume files and model provenance.
	StoredConfig []byte
}

// Lifecycle trains (or loads) a supernet, measures a latency table, and for every budget
// of cfg.Run extracts, fine-tunes, expands and trains the baselines, then writes the
// report into opts.Dir and returns it. Every value is checked before any work starts.
func Lifecycle(ctx context.Context, cfg Config, opts LifecycleOptions) (*report.Report, error) {
	start := time.Now()
	out := opts.Dir
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets, err := cfg.Run.Targets()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if !opts.Resume {
		if err := clearLifecycle(out, cfg.Run.Supernet == ""); err != nil {
			return nil, err
		}
	}
	ds, err := LoadData(cfg.Data)
	if err != nil {
		return nil, err
	}
	opts.log("== data: %s", ds.Source)
	// the checks that need the architecture, before any work
	if cfg.Run.Supernet == "" {
		ar, _, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
		if err != nil {
			return nil, err
		}
		if err := cfg.Train.ValidateFor("train", ar); err != nil {
			return nil, err
		}
		if err := cfg.Finetune.ValidateFor("finetune", ar); err != nil {
			return nil, err
		}
		if err := feasible(ar, targets, cfg.Extract.Floors); err != nil {
			return nil, err
		}
	}
	if n := (ds.Train.N() + extractBatch - 1) / extractBatch; cfg.Extract.CalibrationBatches > n {
		return nil, fmt.Errorf("%w: extract.calibration_batches: got %d, the training split holds %d batches of %d", ErrConfig,
			cfg.Extract.CalibrationBatches, n, extractBatch)
	}
	rep := &report.Report{Title: "ofa lifecycle report"}
	rep.Notes = append(rep.Notes, "data: "+ds.Source, "BLAS: "+nn.Backend(),
		fmt.Sprintf("splits: train %d, validation %d, test %d", ds.Train.N(), ds.Val.N(), ds.Test.N()))

	// 1. the supernet
	sn, supernetPath, err := lifecycleSupernet(ctx, cfg, ds, opts, rep)
	if err != nil {
		return nil, err
	}
	if err := feasible(sn.Arch, targets, cfg.Extract.Floors); err != nil {
		return nil, err
	}
	sha, err := modelfile.FileSHA256(supernetPath)
	if err != nil {
		return nil, err
	}
	prov := &modelfile.Provenance{Supernet: supernetPath, SupernetSHA256: sha, Step: "extract", Config: string(opts.StoredConfig)}

	// 2. latency table
	opts.log("== 2/3 latency table")
	lc := extract.DefaultLatencyConfig()
	lc.Batch, lc.Repeats = cfg.Run.LatencyBatch, cfg.Run.LatencyRepeats
	latencyPath := filepath.Join(out, FileLatency)
	table, err := extract.LoadLatencyTable(latencyPath)
	if err != nil || !opts.Resume || table.Compatible(sn.Arch) != nil || table.Batch != lc.Batch {
		if table, err = extract.MeasureLatency(sn.Arch, lc, nil); err != nil {
			return nil, err
		}
		if err := table.Save(latencyPath); err != nil {
			return nil, err
		}
	} else {
		opts.log("   reusing %s", latencyPath)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("latency: batch %d, median of %d runs; the table predicts whole-model latency within %.1f%% on average (%s)",
		lc.Batch, lc.Repeats, table.MeanAbsErrorPct, latencyPath))
	timed := map[string]float64{} // identical architectures share one measurement
	measure := func(ar arch.Arch) (float64, error) {
		key := ar.JSON()
		if ms, ok := timed[key]; ok {
			return ms, nil
		}
		ms, err := extract.TimeModel(ar, lc)
		timed[key] = ms
		return ms, err
	}
	ex, err := NewExtractor(cfg, sn, ds, table)
	if err != nil {
		return nil, err
	}
	refAcc, err := ex.TestAccuracy(sn.Arch, sn.Params)
	if err != nil {
		return nil, err
	}
	refLat, err := measure(sn.Arch)
	if err != nil {
		return nil, err
	}
	refCost := sn.Arch.ModelCost()
	rep.Reference = report.Row{Budget: "1x", Variant: "supernet (largest)", Params: refCost.Params, Layers: len(sn.Arch.Layers),
		Positions: len(sn.Arch.Layers), MACs: refCost.MACs, LatencyMS: refLat, Accuracy: refAcc}

	// 3. each budget
	opts.log("== 3/3 budgets: %s", strings.Join(cfg.Run.Budgets, ", "))
	for i, t := range targets {
		name := cfg.Run.Budgets[i]
		opts.log("-- budget %s (%s)", name, t)
		b := &budgetRun{cfg: cfg, opts: opts, ex: ex, ds: ds, target: t, name: name, prov: prov,
			dir: filepath.Join(out, DirBudgets, safeName(name)), root: out, measure: measure}
		if err := b.run(ctx); err != nil {
			return nil, fmt.Errorf("budget %s: %w", name, err)
		}
		rep.Rows = append(rep.Rows, b.rows...)
		rep.Accuracies = append(rep.Accuracies, b.curves...)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("total wall time %.1f s", time.Since(start).Seconds()))
	if err := rep.Write(out); err != nil {
		return nil, err
	}
	return rep, nil
}

// clearLifecycle removes the outputs of an earlier lifecycle in out (and its supernet run
// when a new one will be trained), so a fresh run never reuses them.
func clearLifecycle(out string, supernetToo bool) error {
	paths := []string{DirBudgets, FileLatency, FileReport, fileReportJSON, fileReportCSV, dirPlots}
	if supernetToo {
		paths = append(paths, DirSupernet)
	}
	for _, p := range paths {
		if err := os.RemoveAll(filepath.Join(out, p)); err != nil {
			return err
		}
	}
	return nil
}

// lifecycleSupernet loads run.supernet, or trains the supernet in Dir/supernet (continuing
// or reusing it when resuming).
func lifecycleSupernet(ctx context.Context, cfg Config, ds *Dataset, opts LifecycleOptions, rep *report.Report) (*modelfile.Model, string, error) {
	if path := cfg.Run.Supernet; path != "" {
		sn, err := modelfile.Load(path)
		if err != nil {
			return nil, "", err
		}
		if sn.Kind != modelfile.KindSupernet {
			return nil, "", fmt.Errorf("%w: run.supernet %s is a %s model, not a supernet", ErrConfig, path, sn.Kind)
		}
		opts.log("== supernet: %s", path)
		rep.Notes = append(rep.Notes, "supernet: "+path)
		return sn, path, nil
	}
	dir := filepath.Join(opts.Dir, DirSupernet)
	path := filepath.Join(dir, FileSupernet)
	to := TrainOptions{Output: opts.Output, Dir: dir, StoredConfig: opts.StoredConfig}
	if opts.Resume {
		if sn, err := modelfile.Load(path); err == nil {
			opts.log("== 1/3 supernet: reusing the finished run in %s", dir)
			rep.Notes = append(rep.Notes, "supernet: "+path+" (finished before the lifecycle was resumed)")
			return sn, path, nil
		}
		r, err := modelfile.LoadResume(filepath.Join(dir, FileResume))
		switch {
		case err == nil:
			if r.RunConfig != string(opts.StoredConfig) {
				return nil, "", fmt.Errorf("%w: %s was written with another configuration; resume with that one or start over with --force",
					ErrConfig, filepath.Join(dir, FileResume))
			}
			to.Resume = r
			opts.log("== 1/3 training the supernet: continuing at step %d", r.Step)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, "", err
		}
	}
	if to.Resume == nil {
		opts.log("== 1/3 training the supernet")
	}
	res, err := TrainSupernet(ctx, cfg, ds, to)
	if err != nil {
		return nil, "", err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("supernet trained for %d steps (%s)", res.Steps, dir))
	rep.Losses = append(rep.Losses, res.Losses)
	rep.Accuracies = append(rep.Accuracies, res.Accuracies)
	return res.Model, res.Path, nil
}

// feasible checks that every budget can be met by a subnet of supernet a.
func feasible(a arch.Arch, targets []budget.Target, f extract.Floors) error {
	for _, t := range targets {
		if err := extract.Feasible(extract.CostModel{Arch: a}, extract.Resolve(t, a), f); err != nil {
			return fmt.Errorf("budget %s: %w", t, err)
		}
	}
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

// budgetRun is one budget of a lifecycle: its models, rows and curves.
type budgetRun struct {
	cfg     Config
	opts    LifecycleOptions
	ex      *Extractor
	ds      *Dataset
	target  budget.Target
	name    string
	prov    *modelfile.Provenance
	dir     string
	root    string
	measure func(arch.Arch) (float64, error)
	rows    []report.Row
	curves  []report.Curve
}

// row adds a report row for a model of architecture a.
func (b *budgetRun) row(variant string, a arch.Arch, acc float64, steps int, path string) error {
	c := a.ModelCost()
	lat, err := b.measure(a)
	if err != nil {
		return err
	}
	rel := ""
	if path != "" {
		rel, _ = filepath.Rel(b.root, path)
	}
	b.rows = append(b.rows, report.Row{Budget: b.name, Variant: variant, Params: c.Params, Layers: len(a.Layers), Positions: a.Depth(),
		MACs: c.MACs, LatencyMS: lat, Accuracy: acc, Steps: steps, Model: rel})
	b.opts.log("   %-22s params %7d  MACs %9d  test %6.2f%%", variant, c.Params, c.MACs, 100*acc)
	return nil
}

// extracted loads the extraction in dir when resuming and complete, else extracts for
// target and writes it there.
func (b *budgetRun) extracted(sub string, t budget.Target, from string) (*modelfile.Model, *extract.Manifest, error) {
	dir := filepath.Join(b.dir, sub)
	if b.opts.Resume {
		if m, err := modelfile.Load(filepath.Join(dir, FileModel)); err == nil {
			var mf extract.Manifest
			if err := readJSON(filepath.Join(dir, FileManifest), &mf); err == nil {
				return m, &mf, nil
			}
		}
	}
	res, err := b.ex.Extract(b.cfg.Extract.Config, extract.Selection{Target: &t, TargetFrom: from}, nil)
	if err != nil {
		return nil, nil, err
	}
	m, err := b.ex.Model(res, b.prov)
	if err != nil {
		return nil, nil, err
	}
	if err := SaveModelDir(dir, m, map[string]any{FileManifest: res.Manifest}); err != nil {
		return nil, nil, err
	}
	return m, &res.Manifest, nil
}

// finetuned fine-tunes m into dir/sub (or loads that run when resuming), reporting it as
// variant.
func (b *budgetRun) finetuned(ctx context.Context, variant, sub, title string, c Config, m, teacher *modelfile.Model) (*FinetuneResult, error) {
	dir := filepath.Join(b.dir, sub)
	var r *FinetuneResult
	if b.opts.Resume {
		r, _ = LoadFinetuned(dir)
	}
	if r == nil {
		var err error
		if r, err = Finetune(ctx, c, m, teacher, b.ds, FinetuneOptions{Output: b.opts.Output, Title: b.name + " " + title, Dir: dir}); err != nil {
			return nil, err
		}
	}
	return r, b.row(variant, r.Model.Arch, r.Test, r.Steps, filepath.Join(dir, FileModel))
}

func (b *budgetRun) run(ctx context.Context) error {
	sn := b.ex.Supernet()
	em, mf, err := b.extracted("extracted", b.target, "run.budgets")
	if err != nil {
		return err
	}
	for _, w := range mf.Warnings {
		b.opts.log("   warning: %s", w)
	}
	acc, err := b.ex.TestAccuracy(em.Arch, em.Params)
	if err != nil {
		return err
	}
	if err := b.row("extracted", em.Arch, acc, 0, filepath.Join(b.dir, "extracted", FileModel)); err != nil {
		return err
	}
	if b.cfg.Run.Baselines {
		sizes := subnetOf(mf)
		for _, bl := range Baselines {
			c := b.cfg.Extract.Config
			c.Order = bl.Order
			res, err := b.ex.Extract(c, extract.Selection{}, &sizes)
			if err != nil {
				return err
			}
			acc, err := b.ex.TestAccuracy(res.Arch, res.Params)
			if err != nil {
				return err
			}
			if err := b.row(bl.Name, res.Arch, acc, 0, ""); err != nil {
				return err
			}
		}
	}
	ft, err := b.finetuned(ctx, "extracted+finetune", "finetuned", "finetune", b.cfg, em, sn)
	if err != nil {
		return err
	}
	b.curves = append(b.curves, named(b.name+" extracted+finetune (val)", ft.Curve))
	if b.cfg.Run.Expand {
		xm, err := b.expanded()
		if err != nil {
			return err
		}
		eft, err := b.finetuned(ctx, "expanded+finetune", "expanded-finetuned", "expanded", b.cfg, xm, sn)
		if err != nil {
			return err
		}
		b.curves = append(b.curves, named(b.name+" expanded+finetune (val)", eft.Curve))
	}
	if b.cfg.Run.Scratch {
		p, err := supernet.NewParams(em.Arch, tensor.Float32, b.cfg.Model.InitSeed)
		if err != nil {
			return err
		}
		fresh := &modelfile.Model{Kind: modelfile.KindFinetuned, Arch: em.Arch, Params: p, Preprocess: sn.Preprocess,
			Provenance: &modelfile.Provenance{Step: "scratch", Config: string(b.opts.StoredConfig)},
			Extra:      copyClasses(map[string]string{modelfile.KeyNote: "trained from scratch"}, sn)}
		sc := b.cfg
		sc.Finetune.Steps = ft.Steps // the same number of steps as fine-tuning
		sc.Finetune.LR = b.cfg.Train.LR
		if _, err := b.finetuned(ctx, fmt.Sprintf("scratch, %d steps", ft.Steps), "scratch", "scratch", sc, fresh, nil); err != nil {
			return err
		}
	}
	return nil
}

// expanded extracts a model whose expansion fits the budget's unique-parameter limit (the
// transforms' own parameters come out of the extraction's budget: the extraction is
// repeated with a smaller budget until the expanded model fits) and expands it.
func (b *budgetRun) expanded() (*modelfile.Model, error) {
	dir := filepath.Join(b.dir, "expanded")
	if b.opts.Resume {
		if m, err := modelfile.Load(filepath.Join(dir, FileModel)); err == nil {
			return m, nil
		}
	}
	sn := b.ex.Supernet()
	bud := extract.Resolve(b.target, sn.Arch)
	limit := bud.Params
	target := budget.Target{Params: bud.Params, MACs: bud.MACs}
	verify := b.ex.VerifyBatch()
	for try := 0; try < 6; try++ {
		res, err := b.ex.Extract(b.cfg.Extract.Config, extract.Selection{Target: &target, TargetFrom: "run.budgets (room left for expansion)"}, nil)
		if err != nil {
			return nil, err
		}
		m, err := b.ex.Model(res, b.prov)
		if err != nil {
			return nil, err
		}
		xm, err := Expand(m, b.cfg.Expand, verify)
		if err != nil {
			return nil, err
		}
		if got := xm.Arch.ModelCost().Params; limit == 0 || got <= limit {
			return xm, SaveModelDir(dir, xm, map[string]any{FileManifest: res.Manifest})
		} else {
			target.Params -= got - limit + int64(math.Ceil(0.01*float64(limit)))
		}
	}
	return nil, fmt.Errorf("could not fit the expanded model within %d unique params", limit)
}

// subnetOf is the subnet of the reordered supernet an extraction kept (its manifest's
// layers and sizes), for baselines of the same sizes.
func subnetOf(mf *extract.Manifest) arch.Subnet {
	var s arch.Subnet
	for _, l := range mf.Layers {
		s.Layers = append(s.Layers, arch.SubLayer{Layer: l.Layer, Heads: len(l.Heads), MLP: len(l.Neurons)})
	}
	return s
}

func named(name string, c report.Curve) report.Curve {
	c.Name = name
	return c
}
