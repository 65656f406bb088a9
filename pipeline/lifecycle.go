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
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/latency/timing"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/report"
)

// Files and directories of a lifecycle's output directory.
const (
	DirSupernet    = "supernet"
	DirDense       = "dense"
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

// Lifecycle trains (or loads) a supernet, measures a latency table, trains the dense
// model when run.dense_prune is set, and for every budget of cfg.Run extracts, fine-tunes,
// expands and trains the baselines, then writes the report into opts.Dir and returns it.
// Every row states its compute. Every value is checked before any work starts.
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
	if err := lifecycleConfig(out, opts, cfg.Run.Supernet == ""); err != nil {
		return nil, err
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
	sn, supernetPath, run, err := lifecycleSupernet(ctx, cfg, ds, opts, rep)
	if err != nil {
		return nil, err
	}
	if err := feasible(sn.Arch, targets, cfg.Extract.Floors); err != nil {
		return nil, err
	}
	prov, err := ExtractProvenance(supernetPath, opts.StoredConfig)
	if err != nil {
		return nil, err
	}

	// 2. latency table
	opts.log("== 2/3 latency table")
	lc := latency.DefaultConfig()
	lc.Batch, lc.Repeats = cfg.Run.LatencyBatch, cfg.Run.LatencyRepeats
	latencyPath := filepath.Join(out, FileLatency)
	table, err := lifecycleLatency(sn.Arch, lc, latencyPath, opts)
	if err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, latencyNote(table, latencyPath))
	if table.MeanAbsErrorPct > latency.ErrorWarnPct {
		opts.log("   warning: the latency table predicts whole-model latency with %.1f%% mean error (above %.0f%%)", table.MeanAbsErrorPct, latency.ErrorWarnPct)
	}
	timed := map[string]float64{} // identical architectures share one measurement
	measure := func(ar arch.Arch) (float64, error) {
		key := ar.JSON()
		if ms, ok := timed[key]; ok {
			return ms, nil
		}
		ms, err := timing.TimeModel(ar, lc)
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
		Positions: len(sn.Arch.Layers), MACs: refCost.MACs, LatencyMS: refLat, Accuracy: refAcc, Steps: run.steps,
		Compute: []report.Stage{run.stage()}}
	rep.Notes = append(rep.Notes, run.notes()...)
	var dense *denseRun
	if cfg.Run.DensePrune {
		if dense, err = lifecycleDense(ctx, cfg, ds, sn, run, opts); err != nil {
			return nil, fmt.Errorf("dense model: %w", err)
		}
		rep.Notes = append(rep.Notes, dense.note)
	}
	if cfg.Run.ScratchEqualSteps && !run.known {
		rep.Notes = append(rep.Notes, "scratch, equal steps: skipped, the supernet's step count is unknown ("+run.source+")")
	}

	// 3. each budget
	opts.log("== 3/3 budgets: %s", strings.Join(cfg.Run.Budgets, ", "))
	for i, t := range targets {
		name := cfg.Run.Budgets[i]
		opts.log("-- budget %s (%s)", name, t)
		b := &budgetRun{cfg: cfg, opts: opts, ex: ex, ds: ds, target: t, name: name, prov: prov,
			dir: filepath.Join(out, DirBudgets, safeName(name)), root: out, measure: measure, supernet: run, dense: dense}
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

// lifecycleConfig starts a fresh lifecycle (earlier outputs removed, the configuration
// recorded in Dir/config.yaml) or checks that a resumed one has the configuration it was
// started with, since its outputs were made with that one.
func lifecycleConfig(out string, opts LifecycleOptions, supernetToo bool) error {
	path := filepath.Join(out, FileConfig)
	if opts.Resume {
		old, err := data.ReadFileLimited(path, maxSideFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%w: %s holds no lifecycle to resume (no %s)", ErrConfig, out, FileConfig)
		case err != nil:
			return err
		case string(old) != string(opts.StoredConfig):
			return fmt.Errorf("%w: the configuration differs from the one %s was started with (%s): resume with that one (`ofa run --config %s --out %s --resume`), or start over with --force",
				ErrConfig, out, path, path, out)
		}
		return nil
	}
	if err := clearLifecycle(out, supernetToo); err != nil {
		return err
	}
	return modelfile.WriteAtomic(path, opts.StoredConfig)
}

// clearLifecycle removes the outputs of an earlier lifecycle in out (and its supernet run
// when a new one will be trained), so a fresh run never reuses them.
func clearLifecycle(out string, supernetToo bool) error {
	paths := []string{DirBudgets, DirDense, FileLatency, FileReport, fileReportJSON, fileReportCSV, dirPlots, FileConfig}
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

func deref(x *float64) float64 {
	if x == nil {
		return math.NaN()
	}
	return *x
}

func named(name string, c report.Curve) report.Curve {
	c.Name = name
	return c
}
