package pipeline

import (
	"context"
	"fmt"
	"math"
	"path/filepath"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// denseRun is the dense model of a lifecycle: the supernet's architecture trained alone.
type denseRun struct {
	model  *modelfile.Model
	stage  report.Stage
	scores *extract.Scores // Taylor scores, measured at the first budget and reused
	note   string
}

// equalComputeSteps is the number of dense-model steps (same batch as the supernet) whose
// training MACs equal the supernet run's: both pay trainingMACs per trained model and
// example, so it is the supernet's steps x sampled forward MACs per step over the dense
// model's forward MACs.
func equalComputeSteps(run *supernetRun, dense arch.Arch) int {
	return int(math.Round(float64(run.steps) * run.macsPerExample / trainingMACs(float64(dense.ModelCost().MACs), 0)))
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
	r, err := resumeOrMake(opts.Resume, dir, func() (*FinetuneResult, error) {
		r, err := loadFinetunedSteps(dir, steps)
		if err == nil {
			opts.log("== dense model: reusing %s", dir)
		}
		return r, err
	}, func() (*FinetuneResult, error) {
		opts.log("== dense model: %d steps (the supernet run's training MACs)", steps)
		p, err := supernet.NewParamsWith(sn.Arch, tensor.Float32, cfg.Model.InitSeed, cfg.Model.InitOptions())
		if err != nil {
			return nil, err
		}
		fresh := derive(sn, modelfile.KindDense, sn.Arch, p, &modelfile.Provenance{Step: "dense", Config: string(opts.StoredConfig)},
			map[string]string{modelfile.KeyNote: "the supernet's architecture trained alone (dense -> prune -> fine-tune baseline)"})
		dc := cfg
		dc.Finetune = run.train
		dc.Finetune.Steps, dc.Finetune.EvalBatch = steps, cfg.Finetune.EvalBatch
		return Finetune(ctx, dc, fresh, nil, ds, FinetuneOptions{Output: opts.Output, Title: "dense", Dir: dir, World: opts.World, Resume: opts.Resume})
	})
	if err != nil {
		return nil, err
	}
	macs := trainingMACs(float64(sn.Arch.ModelCost().MACs), 0)
	d := &denseRun{model: r.Model,
		stage: report.Stage{Name: "dense", Steps: r.Steps, Batch: run.batch, MACsPerExample: macs,
			MACs: float64(r.Steps) * float64(run.batch) * macs, Seconds: r.Seconds, Untimed: r.Untimed, Shared: true}}
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

// densePruned is the dense -> prune -> fine-tune baseline: the dense model pruned to the
// budget by Taylor importance with the greedy selector (no search), then fine-tuned for
// the extracted model's fine-tuning steps, distilled from the dense model.
func (b *budgetRun) densePruned(ctx context.Context, ftSteps int) error {
	d := b.dense
	dir := filepath.Join(b.dir, "dense-pruned")
	c := pruneConfig(b.cfg)
	pruned, err := resumeOrMake(b.opts.Resume, dir, func() (*extraction, error) { return loadExtraction(dir) }, func() (*extraction, error) {
		t := b.target
		res, err := b.ex.Prune(d.model, c, extract.Selection{Target: &t, TargetFrom: "run.budgets (dense model)"}, d.scores)
		if err != nil {
			return nil, err
		}
		d.scores = res.Scores
		pm, err := extractedModel(d.model, res, &modelfile.Provenance{Step: "dense-prune", Config: string(b.opts.StoredConfig)},
			map[string]string{modelfile.KeyNote: "the dense model pruned by Taylor importance"})
		if err != nil {
			return nil, err
		}
		pm.Data = b.ds.Record()
		return &extraction{model: pm, manifest: &res.Manifest}, SaveModelDir(dir, pm, map[string]any{FileManifest: res.Manifest})
	})
	if err != nil {
		return err
	}
	pc := b.cfg
	pc.Finetune.Steps = ftSteps
	teacher, upstream := d.model, []report.Stage{d.stage}
	if b.teacher != nil && b.teacher != d.model { // a given teacher: the same as every other row's
		teacher, upstream = b.teacher, append(append([]report.Stage(nil), b.teacherStages...), d.stage)
	}
	_, _, err = b.finetuned(ctx, "dense -> prune (Taylor) -> fine-tune", "dense-pruned-finetuned", "dense-pruned", "fine-tune", pc, pruned.model, teacher,
		append(upstream, b.extractionStage("prune", d.model.Arch, c, pruned.manifest))...)
	return err
}
