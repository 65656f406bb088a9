package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
)

// defaultFinetuneConfig: a short run at a lower rate, half labels and half distillation.
func defaultFinetuneConfig() train.Config {
	c := train.Default()
	c.Epochs, c.LR, c.WarmupSteps, c.Alpha, c.Temperature, c.LabelSmoothing = 5, 5e-4, 100, 0.5, 2, 0
	return c
}

func (a *app) finetuneCmd() *cobra.Command {
	var modelPath, teacherPath, out string
	var force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "finetune",
		Short: "Fine-tune an extracted or expanded model with labels and distillation from its supernet",
		Example: `  ofa finetune --model runs/fmnist/x4-expanded/model.safetensors --teacher runs/fmnist/supernet.safetensors --out runs/fmnist/x4-ft
  ofa finetune --model M --teacher S --epochs 10 --out F --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --model and --out are required", errUsage)
			}
			if err := refuseExistingModel(out, force); err != nil {
				return err
			}
			m, err := checkpoint.LoadModel(modelPath)
			if err != nil {
				return err
			}
			var teacher *checkpoint.Model
			if teacherPath != "" {
				if teacher, err = checkpoint.LoadModel(teacherPath); err != nil {
					return err
				}
			}
			sp, err := loadSplits(cfg.Data)
			if err != nil {
				return err
			}
			a.say("data: %s", sp.source)
			res, err := a.finetune(cmd.Context(), cfg, m, teacher, sp, out, "finetune")
			if err != nil {
				return err
			}
			a.say("best validation accuracy %.2f%% at step %d; test accuracy %.2f%%; saved %s",
				100*res.BestVal, res.BestStep, 100*res.Test, res.Path)
			a.emit(map[string]any{"command": "finetune", "model": res.Path, "val_accuracy": res.BestVal,
				"best_step": res.BestStep, "test_accuracy": res.Test, "steps": res.Steps, "seconds": res.Seconds,
				"params": m.Arch.ModelCost().Params, "macs": m.Arch.ModelCost().MACs})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "model to fine-tune (extracted or expanded)")
	fs.StringVar(&teacherPath, "teacher", "", "supernet to distil from (its largest subnet); without it, labels only")
	fs.StringVar(&out, "out", "", "output directory (model.safetensors is the best by validation accuracy)")
	fs.BoolVar(&force, "force", false, "replace an existing model in --out")
	fs.Int("epochs", 0, "epochs (finetune.epochs)")
	fs.Int("steps", 0, "steps, overriding epochs (finetune.steps)")
	fs.Float64("lr", 0, "peak learning rate (finetune.lr)")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files (data.dir)")
	fs.Bool("embedded", false, "use the embedded subset (data.embedded)")
	for flag, key := range map[string]string{"epochs": "finetune.epochs", "steps": "finetune.steps", "lr": "finetune.lr",
		"data": "data.dir", "embedded": "data.embedded"} {
		fk.add(fs, flag, key)
	}
	return cmd
}

// finetuneResult is one fine-tuning run.
type finetuneResult struct {
	Path     string
	Model    *checkpoint.Model
	BestVal  float64
	BestStep int
	Test     float64
	Steps    int
	Seconds  float64
	Curve    []train.EvalStats
	Losses   []float64 // training loss every 10 steps
}

// finetune trains model m (a copy) with cfg.Finetune on the training split, distilling from
// teacher's largest subnet when given, evaluates on the validation split every epoch, keeps
// the best model in out/model.safetensors and measures it on the test split.
func (a *app) finetune(ctx context.Context, cfg Config, m *checkpoint.Model, teacher *checkpoint.Model, sp *splits, out, title string) (*finetuneResult, error) {
	fc := cfg.Finetune
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	student := &checkpoint.Model{Kind: checkpoint.KindFinetuned, Arch: m.Arch, Params: m.Float32Params().Clone(),
		Preprocess: m.Preprocess, Extra: m.Extra}
	if err := sp.checkModel("the model", m); err != nil {
		return nil, err
	}
	if teacher != nil {
		if err := sp.checkModel("the teacher", teacher); err != nil {
			return nil, err
		}
	}
	tl, err := sp.trainLoader(sp.train, fc.BatchSize, fc.Seed, cfg.Data.Augment, m.Preprocess)
	if err != nil {
		return nil, err
	}
	vl, err := sp.evalLoader(sp.val, fc.EvalBatch, m.Preprocess)
	if err != nil {
		return nil, err
	}
	setup := train.Setup{Arch: m.Arch, Params: student.Params, Sampler: train.Fixed{arch.Largest(m.Arch)}, Train: tl, Eval: vl,
		EvalSubnets: []train.Named{{Name: "model", Subnet: arch.Largest(m.Arch)}}, Ops: ops(cfg.Ops), Config: fc}
	if teacher != nil {
		setup.Teacher = &train.Teacher{Arch: teacher.Arch, Params: teacher.Float32Params(), Subnet: arch.Largest(teacher.Arch)}
	} else {
		setup.Config.Alpha = 0
	}
	tr, err := train.New(setup)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	res := &finetuneResult{Path: filepath.Join(out, fileModel)}
	var best *supernet.Params
	bestHook := &train.BestHook{Name: "model", Save: func(t *train.Trainer, e train.EvalStats) error {
		best = t.Params().Clone()
		saved := *student
		saved.Params = best
		return checkpoint.SaveModel(res.Path, &saved)
	}}
	metrics, err := train.NewMetricsHook(filepath.Join(out, fileMetrics), 10)
	if err != nil {
		return nil, err
	}
	defer metrics.Close()
	curve := &curveHook{}
	start := time.Now()
	progress := train.NewProgressHook(a.stderr, title, tr.TotalSteps(), 0)
	progress.Split = "validation"
	err = tr.Run(ctx, progress, metrics, bestHook, curve)
	if errors.Is(err, train.ErrInterrupted) && best != nil {
		return nil, fmt.Errorf("%w; the best model so far is in %s", err, res.Path)
	}
	if err != nil {
		return nil, err
	}
	res.Seconds, res.Steps, res.BestVal, res.BestStep = time.Since(start).Seconds(), tr.Step(), bestHook.Best, bestHook.BestStep
	res.Curve, res.Losses = curve.evals, curve.losses
	student.Params = best
	res.Model = student
	tel, err := sp.evalLoader(sp.test, 250, m.Preprocess)
	if err != nil {
		return nil, err
	}
	r, err := train.Evaluate(m.Arch, best, ops(cfg.Ops), tel, 250, []train.Named{{Name: "model", Subnet: arch.Largest(m.Arch)}})
	if err != nil {
		return nil, err
	}
	res.Test = r[0].Accuracy
	return res, nil
}

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
