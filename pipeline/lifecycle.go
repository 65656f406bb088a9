package pipeline

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/configfile"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/latency/timing"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/sampler"
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
	// World (nil: one process) is the run this process is a rank of: the supernet and the
	// dense model train data parallel over every rank (rank 0 writes), then the budgets are
	// shared out (budget i on rank i mod size, which writes that budget's directory) and
	// rank 0 merges their rows into the one report, which it writes and returns; the other
	// ranks return a nil report.
	World cluster.World
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
	world := cluster.OrNone(opts.World)
	lead := world.Rank() == 0
	if lead {
		if err = os.MkdirAll(out, 0o755); err == nil {
			err = lifecycleConfig(out, opts, cfg.Run.Supernet == "")
		}
	}
	if err := cluster.Agree(world, err); err != nil {
		return nil, err
	}
	ds, err := LoadDataWith(cfg.Data, opts.Progress)
	if err != nil {
		return nil, err
	}
	opts.log("== data: %s", ds.Source)
	// the checks that need the architecture, before any work
	if cfg.Run.Supernet == "" {
		ar, space, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
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
		// the sampler, whose budget subnets must fit the run's budgets
		b, err := SamplerBudgets(cfg, ar)
		if err != nil {
			return nil, err
		}
		if _, err := sampler.NewForBudgets(cfg.Sampler, space, 0, b); err != nil {
			return nil, err
		}
	}
	if n := (ds.Train.N() + extractBatch - 1) / extractBatch; cfg.Extract.CalibrationBatches > n {
		return nil, fmt.Errorf("%w: extract.calibration_batches: got %d, the training split holds %d batches of %d", ErrConfig,
			cfg.Extract.CalibrationBatches, n, extractBatch)
	}
	rep := &report.Report{Title: "ofa lifecycle report", TestExamples: ds.Test.N()}
	rep.Notes = append(rep.Notes, "data: "+ds.Source, "BLAS: "+nn.Backend(),
		fmt.Sprintf("splits: train %d, validation %d, test %d", ds.Train.N(), ds.Val.N(), ds.Test.N()))
	if sk := ds.Description.Skipped; len(sk) > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d bad files skipped (data.skip_bad): %s", len(sk), strings.Join(sk, "; ")))
	}

	// 0. the fixed teacher (run.teacher), trained first when it is the dense model
	var teacher *modelfile.Model
	var teacherStages []report.Stage
	var dense *denseRun
	switch t := cfg.Run.Teacher; {
	case t == TeacherDense && cfg.Run.Supernet == "":
		planned, shape, err := plannedRun(cfg, ds)
		if err != nil {
			return nil, err
		}
		if dense, err = lifecycleDense(ctx, cfg, ds, shape, planned, opts); err != nil {
			return nil, fmt.Errorf("dense teacher: %w", err)
		}
		rep.Notes = append(rep.Notes, dense.note+"; it is the fixed teacher of the supernet, the fine-tunes and the baselines (run.teacher: dense)")
		teacher, teacherStages = dense.model, []report.Stage{dense.stage}
	case t != "" && t != TeacherDense:
		if teacher, err = LoadTeacher(t, ds); err != nil {
			return nil, err
		}
		teacherStages = []report.Stage{{Name: "teacher (given)", Untimed: true, Shared: true}}
		rep.Notes = append(rep.Notes, fmt.Sprintf("fixed teacher: %s (run.teacher), %d params; its own training is not counted in any row", t,
			teacher.Arch.ModelCost().Params))
	}

	// 1. the supernet
	sn, supernetPath, run, err := lifecycleSupernet(ctx, cfg, ds, opts, rep, teacher)
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
	var table *latency.Table
	if lead { // measured by one rank while the others wait: timings need a quiet machine
		table, err = lifecycleLatency(sn.Arch, lc, latencyPath, opts)
	}
	if err := cluster.Agree(world, err); err != nil {
		return nil, err
	}
	if !lead {
		if table, err = latency.LoadTable(latencyPath); err != nil {
			return nil, err
		}
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
	refCost := sn.Arch.ModelCost()
	rep.Reference = report.Row{Budget: "1x", Variant: "supernet (largest)", Params: refCost.Params, Layers: len(sn.Arch.Layers),
		Positions: len(sn.Arch.Layers), MACs: refCost.MACs, Accuracy: refAcc, Steps: run.steps,
		Compute: []report.Stage{run.stage()}}
	rep.Notes = append(rep.Notes, run.notes()...)
	if dense == nil && (cfg.Run.DensePrune || cfg.Run.Teacher == TeacherDense) {
		if dense, err = lifecycleDense(ctx, cfg, ds, sn, run, opts); err != nil {
			return nil, fmt.Errorf("dense model: %w", err)
		}
		rep.Notes = append(rep.Notes, dense.note)
		if cfg.Run.Teacher == TeacherDense { // the supernet was given: the teacher of the fine-tunes and baselines
			teacher, teacherStages = dense.model, []report.Stage{dense.stage}
		}
	}
	if !cfg.Run.DensePrune {
		dense = nil
	}
	if cfg.Run.ScratchEqualSteps && !run.known {
		rep.Notes = append(rep.Notes, "scratch, equal steps: skipped, the supernet's step count is unknown ("+run.source+")")
	}

	// 3. each budget
	opts.log("== 3/3 budgets: %s", strings.Join(cfg.Run.Budgets, ", "))
	if world.Size() > 1 {
		opts.log("   budget i runs on rank i mod %d (%s)", world.Size(), world.Name())
	}
	var mine []budgetResult // this rank's budgets
	var failed error        // this rank's budget error, returned once the others know of it
	for i, t := range targets {
		if i%world.Size() != world.Rank() {
			continue
		}
		name := cfg.Run.Budgets[i]
		opts.log("-- budget %s (%s)", name, t)
		b := &budgetRun{cfg: cfg, opts: opts, ex: ex, ds: ds, target: t, name: name, prov: prov,
			dir: filepath.Join(out, DirBudgets, safeName(name)), root: out, supernet: run, dense: dense,
			teacher: teacher, teacherStages: teacherStages}
		r := budgetResult{Index: i}
		if err := b.run(ctx); err != nil {
			failed = fmt.Errorf("budget %s: %w", name, err)
			if world.Size() == 1 {
				return nil, failed
			}
			r.Err = failed.Error()
		}
		r.Rows, r.Curves, r.Archs = b.rows, b.curves, b.archs
		mine = append(mine, r)
		if r.Err != "" {
			break // the others learn of it when the budgets are merged
		}
	}
	all, err := mergeBudgets(world, mine, len(targets))
	if failed != nil {
		return nil, failed
	}
	if err != nil || !lead {
		return nil, err
	}
	// latencies last, on rank 0 alone, with the other ranks idle: every row's model
	// (identical architectures share one measurement)
	if rep.Reference.LatencyMS, err = measure(sn.Arch); err != nil {
		return nil, err
	}
	for _, r := range all {
		for k := range r.Rows {
			if r.Rows[k].LatencyMS, err = measure(r.Archs[k]); err != nil {
				return nil, err
			}
		}
		rep.Rows = append(rep.Rows, r.Rows...)
		rep.Accuracies = append(rep.Accuracies, r.Curves...)
	}
	if tot := report.Totals(rep.Rows, VariantExtractedFT, VariantScratchEqual); tot != nil {
		rep.Totals = tot
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("total wall time %.1f s", time.Since(start).Seconds()))
	if err := rep.Write(out); err != nil {
		return nil, err
	}
	return rep, nil
}

// budgetResult is what one budget's run gives the report: its rows, the architecture of
// each row's model (for the latency measured at the end), its curves, or its error.
type budgetResult struct {
	Index  int
	Rows   []report.Row
	Archs  []arch.Arch
	Curves []report.Curve
	Err    string
}

// mergeBudgets gathers every rank's budget results and returns them in budget order; an
// error of any budget is returned on every rank.
func mergeBudgets(w cluster.World, mine []budgetResult, n int) ([]budgetResult, error) {
	if w.Size() == 1 {
		return mine, nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(mine); err != nil {
		return nil, fmt.Errorf("budget results: %w", err)
	}
	parts, err := cluster.GatherBytes(w, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("merging the budgets: %w", err)
	}
	all := make([]budgetResult, n)
	seen := make([]bool, n)
	for r, p := range parts {
		var theirs []budgetResult
		if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&theirs); err != nil {
			return nil, fmt.Errorf("budget results of rank %d: %w", r, err)
		}
		for _, b := range theirs {
			if b.Err != "" {
				return nil, fmt.Errorf("rank %d: %s", r, b.Err)
			}
			if b.Index < 0 || b.Index >= n || seen[b.Index] || len(b.Archs) != len(b.Rows) {
				return nil, fmt.Errorf("budget results of rank %d: budget %d is out of place", r, b.Index)
			}
			all[b.Index], seen[b.Index] = b, true
		}
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("merging the budgets: no rank ran budget %d", i)
		}
	}
	return all, nil
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
		case !configfile.SameStored(old, opts.StoredConfig):
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
