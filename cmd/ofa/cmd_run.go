package main

import (
	"fmt"
	"github.com/ofa-go/ofa/config"
	"os"
	"path/filepath"

	"github.com/ofa-go/ofa/configfile"

	"github.com/ofa-go/ofa/pipeline"
	"github.com/spf13/cobra"
)

func (a *app) runCmd() *cobra.Command {
	var force, resume bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "The whole lifecycle: train a supernet, then extract, expand, fine-tune and report for each budget",
		Example: `  ofa run --config configs/demo.yaml --out runs/demo --force     # the README demo: embedded subset, a few minutes
  ofa run --config configs/demo.yaml --out runs/demo --resume    # continue after a crash or Ctrl-C
  ofa run --config configs/demo.yaml --supernet runs/demo/supernet/supernet.safetensors --budgets 3x,macs=1e6 --out runs/demo-more
  ofa run --config configs/fashion-mnist.yaml --out runs/full    # full Fashion-MNIST (hours on two cores)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if force && resume {
				return fmt.Errorf("%w: --force starts over and --resume continues: give one", errUsage)
			}
			loader := a.loader(fk)
			var cfg config.Config
			var err error
			if resume {
				out, _ := cmd.Flags().GetString("out")
				var origin string
				if cfg, origin, err = loader.ForResume(out); err != nil {
					return err
				}
				a.say("%s", origin)
			} else if cfg, err = loader.Load(); err != nil {
				return err
			}
			release, err := a.claim(cfg.Out, func() error {
				if _, err := os.Stat(filepath.Join(cfg.Out, pipeline.FileReport)); err == nil && !force && !resume {
					return fmt.Errorf("%w: %s already holds a report: use --force to replace it", errUsage, cfg.Out)
				}
				if _, err := os.Stat(filepath.Join(cfg.Out, pipeline.DirSupernet)); err == nil && !force && !resume {
					return fmt.Errorf("%w: %s already holds a lifecycle: use --resume to continue it or --force to start over", errUsage, cfg.Out)
				}
				return nil
			})
			if err != nil {
				return err
			}
			defer release()
			rep, err := pipeline.Lifecycle(cmd.Context(), cfg, pipeline.LifecycleOptions{Output: a.output(), Dir: cfg.Out,
				Resume: resume, StoredConfig: configfile.Store(cfg), World: a.world})
			if err != nil || rep == nil { // ranks other than 0 have no report
				return err
			}
			report := filepath.Join(cfg.Out, pipeline.FileReport)
			a.say("== report: %s", report)
			for _, row := range rep.Rows {
				a.say("  %-5s %-22s params %7d  layers %d/positions %2d  MACs %9d  %7.3f ms  test %6.2f%%", row.Budget, row.Variant,
					row.Params, row.Layers, row.Positions, row.MACs, row.LatencyMS, 100*row.Accuracy)
				for _, f := range row.Flags {
					a.say("        note: %s", f)
				}
			}
			a.say("== recommendation (within each budget, the pipeline's most accurate model unless a baseline beat it beyond noise; the report says how to read it)")
			for _, rec := range rep.Recommendations {
				best := rec.Best()
				if best.Variant == "" {
					a.say("  %-5s nothing fits the budget", rec.Budget)
					continue
				}
				if best.Baseline {
					a.say("  %-5s ship the baseline %s (%.2f%%, %s): it beat the pipeline's %s (%.2f%%); %s", rec.Budget, best.Variant, 100*best.Accuracy,
						best.Model, rec.Ship, 100*rec.Accuracy, rec.Verdict())
					continue
				}
				a.say("  %-5s ship %s (%.2f%%, %s); best baseline %s: %s", rec.Budget, best.Variant, 100*best.Accuracy, best.Model, rec.Baseline, rec.Verdict())
			}
			a.emit(map[string]any{"command": "run", "out": cfg.Out, "report": report, "reference": rep.Reference, "rows": rep.Rows,
				"recommendations": rep.Recommendations})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&force, "force", false, "replace an existing lifecycle in --out (and retrain its supernet)")
	fs.BoolVar(&resume, "resume", false, "continue a stopped lifecycle in --out, redoing only the steps whose outputs are missing or incomplete")
	fs.String("out", "", "report directory")
	fs.String("supernet", "", "use this supernet instead of training one")
	fs.StringSlice("budgets", nil, "budgets, e.g. 2x,4x,8x")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files")
	fs.Bool("embedded", false, "use the embedded subset")
	fs.Int("epochs", 0, "supernet epochs")
	fs.Int("finetune-epochs", 0, "fine-tuning epochs")
	for flag, key := range map[string]string{"out": "out", "supernet": "run.supernet", "budgets": "run.budgets",
		"data": "data.dir", "embedded": "data.embedded", "epochs": "train.epochs", "finetune-epochs": "finetune.epochs"} {
		fk.add(fs, flag, key)
	}
	return cmd
}
