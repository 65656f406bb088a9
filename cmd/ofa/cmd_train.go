package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gorgonia.org/tensor"
)

// Files of a training run directory.
const (
	fileSupernet = "supernet.safetensors"
	fileResume   = "resume.safetensors"
	fileMetrics  = "metrics.jsonl"
	fileConfig   = "config.json"
)

// flagKeys binds flags to configuration keys.
type flagKeys map[string]*pflag.Flag

func (fk flagKeys) add(fs *pflag.FlagSet, name, key string) {
	fk[key] = fs.Lookup(name)
}

func ops(name string) nn.Ops {
	if name == "composed" {
		return nn.Composed{}
	}
	return nn.Fused{}
}

func (a *app) trainCmd() *cobra.Command {
	var resume, force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train an elastic ViT supernet with sandwich sampling and in-place distillation",
		Example: `  ofa train --embedded --epochs 2 --out runs/quick
  ofa train --config configs/fashion-mnist.yaml --out runs/fmnist
  ofa train --out runs/fmnist --resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			res, err := a.train(cmd.Context(), cfg, resume, force)
			if err != nil {
				return err
			}
			a.emit(res.summary)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&resume, "resume", false, "continue the run in --out from its resume checkpoint (the configuration comes from the checkpoint)")
	fs.BoolVar(&force, "force", false, "start over even if --out holds a run")
	fs.String("out", "", "output directory (config key out)")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files (data.dir)")
	fs.Bool("embedded", false, "use the embedded 6,000/1,000 subset (data.embedded)")
	fs.Int("epochs", 0, "epochs (train.epochs)")
	fs.Int("steps", 0, "steps, overriding epochs (train.steps)")
	fs.Int("batch-size", 0, "batch size (train.batch_size)")
	fs.Float64("lr", 0, "peak learning rate (train.lr)")
	fs.Uint64("seed", 0, "data seed (train.seed)")
	fs.String("ops", "", "fused or composed (ops)")
	fs.Int("train-limit", 0, "use only the first N training examples (data.train_limit)")
	fs.Int("test-limit", 0, "use only the first N test examples (data.test_limit)")
	for flag, key := range map[string]string{"out": "out", "data": "data.dir", "embedded": "data.embedded",
		"epochs": "train.epochs", "steps": "train.steps", "batch-size": "train.batch_size", "lr": "train.lr",
		"seed": "train.seed", "ops": "ops", "train-limit": "data.train_limit", "test-limit": "data.test_limit"} {
		fk.add(fs, flag, key)
	}
	return cmd
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

// trainOutcome is a finished supernet training run.
type trainOutcome struct {
	model   *checkpoint.Model
	path    string
	eval    []train.SubnetEval
	curve   *curveHook
	summary map[string]any
	steps   int
}

// train trains a supernet into cfg.Out (or resumes the run there).
func (a *app) train(ctx context.Context, cfg Config, resume, force bool) (*trainOutcome, error) {
	out := cfg.Out
	resumePath := filepath.Join(out, fileResume)
	var state *train.Resume
	switch _, err := os.Stat(resumePath); {
	case resume:
		if err != nil {
			return nil, fmt.Errorf("--resume: %s: %w", resumePath, err)
		}
		if state, err = train.LoadResume(resumePath); err != nil {
			return nil, err
		}
		var saved Config
		if err := json.Unmarshal([]byte(state.RunConfig), &saved); err != nil {
			return nil, fmt.Errorf("%s: stored configuration: %w", resumePath, err)
		}
		saved.Out = out
		cfg = saved
		a.say("resuming %s at step %d (configuration from the checkpoint)", resumePath, state.Step)
	case err == nil && !force:
		return nil, fmt.Errorf("%w: %s already holds a training run: use --resume to continue it or --force to start over", errUsage, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	sp, err := loadSplits(cfg.Data)
	if err != nil {
		return nil, err
	}
	a.say("data: %s; training on %d, validation %d, test %d", sp.source, sp.train.N(), sp.val.N(), sp.test.N())
	c, h, w := sp.inputShape()
	ar, space, err := cfg.Model.Arch(sp.task, c, h, w, len(sp.classes))
	if err != nil {
		return nil, err
	}
	model := &checkpoint.Model{Kind: checkpoint.KindSupernet, Arch: ar, Space: &space,
		Preprocess: sp.preprocess()}
	if state != nil {
		model = state.Model
		ar, space = model.Arch, *model.Space
	} else if model.Params, err = supernet.NewParamsWith(ar, tensor.Float32, cfg.Model.InitSeed, cfg.Model.InitOptions()); err != nil {
		return nil, err
	}
	runCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, fileConfig), append(runCfg, '\n'), 0o644); err != nil {
		return nil, err
	}
	tl, err := sp.trainLoader(sp.train, cfg.Train.BatchSize, cfg.Train.Seed, cfg.Data.Augment, model.Preprocess)
	if err != nil {
		return nil, err
	}
	el, err := sp.evalLoader(sp.test, cfg.Train.EvalBatch, model.Preprocess)
	if err != nil {
		return nil, err
	}
	smp, err := sampler.NewForRun(cfg.Sampler, space, cfg.Train.TotalSteps(tl.BatchesPerEpoch()))
	if err != nil {
		return nil, err
	}
	evalSubnets := []train.Named{{Name: "largest", Subnet: space.Largest()}, {Name: "middle", Subnet: space.Middle()},
		{Name: "smallest", Subnet: space.Smallest()}}
	tr, err := train.New(train.Setup{Arch: ar, Params: model.Params, Sampler: smp, Train: tl, Eval: el,
		EvalSubnets: evalSubnets, Ops: ops(cfg.Ops), Config: cfg.Train})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	if state != nil {
		if err := tr.Restore(state); err != nil {
			return nil, err
		}
	}
	cost := ar.ModelCost()
	a.say("supernet: %d layers, dim %d, %d heads, MLP %d, %d tokens: %d params, %.1f MMACs per example; BLAS %s",
		len(ar.Layers), ar.Dim, ar.Layers[0].Heads, ar.Layers[0].MLP, ar.Tokens(), cost.Params, float64(cost.MACs)/1e6, nn.Backend())
	a.say("training %d steps (%d per epoch), sampler %s; output in %s", tr.TotalSteps(), tr.BatchesPerEpoch(), smp.Name(), out)

	metrics, err := train.NewMetricsHook(filepath.Join(out, fileMetrics), 10)
	if err != nil {
		return nil, err
	}
	defer metrics.Close()
	var lastEval train.EvalStats
	ckpt := &train.CheckpointHook{
		Every: cfg.Train.CheckpointEvery,
		Save: func(t *train.Trainer) error {
			return train.SaveResume(resumePath, t, model, string(runCfg))
		},
		OnEvalSave: func(t *train.Trainer, e train.EvalStats) error {
			lastEval = e
			return checkpoint.SaveModel(filepath.Join(out, fileSupernet), model)
		},
	}
	if state != nil {
		ckpt.LastStep = state.Step
	}
	progress := train.NewProgressHook(a.stderr, "train", tr.TotalSteps(), tr.Step())
	curve := &curveHook{}
	hooks := []train.Hook{progress, metrics, ckpt, curve}
	if cfg.Reorder.EveryEpochs > 0 {
		calib, err := sp.evalLoader(sp.train, 100, model.Preprocess)
		if err != nil {
			return nil, err
		}
		// before the checkpoint hook, so saved states include the permutation
		hooks = []train.Hook{progress, metrics, &reorderHook{every: cfg.Reorder.EveryEpochs * tr.BatchesPerEpoch(), calib: calib,
			batches: min(cfg.Reorder.CalibrationBatches, calib.BatchesPerEpoch()), criteria: cfg.Extract.Criteria,
			say: func(f string, args ...any) { fmt.Fprintf(a.stderr, f+"\n", args...) }}, ckpt, curve}
	}
	start, startStep := time.Now(), tr.Step()
	err = tr.Run(ctx, hooks...)
	elapsed := time.Since(start).Seconds()
	switch {
	case errors.Is(err, train.ErrInterrupted):
		return nil, fmt.Errorf("%w; state saved at step %d in %s: continue with `ofa train --out %s --resume`", err, ckpt.LastStep, resumePath, out)
	case errors.Is(err, train.ErrNonFinite):
		if ckpt.LastStep > 0 {
			return nil, fmt.Errorf("%w; the last good checkpoint is %s (step %d)", err, resumePath, ckpt.LastStep)
		}
		return nil, fmt.Errorf("%w; no checkpoint was written before it", err)
	case err != nil:
		return nil, err
	}
	if err := train.SaveResume(resumePath, tr, model, string(runCfg)); err != nil {
		return nil, err
	}
	if err := checkpoint.SaveModel(filepath.Join(out, fileSupernet), model); err != nil {
		return nil, err
	}
	steps := tr.Step() - startStep
	rate := float64(steps*cfg.Train.BatchSize) / elapsed
	a.say("done: %d steps in %.1fs (%.0f samples/s, every sampled subnet counted once per sample)", steps, elapsed, rate)
	for _, s := range lastEval.Subnets {
		a.say("  %-8s %-40s test accuracy %6.2f%%  params %7d  MACs %9d", s.Name, s.Key, 100*s.Accuracy, s.Params, s.MACs)
	}
	a.say("supernet: %s", filepath.Join(out, fileSupernet))
	summary := map[string]any{"command": "train", "out": out, "supernet": filepath.Join(out, fileSupernet),
		"steps": tr.Step(), "seconds": elapsed, "samples_per_sec": rate, "data": sp.source,
		"eval": lastEval.Subnets, "blas": nn.Backend()}
	summary["subnets_trained"], summary["train_macs"] = tr.Work()
	return &trainOutcome{model: model, path: filepath.Join(out, fileSupernet), eval: lastEval.Subnets, curve: curve,
		summary: summary, steps: tr.Step()}, nil
}
