package main

import (
	"errors"
	"fmt"
	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/configfile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagKeys binds flags to configuration keys.
type flagKeys map[string]*pflag.Flag

// annotationKey is the flag annotation naming the configuration key a flag sets (the
// reference, docs/CONFIG.md, reads it).
const annotationKey = "ofa_config_key"

// add binds flag name to configuration key: the flag's help names the key and its
// built-in default, which the flag's own zero value does not show.
func (fk flagKeys) add(fs *pflag.FlagSet, name, key string) {
	f := fs.Lookup(name)
	def, ok := configfile.Default(key)
	if f == nil || !ok {
		panic(fmt.Sprintf("ofa: flag --%s bound to configuration key %q: no such flag or key", name, key))
	}
	if def == `""` || def == "[]" {
		f.Usage += fmt.Sprintf(" (config key %s)", key)
	} else {
		f.Usage += fmt.Sprintf(" (config key %s, default %s)", key, def)
	}
	if err := fs.SetAnnotation(name, annotationKey, []string{key}); err != nil {
		panic("ofa: " + err.Error())
	}
	fk[key] = f
}

// changed keeps the flags the user set (unset flags must not override file or environment).
func changed(fk flagKeys) map[string]*pflag.Flag {
	out := map[string]*pflag.Flag{}
	for k, f := range fk {
		if f.Changed {
			out[k] = f
		}
	}
	return out
}

// resumeConflicts names the flags given beside --resume that the resumed run would
// ignore (its configuration comes from the resume file); allowed are the few that only
// say where the run is.
func resumeConflicts(fs *pflag.FlagSet, allowed ...string) error {
	var bad []string
	fs.Visit(func(f *pflag.Flag) {
		for _, a := range append(allowed, "resume") {
			if f.Name == a {
				return
			}
		}
		bad = append(bad, "--"+f.Name)
	})
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v cannot be combined with --resume: a resumed run keeps the configuration stored in its resume file", errUsage, bad)
	}
	return nil
}

func (a *app) trainCmd() *cobra.Command {
	var resume, force bool
	var from string
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train an elastic ViT supernet with sandwich sampling and in-place distillation",
		Example: `  ofa train --config configs/demo.yaml --out runs/quick      # the demo's supernet alone (about a minute)
  ofa train --out runs/quick --resume                        # continue after a crash or Ctrl-C
  ofa train --config configs/fashion-mnist.yaml --out runs/fmnist`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg config.Config
			var state *modelfile.Resume
			var err error
			if resume {
				if a.configFile != "" {
					return fmt.Errorf("%w: --config cannot be combined with --resume: a resumed run keeps the configuration stored in its resume file", errUsage)
				}
				if err := resumeConflicts(cmd.Flags(), "out", "json"); err != nil {
					return err
				}
				out, _ := cmd.Flags().GetString("out")
				if out == "" {
					return fmt.Errorf("%w: --resume needs --out, the run's directory", errUsage)
				}
				release, err := a.claim(out)
				if err != nil {
					return err
				}
				defer release()
				if cfg, state, err = loadResume(out); err != nil {
					return err
				}
				a.say("resuming %s at step %d (configuration from the resume file)", filepath.Join(out, pipeline.FileResume), state.Step)
			} else {
				if cfg, err = a.loader(fk).Load(); err != nil {
					return err
				}
				release, err := a.claim(cfg.Out, func() error {
					if _, err := os.Stat(filepath.Join(cfg.Out, pipeline.FileResume)); err == nil && !force {
						return fmt.Errorf("%w: %s already holds a training run: use --resume to continue it or --force to start over", errUsage, cfg.Out)
					}
					return nil
				})
				if err != nil {
					return err
				}
				defer release()
			}
			ds, err := pipeline.LoadDataWith(cfg.Data, a.stderr)
			if err != nil {
				return err
			}
			a.say("data: %s; training on %d, validation %d, test %d", ds.Source, ds.Train.N(), ds.Val.N(), ds.Test.N())
			opts := pipeline.TrainOptions{Output: a.output(), Dir: cfg.Out, Resume: state, StoredConfig: configfile.Store(cfg), World: a.world}
			if state != nil {
				opts.StoredConfig = []byte(state.RunConfig)
			}
			if from != "" {
				if resume {
					return fmt.Errorf("%w: --from starts a run; --resume continues one: give one", errUsage)
				}
				d, err := pipeline.LoadDense(from, cfg, ds)
				if err != nil {
					return err
				}
				opts.Init = d.Params
				a.say("starting from the dense model %s (%s names)", from, d.Naming)
			}
			switch t := cfg.Run.Teacher; t {
			case "":
			case pipeline.TeacherDense:
				return fmt.Errorf("%w: run.teacher %q: the dense teacher is trained by `ofa run`; `ofa train` takes a teacher's model file", errUsage, t)
			default:
				if opts.Teacher, err = pipeline.LoadTeacher(t, ds); err != nil {
					return err
				}
				a.say("fixed teacher: %s", t)
			}
			res, err := pipeline.TrainSupernet(cmd.Context(), cfg, ds, opts)
			if err != nil {
				return err
			}
			a.say("done: %d steps in %.1fs (%.0f samples/s, every sampled subnet counted once per sample)", res.Steps, res.Seconds, res.SamplesPerSec)
			for _, s := range res.Eval {
				a.say("  %-8s %-40s test accuracy %6.2f%%  params %7d  MACs %9d", s.Name, s.Key, 100*s.Accuracy, s.Params, s.MACs)
			}
			a.say("supernet: %s", res.Path)
			a.emit(map[string]any{"command": "train", "out": cfg.Out, "supernet": res.Path,
				"steps": res.Steps, "seconds": res.Seconds, "samples_per_sec": res.SamplesPerSec, "data": ds.Source,
				"eval": res.Eval, "blas": nn.Backend(), "subnets_trained": res.SubnetsTrained, "train_macs": res.TrainMACs})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&resume, "resume", false, "continue the run in --out from its resume checkpoint (the configuration comes from the checkpoint)")
	fs.BoolVar(&force, "force", false, "start over even if --out holds a run")
	fs.StringVar(&from, "from", "", "start from a trained dense model: an ofa model of the supernet's largest size, or a timm ViT state dict in .safetensors (num_heads = model.heads)")
	fs.String("out", "", "output directory")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files")
	fs.Bool("embedded", false, "use the embedded 6,000/1,000 subset")
	fs.Int("epochs", 0, "epochs")
	fs.Int("steps", 0, "steps, overriding epochs")
	fs.Int("batch-size", 0, "batch size")
	fs.Float64("lr", 0, "peak learning rate")
	fs.Uint64("seed", 0, "data seed")
	fs.String("ops", "", "fused or composed")
	fs.Int("train-limit", 0, "use only the first N training examples")
	fs.Int("test-limit", 0, "use only the first N test examples")
	for flag, key := range map[string]string{"out": "out", "data": "data.dir", "embedded": "data.embedded",
		"epochs": "train.epochs", "steps": "train.steps", "batch-size": "train.batch_size", "lr": "train.lr",
		"seed": "train.seed", "ops": "ops", "train-limit": "data.train_limit", "test-limit": "data.test_limit"} {
		fk.add(fs, flag, key)
	}
	return cmd
}

// loadResume reads out's resume file and validates its stored configuration as strictly
// as a configuration file.
func loadResume(out string) (config.Config, *modelfile.Resume, error) {
	path := filepath.Join(out, pipeline.FileResume)
	state, err := modelfile.LoadResume(path)
	if errors.Is(err, fs.ErrNotExist) {
		return config.Config{}, nil, fmt.Errorf("%w: --resume: %s has no resume file (%s)", errUsage, out, pipeline.FileResume)
	}
	if err != nil {
		return config.Config{}, nil, err
	}
	if strings.TrimSpace(state.RunConfig) == "" {
		// without it the defaults would be trained over the run (issue 29, finding 4)
		return config.Config{}, nil, fmt.Errorf("--resume: %s stores no run configuration (metadata %q is missing or empty), so it cannot say what to continue: start over with --config FILE --force", path, modelfile.KeyRunConfig)
	}
	cfg, err := configfile.Loader{Stored: []byte(state.RunConfig), Where: path + " (stored configuration)"}.Load()
	if err != nil {
		return config.Config{}, nil, err
	}
	cfg.Out = out
	return cfg, state, nil
}
