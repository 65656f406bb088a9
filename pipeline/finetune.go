package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
)

// FinetuneOptions configures Finetune beyond the configuration.
type FinetuneOptions struct {
	Output
	// Title labels the progress bar.
	Title string
	// Dir, if set, receives model.safetensors (the best model by validation accuracy,
	// written whenever it improves), metrics.jsonl and result.json; the directory is marked
	// incomplete until the run ends.
	Dir string
	// World (nil: one process) is the data-parallel run this process is a rank of; rank 0
	// alone writes into Dir.
	World cluster.World
	// StoredConfig, if set, is the configuration as stored (configfile.Store) and becomes
	// the fine-tuned model's provenance configuration; otherwise the input model's is kept.
	StoredConfig []byte
	// Resume continues the run that stopped in Dir from its resume state (FileResume,
	// written at every evaluation, or every finetune.checkpoint_every steps, and when the
	// run is interrupted); without one there the run starts over. A resume state of
	// another fine-tuning (another training section or architecture) is an error.
	Resume bool
	// hooks run after the others (tests stop a run with them).
	hooks []train.Hook
}

// FinetuneResult is one fine-tuning run.
type FinetuneResult struct {
	// Model is the best model by validation accuracy (kind finetuned).
	Model    *modelfile.Model `json:"-"`
	BestVal  float64          `json:"val_accuracy"`
	BestStep int              `json:"best_step"`
	Test     float64          `json:"test_accuracy"`
	Steps    int              `json:"steps"`
	Seconds  float64          `json:"seconds"`
	// Untimed says Seconds leaves out earlier invocations (the run resumed from a state
	// that does not record their wall time).
	Untimed bool `json:"untimed,omitempty"`
	// Curve is the validation accuracy at every evaluation.
	Curve report.Curve `json:"curve"`
}

// Finetune trains a copy of model m with cfg.Finetune on the training split, distilling
// from teacher's largest subnet when given, evaluates on the validation split every epoch,
// keeps the best model and measures it on the test split.
func Finetune(ctx context.Context, cfg Config, m, teacher *modelfile.Model, ds *Dataset, opts FinetuneOptions) (*FinetuneResult, error) {
	fc := cfg.Finetune
	if err := fc.ValidateFor("finetune", m.Arch); err != nil {
		return nil, err
	}
	if err := ds.CheckModel("the model", m); err != nil {
		return nil, err
	}
	if teacher != nil {
		if err := ds.CheckModel("the teacher", teacher); err != nil {
			return nil, err
		}
	}
	var prov *modelfile.Provenance
	if m.Provenance != nil {
		p := *m.Provenance
		p.Step = "finetune"
		prov = &p
	}
	if opts.StoredConfig != nil {
		if prov == nil {
			prov = &modelfile.Provenance{Step: "finetune"}
		}
		prov.Config = string(opts.StoredConfig)
	}
	kind := modelfile.KindFinetuned
	if m.Kind == modelfile.KindDense { // trained from random weights: still not derived from a supernet
		kind = modelfile.KindDense
	}
	student := &modelfile.Model{Kind: kind, Arch: m.Arch, Params: m.Float32Params().Clone(),
		Preprocess: m.Preprocess, Provenance: prov, Data: ds.Record(), Extra: m.Extra}
	tl, err := TrainLoader(ds.Train, fc.BatchSize, fc.Seed, m.Preprocess)
	if err != nil {
		return nil, err
	}
	vl, evalBatch, err := EvalLoader(ds.Val, fc.EvalBatch, m.Preprocess)
	if err != nil {
		return nil, err
	}
	fc.EvalBatch = evalBatch
	if teacher == nil {
		fc.Alpha, fc.HiddenDistill = 0, 0
	}
	// the training section identifies the run: a resume state of another one is refused
	fcJSON, err := json.Marshal(fc)
	if err != nil {
		return nil, err
	}
	lead := cluster.IsLeader(opts.World)
	var modelPath, resumePath string
	if opts.Dir != "" {
		modelPath, resumePath = filepath.Join(opts.Dir, FileModel), filepath.Join(opts.Dir, FileResume)
	}
	var state *modelfile.Resume
	var best *supernet.Params
	if opts.Resume && resumePath != "" {
		if state, best, err = loadFinetuneState(resumePath, modelPath, m.Arch, fcJSON); err != nil {
			return nil, err
		}
		if state != nil {
			student.Params = state.Model.Float32Params()
		}
	}
	whole := []train.Named{{Name: "model", Subnet: arch.Largest(m.Arch)}}
	setup := train.Setup{Arch: m.Arch, Params: student.Params, Sampler: train.Fixed{arch.Largest(m.Arch)}, Train: tl, Eval: vl,
		EvalSubnets: whole, Ops: Ops(cfg.Ops), Config: fc, World: opts.World}
	if teacher != nil {
		setup.Teacher = &train.Teacher{Arch: teacher.Arch, Params: teacher.Float32Params(), Subnet: arch.Largest(teacher.Arch)}
	}
	tr, err := train.New(setup)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	bestHook := &train.BestHook{Name: "model"}
	prior, timed := 0.0, true // seconds spent by earlier invocations, if recorded
	if state != nil {
		if err := tr.Restore(train.State{Step: state.Step, OptimT: state.OptimT, M: state.M, V: state.V}); err != nil {
			return nil, fmt.Errorf("%s: %w", resumePath, err)
		}
		bestHook.Resume(state.Finetune.BestAccuracy, state.Finetune.BestStep)
		prior, timed = state.Seconds, state.Timed
		if !state.Timed {
			opts.log("%s: the resume state does not record the earlier wall time: the result counts this invocation's only", opts.Title)
		}
		opts.log("%s: continuing at step %d of %d (best validation accuracy so far %.2f%% at step %d)",
			opts.Title, state.Step, tr.TotalSteps(), 100*state.Finetune.BestAccuracy, state.Finetune.BestStep)
	}
	var hooks []train.Hook
	start := time.Now()
	ckpt := &train.CheckpointHook{Every: fc.CheckpointEvery}
	if opts.Dir != "" && lead {
		if err := modelfile.BeginDir(opts.Dir, "finetune"); err != nil {
			return nil, err
		}
		var metrics *train.MetricsHook
		if state != nil {
			// records past the resumed step (written after the resume state) go
			metrics, err = train.NewMetricsHookResumed(filepath.Join(opts.Dir, FileMetrics), 10, state.Step)
			ckpt.LastStep = state.Step
		} else {
			metrics, err = newMetrics(filepath.Join(opts.Dir, FileMetrics), 10)
		}
		if err != nil {
			return nil, err
		}
		defer metrics.Close()
		// the checkpoint comes after the best model's save, so a resume state never
		// names a best step whose model file is not written yet
		runConfig := ""
		if student.Provenance != nil {
			runConfig = student.Provenance.Config
		}
		ckpt.Save = func(t *train.Trainer) error {
			st := t.State()
			live := *student
			live.Params = t.Params()
			return modelfile.SaveResume(resumePath, &modelfile.Resume{Model: &live, Step: st.Step, OptimT: st.OptimT, M: st.M, V: st.V,
				RunConfig: runConfig, Seconds: prior + time.Since(start).Seconds(), Timed: timed,
				Finetune: &modelfile.FinetuneProgress{Config: fcJSON, BestAccuracy: bestHook.Best, BestStep: bestHook.BestStep}})
		}
		hooks = append(hooks, metrics, ckpt)
	}
	bestHook.Save = func(t *train.Trainer, e train.EvalStats) error {
		best = t.Params().Clone()
		if modelPath == "" || !lead {
			return nil
		}
		saved := *student
		saved.Params = best
		return modelfile.Save(modelPath, &saved)
	}
	curve := &curveHook{}
	progress := train.NewProgressHook(opts.progress(), opts.Title, tr.TotalSteps(), tr.Step())
	progress.Split = "validation"
	err = tr.Run(ctx, append(append([]train.Hook{progress, bestHook, curve}, hooks...), opts.hooks...)...)
	switch {
	case errors.Is(err, train.ErrInterrupted) && ckpt.LastStep > 0 && resumePath != "":
		return nil, fmt.Errorf("%w; state saved at step %d in %s: continue with --resume", err, ckpt.LastStep, resumePath)
	case errors.Is(err, train.ErrNonFinite) && ckpt.LastStep > 0 && resumePath != "":
		return nil, fmt.Errorf("%w; the last good checkpoint is %s (step %d)", err, resumePath, ckpt.LastStep)
	case err != nil:
		return nil, err
	}
	if best == nil {
		return nil, fmt.Errorf("finetune: %s: no evaluation in %d steps", opts.Title, tr.Step())
	}
	student.Params = best
	if state != nil && lead && opts.Dir != "" {
		// this invocation saw only its own evaluations; the metrics file holds the run's
		if h, err := metricsCurveHook(filepath.Join(opts.Dir, FileMetrics)); err == nil {
			curve = h
		} else {
			opts.log("%s: the validation curve covers only the resumed steps: %v", opts.Title, err)
		}
	}
	res := &FinetuneResult{Model: student, BestVal: bestHook.Best, BestStep: bestHook.BestStep, Steps: tr.Step(),
		Seconds: prior + time.Since(start).Seconds(), Untimed: !timed, Curve: curve.accCurve("validation", "model")}
	if res.Test, err = Accuracy(m.Arch, best, Ops(cfg.Ops), ds.Test, m.Preprocess); err != nil {
		return nil, err
	}
	if opts.Dir != "" && lead {
		if err := modelfile.WriteJSON(filepath.Join(opts.Dir, FileResult), res); err != nil {
			return nil, err
		}
		if err := modelfile.CommitDir(opts.Dir); err != nil {
			return nil, err
		}
		// the finished run's model and result replace its resume state
		if err := os.Remove(resumePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	// the other ranks return once the files are there (they may read them next)
	if err := cluster.OrNone(opts.World).Barrier(); err != nil {
		return nil, fmt.Errorf("finetune: after the last step: %w", err)
	}
	return res, nil
}

// loadFinetuneState reads the resume state of a fine-tuning at resumePath (nil, without
// an error, when there is none) and the best model so far at modelPath: the state must be
// a fine-tuning's of architecture a with the training section cfg (JSON).
func loadFinetuneState(resumePath, modelPath string, a arch.Arch, cfg []byte) (*modelfile.Resume, *supernet.Params, error) {
	if _, err := os.Stat(resumePath); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	st, err := modelfile.LoadResume(resumePath)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case st.Finetune == nil:
		return nil, nil, fmt.Errorf("%w: %s is a supernet's resume state, not a fine-tuning's", ErrConfig, resumePath)
	case st.Model.Arch.JSON() != a.JSON():
		return nil, nil, fmt.Errorf("%w: %s continues a model of architecture %s, not the given %s: use another --out, or --force to start over",
			ErrConfig, resumePath, st.Model.Arch.JSON(), a.JSON())
	case !sameTrainingSection(st.Finetune.Config, cfg):
		return nil, nil, fmt.Errorf("%w: %s continues a fine-tuning with the training section %s, not %s: use the same settings, another --out, or --force to start over",
			ErrConfig, resumePath, st.Finetune.Config, cfg)
	}
	if st.Finetune.BestStep == 0 {
		return st, nil, nil
	}
	// the best model so far, in the directory the run still marks incomplete
	f, err := checkpoint.ReadFile(modelPath, checkpoint.Limits{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s names a best model at step %d: %w", resumePath, st.Finetune.BestStep, err)
	}
	bm, err := modelfile.FromFile(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", modelPath, err)
	}
	if bm.Arch.JSON() != a.JSON() {
		return nil, nil, fmt.Errorf("%w: %s holds architecture %s, its resume state %s", ErrDamaged, modelPath, bm.Arch.JSON(), a.JSON())
	}
	return st, bm.Float32Params(), nil
}

// sameTrainingSection reports whether a training section stored in a resume state (JSON
// of a train.Config, perhaps written by an older version with fewer fields) is cur (JSON
// of this version's): the stored one is decoded into this version's train.Config, its
// missing fields at zero, and compared as this version encodes it.
func sameTrainingSection(stored, cur []byte) bool {
	if bytes.Equal(stored, cur) {
		return true
	}
	var c train.Config
	if err := json.Unmarshal(stored, &c); err != nil {
		return false
	}
	b, err := json.Marshal(c)
	return err == nil && bytes.Equal(b, cur)
}

// LoadFinetuned reads a fine-tuning directory written by Finetune (its model and result),
// for resumed lifecycles; an incomplete directory is an error.
func LoadFinetuned(dir string) (*FinetuneResult, error) {
	m, err := modelfile.Load(filepath.Join(dir, FileModel))
	if err != nil {
		return nil, err
	}
	var r FinetuneResult
	if err := readJSON(filepath.Join(dir, FileResult), &r); err != nil {
		return nil, err
	}
	r.Model = m
	return &r, nil
}

// loadFinetunedSteps reads a fine-tuning directory for a resumed lifecycle; a run of
// another step count than steps (0: any) is stale, to be redone.
func loadFinetunedSteps(dir string, steps int) (*FinetuneResult, error) {
	r, err := LoadFinetuned(dir)
	if err == nil && steps > 0 && r.Steps != steps {
		return nil, fmt.Errorf("%w: %s ran %d steps, this run asks for %d", errStale, dir, r.Steps, steps)
	}
	return r, err
}
