package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
)

// ExtractConfig is the "extract" section: how units are scored and how sizes are chosen.
// Exactly one of ratios, thresholds, target or remote must be given (flags may give it).
type ExtractConfig struct {
	Criteria           extract.Criteria     `mapstructure:"criteria"`
	CalibrationBatches int                  `mapstructure:"calibration_batches"`
	Order              string               `mapstructure:"order"`
	Depth              string               `mapstructure:"depth"`
	Floors             extract.Floors       `mapstructure:"floors"`
	Search             extract.SearchConfig `mapstructure:"search"`
	ValExamples        int                  `mapstructure:"val_examples"`
	Seed               uint64               `mapstructure:"seed"`
	Ratios             extract.Ratios       `mapstructure:"ratios"`
	Thresholds         extract.Thresholds   `mapstructure:"thresholds"`
	Target             budget.Target        `mapstructure:"target"`
	Remote             budget.Source        `mapstructure:"remote"`
	// LatencyTable is a file written by `ofa latency-table`; needed for latency budgets
	// and reported latencies.
	LatencyTable string `mapstructure:"latency_table"`
	// Baselines also extracts the same sizes with plain leading slices and with random
	// units, and reports their accuracy.
	Baselines bool `mapstructure:"baselines"`
}

func defaultExtractConfig() ExtractConfig {
	d := extract.DefaultConfig()
	return ExtractConfig{Criteria: d.Criteria, CalibrationBatches: d.CalibrationBatches, Order: d.Order, Depth: d.Depth,
		Floors: d.Floors, Search: d.Search, ValExamples: d.ValExamples, Seed: d.Seed}
}

// Core returns the library's configuration.
func (e ExtractConfig) Core() extract.Config {
	return extract.Config{Criteria: e.Criteria, CalibrationBatches: e.CalibrationBatches, Order: e.Order, Depth: e.Depth,
		Floors: e.Floors, Search: e.Search, ValExamples: e.ValExamples, Seed: e.Seed}
}

// Validate checks the section (the choice of selection is checked when extracting).
func (e ExtractConfig) Validate() error { return e.Core().Validate() }

// selection builds the selection from the configuration, fetching a remote target.
func (e ExtractConfig) selection(ctx context.Context) (extract.Selection, error) {
	var sel extract.Selection
	n := 0
	if len(e.Ratios.Heads) > 0 || len(e.Ratios.MLP) > 0 {
		r := e.Ratios
		sel.Ratios, n = &r, n+1
	}
	if len(e.Thresholds.Heads) > 0 || len(e.Thresholds.MLP) > 0 {
		t := e.Thresholds
		sel.Thresholds, n = &t, n+1
	}
	if e.Target != (budget.Target{}) {
		t := e.Target
		sel.Target, sel.TargetFrom, n = &t, "local configuration", n+1
	}
	if e.Remote.URL != "" || len(e.Remote.EtcdEndpoints) > 0 {
		n++
		f, err := budget.Fetch(ctx, e.Remote)
		if err != nil {
			return sel, err
		}
		t := f.Target
		sel.Target, sel.TargetFrom = &t, f.From
	}
	if n != 1 {
		return sel, fmt.Errorf("%w: give exactly one of extract.ratios, extract.thresholds, extract.target or extract.remote (got %d)", errUsage, n)
	}
	if sel.Ratios != nil && len(sel.Ratios.MLP) == 0 {
		sel.Ratios.MLP = sel.Ratios.Heads
	}
	if sel.Ratios != nil && len(sel.Ratios.Heads) == 0 {
		sel.Ratios.Heads = sel.Ratios.MLP
	}
	if sel.Thresholds != nil && len(sel.Thresholds.MLP) == 0 {
		sel.Thresholds.MLP = sel.Thresholds.Heads
	}
	if sel.Thresholds != nil && len(sel.Thresholds.Heads) == 0 {
		sel.Thresholds.Heads = sel.Thresholds.MLP
	}
	return sel, nil
}

// floatList parses "0.5,0.25" (a single value applies to every layer when layers > 0).
func floatList(s string, layers int) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a number", errUsage, f)
		}
		out = append(out, v)
	}
	if len(out) == 1 && layers > 1 {
		for len(out) < layers {
			out = append(out, out[0])
		}
	}
	return out, nil
}

// Files of an extraction directory.
const (
	fileModel    = "model.safetensors"
	fileManifest = "manifest.json"
)

func (a *app) extractCmd() *cobra.Command {
	var supernetPath, out, target, ratios, mlpRatios, thresholds, mlpThresholds string
	var force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Derive a smaller model from a supernet by importance, for ratios, thresholds or a budget",
		Example: `  ofa extract --supernet runs/fmnist/supernet.safetensors --target 4x --out runs/fmnist/x4 --baselines
  ofa extract --supernet S --target macs=1000000,latency_ms=0.8 --latency-table latency.json --out x
  ofa extract --supernet S --ratios 0.5,0.5,0.25,0.25 --mlp-ratios 0.5 --out x
  ofa extract --supernet S --thresholds 0.3 --out x
  ofa extract --supernet S --target-url https://config.example/budgets/edge.json --out x
  ofa extract --supernet S --target-etcd http://127.0.0.1:2379 --target-key /ofa/budget --out x`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			if supernetPath == "" || out == "" {
				return fmt.Errorf("%w: --supernet and --out are required", errUsage)
			}
			m, err := checkpoint.LoadModel(supernetPath)
			if err != nil {
				return err
			}
			if m.Kind != checkpoint.KindSupernet {
				return fmt.Errorf("%w: %s is a %s model, not a supernet: extract from the supernet it came from", extract.ErrExtract, supernetPath, m.Kind)
			}
			layers := len(m.Arch.Layers)
			e := &cfg.Extract
			for _, f := range []struct {
				s   string
				dst *[]float64
			}{{ratios, &e.Ratios.Heads}, {mlpRatios, &e.Ratios.MLP}, {thresholds, &e.Thresholds.Heads}, {mlpThresholds, &e.Thresholds.MLP}} {
				if f.s != "" {
					if *f.dst, err = floatList(f.s, layers); err != nil {
						return err
					}
				}
			}
			if target != "" {
				if e.Target, err = budget.ParseFlag(target); err != nil {
					return fmt.Errorf("%w: --target: %w", errUsage, err)
				}
			}
			if err := refuseExistingModel(out, force); err != nil {
				return err
			}
			res, err := a.extract(cmd.Context(), cfg, m, supernetPath, out)
			if err != nil {
				return err
			}
			a.emit(res)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&supernetPath, "supernet", "", "supernet checkpoint")
	fs.StringVar(&out, "out", "", "output directory (model.safetensors, manifest.json)")
	fs.BoolVar(&force, "force", false, "replace an existing model in --out")
	fs.StringVar(&target, "target", "", `budget: "4x" (4x fewer params), "params=50000", "macs=1e6", "latency_ms=0.8", or several joined by commas`)
	fs.StringVar(&ratios, "ratios", "", "head compression ratio per layer, comma-separated (one value: every layer)")
	fs.StringVar(&mlpRatios, "mlp-ratios", "", "MLP width ratio per layer (default: --ratios)")
	fs.StringVar(&thresholds, "thresholds", "", "importance threshold per layer for heads (normalised scores in [0,1))")
	fs.StringVar(&mlpThresholds, "mlp-thresholds", "", "importance threshold per layer for neurons (default: --thresholds)")
	fs.String("target-url", "", "fetch the budget (JSON) from this http(s) URL (extract.remote.url)")
	fs.StringSlice("target-etcd", nil, "fetch the budget from these etcd v3 endpoints (extract.remote.etcd_endpoints)")
	fs.String("target-key", "", "etcd key holding the budget (extract.remote.etcd_key)")
	fs.String("latency-table", "", "latency table from `ofa latency-table` (extract.latency_table)")
	fs.String("order", "", "importance (default), none (plain slices) or random (extract.order)")
	fs.Bool("baselines", false, "also measure plain-slice and random-unit extractions of the same sizes (extract.baselines)")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files (data.dir)")
	fs.Bool("embedded", false, "use the embedded subset (data.embedded)")
	for flag, key := range map[string]string{"target-url": "extract.remote.url", "target-etcd": "extract.remote.etcd_endpoints",
		"target-key": "extract.remote.etcd_key", "latency-table": "extract.latency_table", "order": "extract.order",
		"baselines": "extract.baselines", "data": "data.dir", "embedded": "data.embedded"} {
		fk.add(fs, flag, key)
	}
	return cmd
}

// extractOutcome is what `ofa extract --json` prints.
type extractOutcome struct {
	Command   string             `json:"command"`
	Model     string             `json:"model"`
	Manifest  extract.Manifest   `json:"manifest"`
	TestAcc   float64            `json:"test_accuracy"`
	Baselines map[string]float64 `json:"baselines,omitempty"`
	Layers    []arch.Layer       `json:"layers"`
}

func (a *app) extract(ctx context.Context, cfg Config, m *checkpoint.Model, supernetPath, out string) (*extractOutcome, error) {
	e := cfg.Extract
	sel, err := e.selection(ctx)
	if err != nil {
		return nil, err
	}
	if sel.TargetFrom != "" && sel.Target != nil {
		a.say("target: %s (from %s)", sel.Target, sel.TargetFrom)
	}
	sp, err := loadSplits(cfg.Data)
	if err != nil {
		return nil, err
	}
	a.say("data: %s", sp.source)
	env, err := newExtractEnv(cfg, m, sp)
	if err != nil {
		return nil, err
	}
	defer env.close()
	res, err := env.run(e.Core(), sel, nil)
	if err != nil {
		return nil, err
	}
	acc, err := env.testAccuracy(res.Arch, res.Params)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(out, fileModel)
	if err := saveExtracted(path, filepath.Join(out, fileManifest), m, res); err != nil {
		return nil, err
	}
	mf := res.Manifest
	a.say("extracted %s: %d params (%.2fx fewer), %d MACs%s; verified against the supernet (max logit difference %.2g)",
		path, mf.Achieved.Params, mf.ParamsReduction, mf.Achieved.MACs, latencyText(mf.Achieved), mf.Verification.MaxAbsDiff)
	for i, l := range res.Arch.Layers {
		a.say("  layer %d (supernet layer %d): %d heads, MLP %d", i, mf.Layers[i].Layer, l.Heads, l.MLP)
	}
	a.say("test accuracy before fine-tuning: %.2f%%", 100*acc)
	o := &extractOutcome{Command: "extract", Model: path, Manifest: mf, TestAcc: acc, Layers: res.Arch.Layers}
	if e.Baselines {
		o.Baselines = map[string]float64{}
		for _, order := range []string{extract.OrderNone, extract.OrderRandom} {
			c := e.Core()
			c.Order = order
			sub := res.Subnet
			b, err := env.run(c, extract.Selection{}, &sub)
			if err != nil {
				return nil, err
			}
			if o.Baselines[order], err = env.testAccuracy(b.Arch, b.Params); err != nil {
				return nil, err
			}
			a.say("baseline %-6s (same sizes): test accuracy %.2f%%", order, 100*o.Baselines[order])
		}
	}
	return o, nil
}

func latencyText(c extract.Cost) string {
	if c.LatencyMS > 0 {
		return fmt.Sprintf(", %.3f ms predicted", c.LatencyMS)
	}
	return ""
}

// saveExtracted writes the model (with its manifest in the metadata) and the manifest.
func saveExtracted(path, manifestPath string, from *checkpoint.Model, res *extract.Result) error {
	mj, err := json.Marshal(res.Manifest)
	if err != nil {
		return err
	}
	em := &checkpoint.Model{Kind: checkpoint.KindExtracted, Arch: res.Arch, Params: res.Params, Preprocess: from.Preprocess,
		Extra: map[string]string{"manifest": string(mj)}}
	if err := checkpoint.SaveModel(path, em); err != nil {
		return err
	}
	pretty, _ := json.MarshalIndent(res.Manifest, "", "  ")
	return os.WriteFile(manifestPath, append(pretty, '\n'), 0o644)
}

// extractEnv holds the data and graphs an extraction (or several) needs.
type extractEnv struct {
	cfg     Config
	model   *checkpoint.Model
	calib   data.Batcher
	val     data.Batcher
	test    data.Batcher
	verify  data.Batch
	latency *extract.LatencyTable
	scores  map[string]*extract.Scores // by criteria, reused across extractions
}

const extractBatch = 100

func newExtractEnv(cfg Config, m *checkpoint.Model, sp *splits) (*extractEnv, error) {
	if err := sp.checkModel("the supernet", m); err != nil {
		return nil, err
	}
	calib, err := sp.evalLoader(sp.train, extractBatch, m.Preprocess)
	if err != nil {
		return nil, err
	}
	valSet := sp.val
	if n := cfg.Extract.ValExamples; n > 0 && n < valSet.N() {
		valSet = valSet.head(n)
	}
	val, err := sp.evalLoader(valSet, extractBatch, m.Preprocess)
	if err != nil {
		return nil, err
	}
	test, err := sp.evalLoader(sp.test, 250, m.Preprocess)
	if err != nil {
		return nil, err
	}
	env := &extractEnv{cfg: cfg, model: m, calib: calib, val: val, test: test, scores: map[string]*extract.Scores{}}
	val.Batch(0, 0, &env.verify)
	if path := cfg.Extract.LatencyTable; path != "" {
		if env.latency, err = extract.LoadLatencyTable(path); err != nil {
			return nil, err
		}
		if err := env.latency.Compatible(m.Arch); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return env, nil
}

func (env *extractEnv) close() {}

// run extracts with core settings; subnet, if set, fixes the sizes (baselines).
func (env *extractEnv) run(core extract.Config, sel extract.Selection, subnet *arch.Subnet) (*extract.Result, error) {
	m := env.model
	key := fmt.Sprint(core.Criteria, core.CalibrationBatches)
	in := extract.Input{Arch: m.Arch, Params: m.Params, Calibration: env.calib, VerifyBatch: env.verify,
		Latency: env.latency, Scores: env.scores[key]}
	in.Fitness = func(p *supernet.Params) (extract.Fitness, func()) {
		ev := train.NewEvaluator(m.Arch, p, ops(env.cfg.Ops), env.val, extractBatch)
		return func(s arch.Subnet) (float64, error) {
			acc, _, err := ev.Evaluate(s)
			return acc, err
		}, ev.Close
	}
	if subnet != nil {
		sel = extract.Selection{Subnet: subnet}
	}
	res, err := extract.Extract(in, core, sel)
	if err != nil {
		return nil, err
	}
	env.scores[key] = res.Scores
	return res, nil
}

func (env *extractEnv) testAccuracy(a arch.Arch, p *supernet.Params) (float64, error) {
	r, err := train.Evaluate(a, p, ops(env.cfg.Ops), env.test, 250, []train.Named{{Name: "model", Subnet: arch.Largest(a)}})
	if err != nil {
		return 0, err
	}
	return r[0].Accuracy, nil
}
