package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"gorgonia.org/tensor"
)

// Files of a training run directory and of a model directory.
const (
	FileSupernet = "supernet.safetensors"
	FileResume   = "resume.safetensors"
	FileMetrics  = "metrics.jsonl"
	FileConfig   = config.RunFile
	FileModel    = "model.safetensors"
	FileManifest = "manifest.json"
	FileResult   = "result.json"
)

// Output says where a step shows what it does; nil fields show nothing.
type Output struct {
	// Progress receives progress bars (a terminal) or plain progress lines.
	Progress io.Writer
	// Log prints a human-readable line.
	Log func(format string, args ...any)
}

func (o Output) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

func (o Output) progress() io.Writer {
	if o.Progress == nil {
		return io.Discard
	}
	return o.Progress
}

// TrainOptions configures TrainSupernet beyond the configuration.
type TrainOptions struct {
	Output
	// Dir receives supernet.safetensors (at every evaluation and at the end),
	// resume.safetensors, metrics.jsonl and config.yaml (the configuration, loadable with --config). The directory is marked
	// incomplete until the run ends.
	Dir string
	// Resume continues a run from its saved state; the caller loaded it (and its
	// configuration) from Dir.
	Resume *modelfile.Resume
	// StoredConfig is the configuration as it is stored in resume files and config.yaml
	// (the CLI stores the keys of its configuration file).
	StoredConfig []byte
	// Init, if set, are the supernet's starting weights (for example from a dense model).
	Init *supernet.Params
	// World (nil: one process) is the data-parallel run this process is a rank of. Every
	// rank passes the same configuration and reads the data (and Resume) itself; rank 0
	// alone writes into Dir.
	World cluster.World
	// Teacher, if set, is the fixed teacher of every subnet (run.teacher), instead of
	// in-place distillation from the largest subnet.
	Teacher *modelfile.Model
}

// TrainResult is a finished supernet training run.
type TrainResult struct {
	Model *modelfile.Model
	// Path is the supernet file.
	Path string
	// Eval is the last evaluation (largest, middle and smallest subnets, test split).
	Eval []train.SubnetEval
	// Steps is the run's length; Seconds and SamplesPerSec measure this invocation.
	Steps         int
	Seconds       float64
	SamplesPerSec float64
	// RunSeconds is the wall time of the whole run, over every invocation; RunTimed says
	// whether it is known (a run resumed from a state that does not record the earlier
	// invocations' time counts only its own).
	RunSeconds float64
	RunTimed   bool
	// SubnetsTrained and TrainMACs count the work of this invocation: subnet passes and
	// their forward MACs.
	SubnetsTrained int
	TrainMACs      int64
	// Losses and Accuracies are training curves for reports.
	Losses, Accuracies report.Curve
}

// TrainSupernet trains a supernet with cfg (sections data, model, sampler, train, reorder)
// on ds, or continues the run in opts.Resume.
func TrainSupernet(ctx context.Context, cfg Config, ds *Dataset, opts TrainOptions) (*TrainResult, error) {
	out := opts.Dir
	if out == "" {
		return nil, fmt.Errorf("%w: a training run needs an output directory", ErrConfig)
	}
	world := cluster.OrNone(opts.World)
	lead := world.Rank() == 0
	var model *modelfile.Model
	if r := opts.Resume; r != nil {
		model = r.Model
		if model.Kind != modelfile.KindSupernet || model.Space == nil {
			return nil, fmt.Errorf("%w: the resume state holds a %s model, not a supernet", ErrConfig, model.Kind)
		}
		// the stored configuration must describe the stored weights
		want, space, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
		if err != nil {
			return nil, err
		}
		if want.JSON() != model.Arch.JSON() {
			return nil, fmt.Errorf("%w: the model section describes %s, but the resumed weights are %s", ErrConfig, want.JSON(), model.Arch.JSON())
		}
		if fmt.Sprint(space) != fmt.Sprint(*model.Space) {
			return nil, fmt.Errorf("%w: the model section's search space %+v differs from the resumed supernet's %+v", ErrConfig, space, *model.Space)
		}
		// a run continues on the data it started on
		if here := ds.Record(); model.Data != nil && here != nil && !model.Data.Same(here) {
			return nil, fmt.Errorf("%w: the run started on %s, but its stored data section now reads %s: restore that data or start over with --force",
				ErrConfig, model.Data, here)
		}
		if model.Data == nil {
			model.Data = ds.Record()
		}
	} else {
		ar, space, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
		if err != nil {
			return nil, err
		}
		model = &modelfile.Model{Kind: modelfile.KindSupernet, Arch: ar, Space: &space, Preprocess: ds.Preprocess(),
			Provenance: &modelfile.Provenance{Step: "train", Config: string(opts.StoredConfig)}, Data: ds.Record()}
		if opts.Init != nil {
			model.Params = opts.Init
		} else if model.Params, err = supernet.NewParamsWith(ar, tensor.Float32, cfg.Model.InitSeed, cfg.Model.InitOptions()); err != nil {
			return nil, err
		}
	}
	if err := ds.CheckModel("the supernet", model); err != nil {
		return nil, err
	}
	// the data's class names, in a model that has none (a new supernet, or the resume
	// state of a run that predates the key)
	if !model.HasClassNames() && len(ds.Classes) == model.Arch.Classes {
		if err := model.SetClassNames(ds.Classes); err != nil {
			return nil, err
		}
	}
	ar, space := model.Arch, *model.Space
	if err := cfg.Train.ValidateFor("train", ar); err != nil {
		return nil, err
	}
	tl, err := TrainLoader(ds.Train, cfg.Train.BatchSize, cfg.Train.Seed, model.Preprocess)
	if err != nil {
		return nil, err
	}
	el, evalBatch, err := EvalLoader(ds.Test, cfg.Train.EvalBatch, model.Preprocess)
	if err != nil {
		return nil, err
	}
	tcfg := cfg.Train
	tcfg.EvalBatch = evalBatch
	budgets, err := SamplerBudgets(cfg, ar)
	if err != nil {
		return nil, err
	}
	smp, err := sampler.NewForBudgets(cfg.Sampler, space, cfg.Train.TotalSteps(tl.BatchesPerEpoch()), budgets)
	if err != nil {
		return nil, err
	}
	var evalSubnets []train.Named
	for _, name := range arch.SubnetNames {
		s, err := arch.NamedSubnet(name, ar, &space)
		if err != nil {
			return nil, err
		}
		evalSubnets = append(evalSubnets, train.Named{Name: name, Subnet: s})
	}
	setup := train.Setup{Arch: ar, Params: model.Params, Sampler: smp, Train: tl, Eval: el,
		EvalSubnets: evalSubnets, Ops: Ops(cfg.Ops), Config: tcfg, World: world}
	if t := opts.Teacher; t != nil {
		if err := ds.CheckModel("the teacher", t); err != nil {
			return nil, err
		}
		setup.Teacher = &train.Teacher{Arch: t.Arch, Params: t.Float32Params(), Subnet: arch.Largest(t.Arch)}
	}
	if cfg.Sampler.BudgetOnly && setup.Teacher == nil {
		return nil, fmt.Errorf("%w: sampler.budget_only trains no largest subnet to distil from: it needs a fixed teacher (run.teacher: dense in `ofa run`, or a teacher's model file)", ErrConfig)
	}
	tr, err := train.New(setup)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	if r := opts.Resume; r != nil {
		if err := tr.Restore(train.State{Step: r.Step, OptimT: r.OptimT, M: r.M, V: r.V}); err != nil {
			return nil, err
		}
	}
	// everything is checked before the directory is touched: a run that fails here (a resume
	// state past the run's end, a configuration that does not fit the weights) leaves it as
	// it was, still usable
	if err := modelfile.BeginDir(out, "train"); err != nil {
		return nil, err
	}
	if err := modelfile.WriteAtomic(filepath.Join(out, FileConfig), append(append([]byte(nil), opts.StoredConfig...), '\n')); err != nil {
		return nil, err
	}
	cost := ar.ModelCost()
	opts.log("supernet: %d layers, dim %d, %d heads, MLP %d, %d tokens: %d params, %.1f MMACs per example; BLAS %s",
		len(ar.Layers), ar.Dim, ar.Layers[0].Heads, ar.Layers[0].MLP, ar.Tokens(), cost.Params, float64(cost.MACs)/1e6, nn.Backend())
	opts.log("training %d steps (%d per epoch), sampler %s; output in %s", tr.TotalSteps(), tr.BatchesPerEpoch(), smp.Name(), out)
	if world.Size() > 1 {
		opts.log("data parallel over %d ranks (%s): %d of the batch's %d shards each", world.Size(), world.Name(),
			tcfg.Shards/world.Size(), tcfg.Shards)
	}

	resumePath := filepath.Join(out, FileResume)
	metricsPath := filepath.Join(out, FileMetrics)
	var metrics *train.MetricsHook
	switch {
	case !lead:
	case opts.Resume != nil:
		// records past the resumed step (written after the last resume state) go
		metrics, err = train.NewMetricsHookResumed(metricsPath, 10, opts.Resume.Step)
	default:
		metrics, err = newMetrics(metricsPath, 10)
	}
	if err != nil {
		return nil, err
	}
	if metrics != nil {
		defer metrics.Close()
	}
	// the wall time of earlier invocations, when the resume state records it
	prior, timed := 0.0, true
	if r := opts.Resume; r != nil {
		prior, timed = r.Seconds, r.Timed
	}
	began := time.Now()
	save := func(t *train.Trainer) error {
		st := t.State()
		return modelfile.SaveResume(resumePath, &modelfile.Resume{Model: model, Step: st.Step, OptimT: st.OptimT, M: st.M, V: st.V,
			RunConfig: string(opts.StoredConfig), Seconds: prior + time.Since(began).Seconds(), Timed: timed})
	}
	var lastEval train.EvalStats
	ckpt := &train.CheckpointHook{
		Every: cfg.Train.CheckpointEvery,
		Save:  save,
		OnEvalSave: func(t *train.Trainer, e train.EvalStats) error {
			lastEval = e
			return modelfile.Save(filepath.Join(out, FileSupernet), model)
		},
	}
	if opts.Resume != nil {
		ckpt.LastStep = opts.Resume.Step
	}
	progress := train.NewProgressHook(opts.progress(), "train", tr.TotalSteps(), tr.Step())
	curve := &curveHook{}
	hooks := []train.Hook{progress}
	if lead {
		hooks = append(hooks, metrics)
	}
	if cfg.Reorder.EveryEpochs > 0 {
		calib, _, err := EvalLoader(ds.Train, 100, model.Preprocess)
		if err != nil {
			return nil, err
		}
		// before the checkpoint hook, so saved states include the permutation
		hooks = append(hooks, &reorderHook{every: cfg.Reorder.EveryEpochs * tr.BatchesPerEpoch(), calib: calib,
			batches: min(cfg.Reorder.CalibrationBatches, calib.BatchesPerEpoch()), criteria: cfg.Extract.Criteria, log: opts.log})
	}
	if lead {
		hooks = append(hooks, ckpt)
	}
	hooks = append(hooks, curve)
	start, startStep := time.Now(), tr.Step()
	err = tr.Run(ctx, hooks...)
	elapsed := time.Since(start).Seconds()
	switch {
	case err != nil && !lead: // rank 0 says where the state is
		return nil, err
	case errors.Is(err, train.ErrInterrupted):
		return nil, fmt.Errorf("%w; state saved at step %d in %s: continue with --resume", err, ckpt.LastStep, resumePath)
	case errors.Is(err, train.ErrNonFinite):
		if ckpt.LastStep > 0 {
			return nil, fmt.Errorf("%w; the last good checkpoint is %s (step %d)", err, resumePath, ckpt.LastStep)
		}
		return nil, fmt.Errorf("%w; no checkpoint was written before it", err)
	case err != nil:
		return nil, err
	}
	path := filepath.Join(out, FileSupernet)
	if lead {
		if err := save(tr); err != nil {
			return nil, err
		}
		if err := modelfile.Save(path, model); err != nil {
			return nil, err
		}
		if err := modelfile.CommitDir(out); err != nil {
			return nil, err
		}
	}
	// the other ranks return once the files are there (they may read them next)
	if err := world.Barrier(); err != nil {
		return nil, fmt.Errorf("train: after the last step: %w", err)
	}
	steps := tr.Step() - startStep
	subnets, macs := tr.Work()
	losses, accs := curve.lossCurve(curveLoss), curve.accCurve(curveAccuracy, "largest")
	if opts.Resume != nil {
		// the hook saw only this invocation's steps; the metrics file holds the whole run
		if l, a, err := metricsCurves(metricsPath); err == nil {
			losses, accs = l, a
		} else {
			opts.log("training curves cover only the resumed steps: %v", err)
		}
	}
	return &TrainResult{SubnetsTrained: subnets, TrainMACs: macs, Model: model, Path: path, Eval: lastEval.Subnets, Steps: tr.Step(), Seconds: elapsed,
		SamplesPerSec: float64(steps*cfg.Train.BatchSize) / elapsed, RunSeconds: prior + time.Since(began).Seconds(), RunTimed: timed,
		Losses: losses, Accuracies: accs}, nil
}

// newMetrics starts the metrics file at path afresh: a run that starts over (a run killed
// before its first resume state and redone, a fine-tune redone, --force) must not append
// its records to those of the run it replaces.
func newMetrics(path string, every int) (*train.MetricsHook, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing the earlier run's metrics: %w", err)
	}
	return train.NewMetricsHook(path, every)
}

// LoadDense reads a trained dense model (an ofa model file of the supernet's largest size,
// or a timm ViT state dict saved as safetensors) as the starting weights of the supernet
// that cfg describes for ds. An ofa model's preprocessing must equal the data's, so its
// weights see the inputs they were trained on.
func LoadDense(path string, cfg Config, ds *Dataset) (*modelfile.DenseModel, error) {
	ar, _, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
	if err != nil {
		return nil, err
	}
	d, err := modelfile.LoadDenseFile(path, ar)
	if err != nil {
		return nil, err
	}
	if d.Preprocess != nil {
		fm, fs := d.Preprocess.PerChannel(ds.Channels)
		dm, dsd := ds.pre.PerChannel(ds.Channels)
		if !slices.Equal(fm, dm) || !slices.Equal(fs, dsd) {
			return nil, fmt.Errorf("%w: %s normalises inputs with mean %v, std %v; this data uses %v, %v", ErrConfig, path, fm, fs, dm, dsd)
		}
	}
	return d, nil
}

// reorderHook rewires the supernet during training.
type reorderHook struct {
	every    int // steps
	calib    data.Batcher
	batches  int
	criteria extract.Criteria
	log      func(string, ...any)
	count    int // reorderings done
}

// OnStep implements train.Hook.
func (h *reorderHook) OnStep(t *train.Trainer, s train.StepStats) error {
	if h.every <= 0 || s.Step%h.every != 0 || s.Step == t.TotalSteps() {
		return nil
	}
	a, p := t.Arch(), t.Params()
	scores, err := extract.Score(a, p, extract.Calibration{Data: h.calib, Batches: h.batches}, h.criteria)
	if err != nil {
		return fmt.Errorf("reorder at step %d: %w", s.Step, err)
	}
	st := t.State()
	if err := extract.Reorder(a, p, extract.ByImportance(scores), st.M, st.V); err != nil {
		return err
	}
	h.count++
	h.log("step %d: reordered heads and neurons by importance (%s/%s)", s.Step, h.criteria.Heads, h.criteria.Neurons)
	return nil
}

// OnEval implements train.Hook.
func (h *reorderHook) OnEval(*train.Trainer, train.EvalStats) error { return nil }

// curveHook records evaluations and the training loss for plots.
type curveHook struct {
	evals  []train.EvalStats
	losses []float64
	steps  []int
}

func (h *curveHook) OnStep(_ *train.Trainer, s train.StepStats) error {
	if s.Step%10 == 0 {
		h.losses = append(h.losses, s.Loss)
		h.steps = append(h.steps, s.Step)
	}
	return nil
}

func (h *curveHook) OnEval(_ *train.Trainer, e train.EvalStats) error {
	h.evals = append(h.evals, e)
	return nil
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
