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

	"github.com/go-viper/mapstructure/v2"
	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"go.yaml.in/yaml/v3"
	"gorgonia.org/tensor"
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
		Positions: len(sn.Arch.Layers), MACs: refCost.MACs, LatencyMS: refLat, Accuracy: refAcc, Steps: run.steps,
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
	for i, t := range targets {
		name := cfg.Run.Budgets[i]
		opts.log("-- budget %s (%s)", name, t)
		b := &budgetRun{cfg: cfg, opts: opts, ex: ex, ds: ds, target: t, name: name, prov: prov,
			dir: filepath.Join(out, DirBudgets, safeName(name)), root: out, measure: measure, supernet: run, dense: dense,
			teacher: teacher, teacherStages: teacherStages}
		if err := b.run(ctx); err != nil {
			return nil, fmt.Errorf("budget %s: %w", name, err)
		}
		rep.Rows = append(rep.Rows, b.rows...)
		rep.Accuracies = append(rep.Accuracies, b.curves...)
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
			return fmt.Errorf("%w: the configuration differs from the one %s was started with (%s): resume with that one, or start over with --force",
				ErrConfig, out, path)
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

// lifecycleSupernet loads run.supernet, or trains the supernet in Dir/supernet (continuing
// or reusing it when resuming), and says what training it cost.
func lifecycleSupernet(ctx context.Context, cfg Config, ds *Dataset, opts LifecycleOptions, rep *report.Report, teacher *modelfile.Model) (*modelfile.Model, string, *supernetRun, error) {
	if path := cfg.Run.Supernet; path != "" {
		sn, err := modelfile.Load(path)
		if err != nil {
			return nil, "", nil, err
		}
		if sn.Kind != modelfile.KindSupernet {
			return nil, "", nil, fmt.Errorf("%w: run.supernet %s is a %s model, not a supernet", ErrConfig, path, sn.Kind)
		}
		opts.log("== supernet: %s", path)
		rep.Notes = append(rep.Notes, "supernet: "+path)
		return sn, path, storedRun(cfg, sn, path), nil
	}
	dir := filepath.Join(opts.Dir, DirSupernet)
	path := filepath.Join(dir, FileSupernet)
	to := TrainOptions{Output: opts.Output, Dir: dir, StoredConfig: opts.StoredConfig, Teacher: teacher}
	if opts.Resume {
		if sn, err := modelfile.Load(path); err == nil {
			opts.log("== 1/3 supernet: reusing the finished run in %s", dir)
			rep.Notes = append(rep.Notes, "supernet: "+path+" (finished before the lifecycle was resumed)")
			return sn, path, storedRun(cfg, sn, path), nil
		}
		r, err := modelfile.LoadResume(filepath.Join(dir, FileResume))
		switch {
		case err == nil:
			if r.RunConfig != string(opts.StoredConfig) {
				return nil, "", nil, fmt.Errorf("%w: %s was written with another configuration; resume with that one or start over with --force",
					ErrConfig, filepath.Join(dir, FileResume))
			}
			to.Resume = r
			opts.log("== 1/3 training the supernet: continuing at step %d", r.Step)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, "", nil, err
		}
	}
	if to.Resume == nil {
		opts.log("== 1/3 training the supernet")
	}
	res, err := TrainSupernet(ctx, cfg, ds, to)
	if err != nil {
		return nil, "", nil, err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("supernet trained for %d steps (%s)", res.Steps, dir))
	if len(res.Eval) > 0 {
		var parts []string
		for _, e := range res.Eval {
			parts = append(parts, fmt.Sprintf("%s (%s, %d params) %.2f%%", e.Name, e.Key, e.Params, 100*e.Accuracy))
		}
		rep.Notes = append(rep.Notes, "supernet subnets, test accuracy: "+strings.Join(parts, "; "))
	}
	rep.Losses = append(rep.Losses, res.Losses)
	rep.Accuracies = append(rep.Accuracies, res.Accuracies)
	run := &supernetRun{known: true, steps: res.Steps, batch: cfg.Train.BatchSize, train: cfg.Train, seconds: res.Seconds,
		timed: to.Resume == nil, source: "trained in this run", teacherMACs: teacherMACs(teacher)}
	run.replay(cfg.Sampler, cfg.Run, res.Model.Arch, res.Model.Space)
	return res.Model, res.Path, run, nil
}

// plannedRun is the supernet run cfg will train on ds, known before it is trained (its
// steps and sampled MACs), and a weightless model of its architecture: what the dense
// teacher needs to match the supernet's training MACs.
func plannedRun(cfg Config, ds *Dataset) (*supernetRun, *modelfile.Model, error) {
	ar, space, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
	if err != nil {
		return nil, nil, err
	}
	tl, err := TrainLoader(ds.Train, cfg.Train.BatchSize, cfg.Train.Seed, ds.Preprocess())
	if err != nil {
		return nil, nil, err
	}
	run := &supernetRun{known: true, steps: cfg.Train.TotalSteps(tl.BatchesPerEpoch()), batch: cfg.Train.BatchSize, train: cfg.Train,
		source: "planned"}
	run.replay(cfg.Sampler, cfg.Run, ar, &space)
	if !run.known {
		return nil, nil, fmt.Errorf("dense teacher: the supernet's compute cannot be planned: %s", run.source)
	}
	return run, &modelfile.Model{Kind: modelfile.KindSupernet, Arch: ar, Space: &space, Preprocess: ds.Preprocess()}, nil
}

// supernetRun is what training the supernet cost: its steps and examples per step, the
// training MACs per example and step (replayed from its sampler: every subnet it trained,
// forward and backward), its wall time and its train section.
type supernetRun struct {
	known          bool // the step count is known
	steps, batch   int
	train          train.Config
	sampler        string
	macsPerExample float64 // training MACs per example and step, mean over the steps
	teacherMACs    float64 // a fixed teacher's forward MACs per example and step (0: in-place)
	seconds        float64
	timed          bool
	source         string // where the figures come from
}

// storedRun reads what a supernet trained elsewhere cost from the resume file beside it
// (its step count) and its stored configuration (train and sampler sections); the
// configuration's own sections stand in for ones that cannot be read, and say so.
func storedRun(cfg Config, sn *modelfile.Model, path string) *supernetRun {
	run := &supernetRun{batch: cfg.Train.BatchSize, train: cfg.Train}
	rpath := filepath.Join(filepath.Dir(path), FileResume)
	r, err := modelfile.LoadResume(rpath)
	if err != nil {
		run.source = fmt.Sprintf("no readable resume file beside the supernet: %v", err)
		return run
	}
	run.known, run.steps, run.source = true, r.Step, "step count from "+rpath
	doc := r.RunConfig
	if doc == "" && sn.Provenance != nil {
		doc = sn.Provenance.Config
	}
	tc, sc, rc, err := storedSections(doc, cfg.Run)
	if err != nil {
		tc, sc, rc = cfg.Train, cfg.Sampler, cfg.Run
		run.source += fmt.Sprintf("; its configuration is unreadable (%v), so this run's train, sampler and run sections are assumed", err)
	} else {
		run.source += ", train, sampler and run sections from its stored configuration"
	}
	run.batch, run.train = tc.BatchSize, tc
	switch rc.Teacher {
	case "":
	case TeacherDense:
		run.teacherMACs = float64(sn.Arch.ModelCost().MACs)
	default:
		if t, err := modelfile.Load(rc.Teacher); err == nil {
			run.teacherMACs = teacherMACs(t)
		} else {
			run.source += fmt.Sprintf("; its teacher %s is unreadable (%v), so its forward passes are not counted", rc.Teacher, err)
		}
	}
	run.replay(sc, rc, sn.Arch, sn.Space)
	return run
}

// storedSections decodes the train and sampler sections of a stored configuration (YAML
// with the configuration's keys) over their defaults, and its run section's budgets and
// teacher (the ones a budget-aware sampler and a fixed teacher need) over run's.
func storedSections(doc string, run RunConfig) (train.Config, sampler.Config, RunConfig, error) {
	tc, sc := train.Default(), sampler.DefaultConfig()
	var root map[string]any
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return tc, sc, run, fmt.Errorf("stored configuration: %w", err)
	}
	for key, out := range map[string]any{"train": &tc, "sampler": &sc} {
		sec, ok := root[key]
		if !ok {
			return tc, sc, run, fmt.Errorf("stored configuration: no %s section", key)
		}
		d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: out, TagName: "mapstructure", ErrorUnused: true})
		if err != nil {
			return tc, sc, run, err
		}
		if err := d.Decode(sec); err != nil {
			return tc, sc, run, fmt.Errorf("stored configuration: %s: %w", key, err)
		}
	}
	if sec, ok := root["run"].(map[string]any); ok {
		var part struct {
			Budgets []string `mapstructure:"budgets"`
			Teacher *string  `mapstructure:"teacher"`
		}
		if err := mapstructure.Decode(sec, &part); err != nil {
			return tc, sc, run, fmt.Errorf("stored configuration: run: %w", err)
		}
		if len(part.Budgets) > 0 {
			run.Budgets = part.Budgets
		}
		if part.Teacher != nil {
			run.Teacher = *part.Teacher
		} else {
			run.Teacher = ""
		}
	}
	if err := tc.Validate("train"); err != nil {
		return tc, sc, run, fmt.Errorf("stored configuration: %w", err)
	}
	return tc, sc, run, sc.Validate()
}

// replay counts the forward MACs of every subnet the sampler drew over the run's steps
// (a budget-aware sampler with rc's budgets).
func (r *supernetRun) replay(sc sampler.Config, rc RunConfig, a arch.Arch, space *arch.Space) {
	if !r.known || r.steps == 0 {
		return
	}
	if space == nil {
		r.source += "; the supernet has no search space, so its sampler cannot be replayed"
		r.known = false
		return
	}
	b, err := samplerBudgets(sc, rc, a)
	if err != nil {
		r.source += fmt.Sprintf("; its sampler's budgets cannot be read (%v)", err)
		r.known = false
		return
	}
	smp, err := sampler.NewForBudgets(sc, *space, r.steps, b)
	if err != nil {
		r.source += fmt.Sprintf("; its sampler cannot be replayed (%v)", err)
		r.known = false
		return
	}
	total := 0.0
	for step := 0; step < r.steps; step++ {
		for _, s := range smp.Sample(step) {
			total += float64(a.SubnetCost(s).MACs)
		}
	}
	r.sampler = smp.Name()
	r.macsPerExample = 3 * total / float64(r.steps)
}

// stage is the supernet's compute as a report stage.
func (r *supernetRun) stage() report.Stage {
	if !r.known {
		return report.Stage{Name: "supernet (steps unknown)", Untimed: true, Shared: true}
	}
	per := r.macsPerExample + r.teacherMACs
	return report.Stage{Name: "supernet", Steps: r.steps, Batch: r.batch, MACsPerExample: per,
		MACs: float64(r.steps) * float64(r.batch) * per, Seconds: r.seconds, Untimed: !r.timed, Shared: true}
}

// notes describe the supernet's compute for the report.
func (r *supernetRun) notes() []string {
	if !r.known {
		return []string{"supernet compute unknown: " + r.source}
	}
	st := r.stage()
	n := fmt.Sprintf("supernet compute: %d steps x %d examples x %s training MACs per example and step (%s sampler: every subnet trained "+
		"at a step, forward and backward, replayed from the sampler", r.steps, r.batch, report.SI(st.MACsPerExample), r.sampler)
	if r.teacherMACs > 0 {
		n += fmt.Sprintf("; plus the fixed teacher's forward pass, %s MACs", report.SI(r.teacherMACs))
	}
	n += fmt.Sprintf("), %s training MACs in all; %s", report.SI(st.MACs), r.source)
	if !r.timed {
		n += "; its wall time was not measured in this run"
	}
	return []string{n}
}

// denseRun is the dense model of a lifecycle: the supernet's architecture trained alone.
type denseRun struct {
	model  *modelfile.Model
	stage  report.Stage
	scores *extract.Scores // Taylor scores, measured at the first budget and reused
	note   string
}

// equalComputeSteps is the number of dense-model steps (same batch as the supernet) whose
// training MACs equal the supernet run's: both pay 3 forward passes per trained model and
// example, so it is the supernet's steps x sampled forward MACs per step over the dense
// model's forward MACs.
func equalComputeSteps(run *supernetRun, dense arch.Arch) int {
	return int(math.Round(float64(run.steps) * run.macsPerExample / (3 * float64(dense.ModelCost().MACs))))
}

// lifecycleDense trains the dense model once (or loads it when resuming) in Dir/dense: the
// supernet's architecture from the same initialisation, on the labels, with the supernet's
// train section, for the supernet run's training MACs.
func lifecycleDense(ctx context.Context, cfg Config, ds *Dataset, sn *modelfile.Model, run *supernetRun, opts LifecycleOptions) (*denseRun, error) {
	if !run.known {
		return &denseRun{note: "dense -> prune -> fine-tune: skipped, the supernet's compute is unknown (" + run.source + ")"}, nil
	}
	steps := max(1, equalComputeSteps(run, sn.Arch))
	dir := filepath.Join(opts.Dir, DirDense)
	var r *FinetuneResult
	if opts.Resume {
		if r, _ = LoadFinetuned(dir); r != nil && r.Steps != steps {
			r = nil
		}
	}
	if r == nil {
		opts.log("== dense model: %d steps (the supernet run's training MACs)", steps)
		p, err := supernet.NewParamsWith(sn.Arch, tensor.Float32, cfg.Model.InitSeed, cfg.Model.InitOptions())
		if err != nil {
			return nil, err
		}
		fresh := &modelfile.Model{Kind: modelfile.KindFinetuned, Arch: sn.Arch, Params: p, Preprocess: sn.Preprocess,
			Provenance: &modelfile.Provenance{Step: "dense", Config: string(opts.StoredConfig)},
			Extra:      map[string]string{modelfile.KeyNote: "the supernet's architecture trained alone (dense -> prune -> fine-tune baseline)"}}
		dc := cfg
		dc.Finetune = run.train
		dc.Finetune.Steps, dc.Finetune.EvalBatch = steps, cfg.Finetune.EvalBatch
		if r, err = Finetune(ctx, dc, fresh, nil, ds, FinetuneOptions{Output: opts.Output, Title: "dense", Dir: dir}); err != nil {
			return nil, err
		}
	} else {
		opts.log("== dense model: reusing %s", dir)
	}
	macs := 3 * float64(sn.Arch.ModelCost().MACs)
	d := &denseRun{model: r.Model,
		stage: report.Stage{Name: "dense", Steps: r.Steps, Batch: run.batch, MACsPerExample: macs,
			MACs: float64(r.Steps) * float64(run.batch) * macs, Seconds: r.Seconds, Shared: true}}
	d.note = fmt.Sprintf("dense -> prune -> fine-tune: the dense model (the supernet's architecture, same initialisation, labels only, the supernet's "+
		"train section) trained for %d steps x %d examples = %s training MACs, the supernet run's %s (equal training MACs, not equal steps: "+
		"steps = supernet steps x sampled forward MACs per step / the dense model's forward MACs); test accuracy %.2f%% (%s); "+
		"each budget prunes it by Taylor importance with the greedy selector and fine-tunes it like the extracted model, distilled from the dense model",
		r.Steps, run.batch, report.SI(d.stage.MACs), report.SI(run.stage().MACs), 100*r.Test, dir)
	return d, nil
}

// pruneConfig is the extraction that prunes the dense model: Taylor importance for heads
// and neurons, units in importance order, the greedy selector without search.
func pruneConfig(cfg Config) extract.Config {
	c := cfg.Extract.Config
	c.Criteria.Heads, c.Criteria.Neurons = extract.HeadTaylor, extract.NeuronTaylor
	c.Order, c.Search.Generations = extract.OrderImportance, 0
	return c
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

// Variants of the report rows that the compute totals compare.
const (
	VariantExtractedFT  = "extracted+finetune"
	VariantScratchEqual = "scratch, equal steps"
)

// budgetRun is one budget of a lifecycle: its models, rows and curves.
type budgetRun struct {
	cfg      Config
	opts     LifecycleOptions
	ex       *Extractor
	ds       *Dataset
	target   budget.Target
	name     string
	prov     *modelfile.Provenance
	dir      string
	root     string
	measure  func(arch.Arch) (float64, error)
	supernet *supernetRun
	dense    *denseRun // nil: no dense -> prune baseline
	// teacher is the run's fixed teacher (nil: the supernet's largest subnet) and
	// teacherStages the compute behind it, shared by every row that distils from it
	teacher       *modelfile.Model
	teacherStages []report.Stage
	rows          []report.Row
	curves        []report.Curve
}

// row adds a report row for a model of architecture a trained with compute.
func (b *budgetRun) row(variant string, a arch.Arch, acc float64, steps int, path string, compute ...report.Stage) error {
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
		MACs: c.MACs, LatencyMS: lat, Accuracy: acc, Steps: steps, Model: rel, Compute: compute})
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

// finetuned fine-tunes m into dir/sub with c's finetune section (or loads that run when
// resuming), reporting it as variant after the upstream compute stages; stage names the
// run's own stage.
func (b *budgetRun) finetuned(ctx context.Context, variant, sub, title, stage string, c Config, m, teacher *modelfile.Model,
	upstream ...report.Stage) (*FinetuneResult, report.Stage, error) {
	dir := filepath.Join(b.dir, sub)
	var r *FinetuneResult
	if b.opts.Resume {
		if r, _ = LoadFinetuned(dir); r != nil && c.Finetune.Steps > 0 && r.Steps != c.Finetune.Steps {
			r = nil
		}
	}
	if r == nil {
		var err error
		if r, err = Finetune(ctx, c, m, teacher, b.ds, FinetuneOptions{Output: b.opts.Output, Title: b.name + " " + title, Dir: dir}); err != nil {
			return nil, report.Stage{}, err
		}
	}
	per := 3 * float64(m.Arch.ModelCost().MACs)
	if teacher != nil {
		per += float64(teacher.Arch.SubnetCost(arch.Largest(teacher.Arch)).MACs)
	}
	st := report.Stage{Name: stage, Steps: r.Steps, Batch: c.Finetune.BatchSize, MACsPerExample: per,
		MACs: float64(r.Steps) * float64(c.Finetune.BatchSize) * per, Seconds: r.Seconds}
	return r, st, b.row(variant, r.Model.Arch, r.Test, r.Steps, filepath.Join(dir, FileModel), append(upstream, st)...)
}

// extractionStage is the compute of an extraction: its importance scores (a forward and
// backward pass of the whole model per calibration example, plus a forward pass per layer
// when layers are scored by dropping them; counted for every extraction, though scores
// are measured once per model and reused) and the validation passes of its search and
// order comparison.
func (b *budgetRun) extractionStage(name string, a arch.Arch, c extract.Config, mf *extract.Manifest) report.Stage {
	per := 3.0
	if c.Criteria.Layers == extract.LayerDrop {
		per += float64(len(a.Layers))
	}
	macs := float64(c.CalibrationBatches*extractBatch)*per*float64(a.ModelCost().MACs) + float64(mf.EvaluatedMACs)*float64(b.ex.ValExamples())
	return report.Stage{Name: name, MACs: macs, Seconds: mf.Seconds}
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
	if mf.OrderRule == extract.OrderBest {
		var c []string
		for _, x := range mf.Candidates {
			c = append(c, fmt.Sprintf("%s %.2f%%", x.Order, 100*x.ValAccuracy))
		}
		b.opts.log("   unit order %s won on validation (%.2f%%; candidates: %s)", mf.Order, 100*deref(mf.ValAccuracy), strings.Join(c, ", "))
	}
	acc, err := b.ex.TestAccuracy(em.Arch, em.Params)
	if err != nil {
		return err
	}
	snStage := b.supernet.stage()
	exStage := b.extractionStage("extraction", sn.Arch, b.cfg.Extract.Config, mf)
	// the rows built on the supernet count the fixed teacher's training too
	upstream := append(append([]report.Stage(nil), b.teacherStages...), snStage, exStage)
	ftTeacher := b.teacher
	if ftTeacher == nil {
		ftTeacher = sn
	}
	if err := b.row("extracted", em.Arch, acc, 0, filepath.Join(b.dir, "extracted", FileModel), upstream...); err != nil {
		return err
	}
	var plain *extract.Result // the plain-slices extraction, fine-tuned below
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
			// the sizes are the extraction's: it paid for their search
			if err := b.row(bl.Name, res.Arch, acc, 0, "", upstream...); err != nil {
				return err
			}
			if bl.Order == extract.OrderNone {
				plain = res
			}
		}
	}
	ft, ftStage, err := b.finetuned(ctx, VariantExtractedFT, "finetuned", "finetune", "fine-tune", b.cfg, em, ftTeacher, upstream...)
	if err != nil {
		return err
	}
	if plain != nil {
		if err := b.plainFinetuned(ctx, plain, mf, ft, ftStage, ftTeacher, upstream...); err != nil {
			return err
		}
	}
	b.curves = append(b.curves, named(b.name+" extracted+finetune (val)", ft.Curve))
	if b.cfg.Run.Expand {
		xm, xStage, err := b.expanded(len(em.Arch.Layers))
		if err != nil {
			return err
		}
		xUp := append(append([]report.Stage(nil), b.teacherStages...), snStage, xStage)
		eft, _, err := b.finetuned(ctx, "expanded+finetune", "expanded-finetuned", "expanded", "fine-tune", b.cfg, xm, ftTeacher, xUp...)
		if err != nil {
			return err
		}
		b.curves = append(b.curves, named(b.name+" expanded+finetune (val)", eft.Curve))
	}
	if b.cfg.Run.Scratch {
		sc := b.cfg
		sc.Finetune.Steps = ft.Steps // the fine-tuning's steps only
		sc.Finetune.LR = b.cfg.Train.LR
		fresh, err := b.fresh(em.Arch, "trained from scratch for the fine-tuning's steps")
		if err != nil {
			return err
		}
		if _, _, err := b.finetuned(ctx, fmt.Sprintf("scratch, only the fine-tune's %d steps", ft.Steps), "scratch", "scratch", "training",
			sc, fresh, nil); err != nil {
			return err
		}
	}
	if b.cfg.Run.ScratchEqualSteps && b.supernet.known {
		// as many steps as the extracted model had: the supernet's, then the fine-tuning's,
		// with the supernet's train section and distilled from the run's teacher (the
		// supernet's largest subnet when there is no fixed teacher)
		sc := b.cfg
		sc.Finetune = b.supernet.train
		sc.Finetune.Steps, sc.Finetune.EvalBatch = b.supernet.steps+ftStage.Steps, b.cfg.Finetune.EvalBatch
		fresh, err := b.fresh(em.Arch, "trained from scratch for the supernet's and the fine-tuning's steps")
		if err != nil {
			return err
		}
		if _, _, err := b.finetuned(ctx, VariantScratchEqual, "scratch-equal-steps", "scratch (equal steps)", "training",
			sc, fresh, ftTeacher, b.teacherStages...); err != nil {
			return err
		}
	}
	if b.dense != nil && b.dense.model != nil {
		if err := b.densePruned(ctx, ftStage.Steps); err != nil {
			return err
		}
	}
	return nil
}

// plainFinetuned adds the "plain slices+finetune" row: the plain leading slices of the
// extraction's sizes, fine-tuned exactly like the extracted model, so the report shows
// whether choosing units by importance paid after fine-tuning too. When the plain order
// won the extraction's comparison, the extracted model is that model and its fine-tune
// is reported again under this name instead of being repeated.
//
// ft and ftStage are the extracted model's fine-tune; upstream is the compute before it
// (supernet, extraction).
func (b *budgetRun) plainFinetuned(ctx context.Context, plain *extract.Result, mf *extract.Manifest, ft *FinetuneResult, ftStage report.Stage,
	teacher *modelfile.Model, upstream ...report.Stage) error {
	if mf.Order == extract.OrderNone {
		b.opts.log("   plain slices won the extraction's comparison: its fine-tune is the extracted model's")
		return b.row("plain slices+finetune", ft.Model.Arch, ft.Test, ft.Steps, filepath.Join(b.dir, "finetuned", FileModel), append(upstream, ftStage)...)
	}
	m, err := b.ex.Model(plain, b.prov)
	if err != nil {
		return err
	}
	_, _, err = b.finetuned(ctx, "plain slices+finetune", "plain-finetuned", "plain slices", "fine-tune", b.cfg, m, teacher, upstream...)
	return err
}

func deref(x *float64) float64 {
	if x == nil {
		return math.NaN()
	}
	return *x
}

// fresh is a randomly initialised model of architecture a (the supernet's initialisation
// seed), for the baselines trained from scratch.
func (b *budgetRun) fresh(a arch.Arch, note string) (*modelfile.Model, error) {
	p, err := supernet.NewParamsWith(a, tensor.Float32, b.cfg.Model.InitSeed, b.cfg.Model.InitOptions())
	if err != nil {
		return nil, err
	}
	return &modelfile.Model{Kind: modelfile.KindFinetuned, Arch: a, Params: p, Preprocess: b.ex.Supernet().Preprocess,
		Provenance: &modelfile.Provenance{Step: "scratch", Config: string(b.opts.StoredConfig)},
		Extra:      copyClasses(map[string]string{modelfile.KeyNote: note}, b.ex.Supernet())}, nil
}

// densePruned is the dense -> prune -> fine-tune baseline: the dense model pruned to the
// budget by Taylor importance with the greedy selector (no search), then fine-tuned for
// the extracted model's fine-tuning steps, distilled from the dense model.
func (b *budgetRun) densePruned(ctx context.Context, ftSteps int) error {
	d := b.dense
	dir := filepath.Join(b.dir, "dense-pruned")
	c := pruneConfig(b.cfg)
	var pm *modelfile.Model
	var mf extract.Manifest
	if b.opts.Resume {
		if m, err := modelfile.Load(filepath.Join(dir, FileModel)); err == nil && readJSON(filepath.Join(dir, FileManifest), &mf) == nil {
			pm = m
		}
	}
	if pm == nil {
		t := b.target
		in := extract.Input{Arch: d.model.Arch, Params: d.model.Float32Params(), Calibration: b.ex.calib, VerifyBatch: b.ex.verify,
			Latency: b.ex.latency, Scores: d.scores}
		res, err := extract.Extract(in, c, extract.Selection{Target: &t, TargetFrom: "run.budgets (dense model)"})
		if err != nil {
			return err
		}
		d.scores, mf = res.Scores, res.Manifest
		mj, err := jsonString(res.Manifest)
		if err != nil {
			return err
		}
		pm = &modelfile.Model{Kind: modelfile.KindExtracted, Arch: res.Arch, Params: res.Params, Preprocess: d.model.Preprocess,
			Provenance: &modelfile.Provenance{Step: "dense-prune", Config: string(b.opts.StoredConfig)},
			Extra:      map[string]string{modelfile.KeyManifest: mj, modelfile.KeyNote: "the dense model pruned by Taylor importance"}}
		if err := SaveModelDir(dir, pm, map[string]any{FileManifest: res.Manifest}); err != nil {
			return err
		}
	}
	pc := b.cfg
	pc.Finetune.Steps = ftSteps
	teacher, upstream := d.model, []report.Stage{d.stage}
	if b.teacher != nil && b.teacher != d.model { // a given teacher: the same as every other row's
		teacher, upstream = b.teacher, append(append([]report.Stage(nil), b.teacherStages...), d.stage)
	}
	_, _, err := b.finetuned(ctx, "dense -> prune (Taylor) -> fine-tune", "dense-pruned-finetuned", "dense-pruned", "fine-tune", pc, pm, teacher,
		append(upstream, b.extractionStage("prune", d.model.Arch, c, &mf))...)
	return err
}

// expanded extracts a model whose expansion fits the budget's unique-parameter limit (the
// transforms' own parameters come out of the extraction's budget: the extraction is
// repeated with a smaller budget until the expanded model fits) and expands it. With
// expand.width_for_depth the extraction keeps WideLayers(plainLayers) layers (plainLayers:
// the budget's plain extraction's depth), as wide as the budget allows.
func (b *budgetRun) expanded(plainLayers int) (*modelfile.Model, report.Stage, error) {
	dir := filepath.Join(b.dir, "expanded")
	sn := b.ex.Supernet()
	if b.opts.Resume {
		var mf extract.Manifest
		if m, err := modelfile.Load(filepath.Join(dir, FileModel)); err == nil && readJSON(filepath.Join(dir, FileManifest), &mf) == nil {
			st := b.extractionStage("extraction", sn.Arch, b.cfg.Extract.Config, &mf)
			st.Untimed = true // earlier tries of that run are not recorded
			return m, st, nil
		}
	}
	total := report.Stage{Name: "extraction"}
	bud := extract.Resolve(b.target, sn.Arch)
	limit := bud.Params
	target := budget.Target{Params: bud.Params, MACs: bud.MACs}
	verify := b.ex.VerifyBatch()
	ec := b.cfg.Extract.Config
	if want := WideLayers(plainLayers); b.cfg.Expand.WidthForDepth && limit > 0 && want < plainLayers {
		f, err := extract.WideFloors(sn.Arch, limit, want, ec.Floors)
		if err != nil {
			return nil, total, fmt.Errorf("expand.width_for_depth: %w", err)
		}
		ec.Floors = f
	}
	for try := 0; try < 6; try++ {
		res, err := b.ex.Extract(ec, extract.Selection{Target: &target, TargetFrom: "run.budgets (room left for expansion)"}, nil)
		if err != nil {
			return nil, total, err
		}
		st := b.extractionStage("extraction", sn.Arch, ec, &res.Manifest)
		total.MACs, total.Seconds = total.MACs+st.MACs, total.Seconds+st.Seconds
		m, err := b.ex.Model(res, b.prov)
		if err != nil {
			return nil, total, err
		}
		xm, err := Expand(m, b.cfg.Expand, verify)
		if err != nil {
			return nil, total, err
		}
		if got := xm.Arch.ModelCost().Params; limit == 0 || got <= limit {
			return xm, total, SaveModelDir(dir, xm, map[string]any{FileManifest: res.Manifest})
		} else {
			target.Params -= got - limit + int64(math.Ceil(0.01*float64(limit)))
		}
	}
	return nil, total, fmt.Errorf("could not fit the expanded model within %d unique params", limit)
}

// WideLayers is how many layers width for depth keeps of a plain extraction's n: half,
// rounded up, but never fewer than two (a single layer used twice lost 0.9 and 1.7 points
// to the same-depth expansion at the demo's 4x and 8x), so an extraction of two layers or
// fewer keeps its depth.
func WideLayers(n int) int {
	return max((n+1)/2, min(2, n))
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
