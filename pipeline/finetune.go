package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ofa-go/ofa/arch"
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
	whole := []train.Named{{Name: "model", Subnet: arch.Largest(m.Arch)}}
	setup := train.Setup{Arch: m.Arch, Params: student.Params, Sampler: train.Fixed{arch.Largest(m.Arch)}, Train: tl, Eval: vl,
		EvalSubnets: whole, Ops: Ops(cfg.Ops), Config: fc, World: opts.World}
	if teacher != nil {
		setup.Teacher = &train.Teacher{Arch: teacher.Arch, Params: teacher.Float32Params(), Subnet: arch.Largest(teacher.Arch)}
	} else {
		setup.Config.Alpha, setup.Config.HiddenDistill = 0, 0
	}
	tr, err := train.New(setup)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	var hooks []train.Hook
	modelPath := ""
	lead := cluster.IsLeader(opts.World)
	if opts.Dir != "" && lead {
		if err := modelfile.BeginDir(opts.Dir, "finetune"); err != nil {
			return nil, err
		}
		modelPath = filepath.Join(opts.Dir, FileModel)
		metrics, err := newMetrics(filepath.Join(opts.Dir, FileMetrics), 10)
		if err != nil {
			return nil, err
		}
		defer metrics.Close()
		hooks = append(hooks, metrics)
	}
	var best *supernet.Params
	bestHook := &train.BestHook{Name: "model", Save: func(t *train.Trainer, e train.EvalStats) error {
		best = t.Params().Clone()
		if modelPath == "" {
			return nil
		}
		saved := *student
		saved.Params = best
		return modelfile.Save(modelPath, &saved)
	}}
	curve := &curveHook{}
	progress := train.NewProgressHook(opts.progress(), opts.Title, tr.TotalSteps(), 0)
	progress.Split = "validation"
	start := time.Now()
	err = tr.Run(ctx, append([]train.Hook{progress, bestHook, curve}, hooks...)...)
	if errors.Is(err, train.ErrInterrupted) && best != nil && modelPath != "" {
		return nil, fmt.Errorf("%w; the best model so far is in %s", err, modelPath)
	}
	if err != nil {
		return nil, err
	}
	student.Params = best
	res := &FinetuneResult{Model: student, BestVal: bestHook.Best, BestStep: bestHook.BestStep, Steps: tr.Step(),
		Seconds: time.Since(start).Seconds(), Curve: curve.accCurve("validation", "model")}
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
	}
	// the other ranks return once the files are there (they may read them next)
	if err := cluster.OrNone(opts.World).Barrier(); err != nil {
		return nil, fmt.Errorf("finetune: after the last step: %w", err)
	}
	return res, nil
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
