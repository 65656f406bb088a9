package main

import (
	"fmt"
	"path/filepath"

	"github.com/ofa-go/ofa/configfile"

	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/spf13/cobra"
)

func (a *app) finetuneCmd() *cobra.Command {
	var modelPath, teacherPath, out string
	var force, resume bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "finetune",
		Short: "Fine-tune an extracted or expanded model with labels and distillation from its supernet",
		Example: `  ofa finetune --config configs/demo.yaml --model runs/demo-x4e/model.safetensors --teacher runs/demo/supernet/supernet.safetensors --out runs/demo-x4e-ft
  ofa finetune --model M --teacher S --epochs 10 --out F --json
  ofa finetune --model M --teacher S --epochs 10 --out F --resume   # continue after a crash or Ctrl-C`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --model and --out are required", errUsage)
			}
			if resume && force {
				return fmt.Errorf("%w: --resume continues the fine-tuning in --out, --force starts it over: give one", errUsage)
			}
			release, err := a.claim(out, func() error {
				if resume {
					return refuseFinishedModel(out)
				}
				return refuseExistingModel(out, force)
			})
			if err != nil {
				return err
			}
			defer release()
			m, cfg, origin, err := a.modelConfig(modelPath, fk)
			if err != nil {
				return err
			}
			var teacher *modelfile.Model
			if teacherPath != "" {
				if teacher, err = modelfile.Load(teacherPath); err != nil {
					return err
				}
			}
			ds, err := a.modelData(cfg, modelPath, m, origin)
			if err != nil {
				return err
			}
			res, err := pipeline.Finetune(cmd.Context(), cfg, m, teacher, ds, pipeline.FinetuneOptions{Output: a.output(), Title: "finetune", Dir: out,
				StoredConfig: configfile.Store(cfg), World: a.world, Resume: resume})
			if err != nil {
				return err
			}
			path := filepath.Join(out, pipeline.FileModel)
			a.say("best validation accuracy %.2f%% at step %d; test accuracy %.2f%%; saved %s",
				100*res.BestVal, res.BestStep, 100*res.Test, path)
			cost := m.Arch.ModelCost()
			a.emit(map[string]any{"command": "finetune", "model": path, "val_accuracy": res.BestVal,
				"best_step": res.BestStep, "test_accuracy": res.Test, "steps": res.Steps, "seconds": res.Seconds,
				"params": cost.Params, "macs": cost.MACs})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "model to fine-tune (extracted or expanded)")
	fs.StringVar(&teacherPath, "teacher", "", "supernet to distil from (its largest subnet); without it, labels only")
	fs.StringVar(&out, "out", "", "output directory (model.safetensors is the best by validation accuracy)")
	fs.BoolVar(&force, "force", false, "replace an existing model in --out")
	fs.BoolVar(&resume, "resume", false, "continue the fine-tuning that stopped in --out, with the same model, teacher and settings")
	fs.Int("epochs", 0, "epochs")
	fs.Int("steps", 0, "steps, overriding epochs")
	fs.Float64("lr", 0, "peak learning rate")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files")
	fs.Bool("embedded", false, "use the embedded subset")
	for flag, key := range map[string]string{"epochs": "finetune.epochs", "steps": "finetune.steps", "lr": "finetune.lr",
		"data": "data.dir", "embedded": "data.embedded"} {
		fk.add(fs, flag, key)
	}
	return cmd
}
