package pipeline

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
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
	supernet *supernetRun
	dense    *denseRun // nil: no dense -> prune baseline
	// teacher is the run's fixed teacher (nil: the supernet's largest subnet) and
	// teacherStages the compute behind it, shared by every row that distils from it
	teacher       *modelfile.Model
	teacherStages []report.Stage
	rows          []report.Row
	archs         []arch.Arch // each row's model, whose latency Lifecycle measures last
	curves        []report.Curve
}

// Variants of the report rows that the compute totals compare.
const (
	VariantExtractedFT  = "extracted+finetune"
	VariantScratchEqual = "scratch, equal steps"
)

// row adds a report row for a model of architecture a trained with compute.
func (b *budgetRun) row(variant string, a arch.Arch, acc float64, steps int, path string, compute ...report.Stage) error {
	c := a.ModelCost()
	rel := ""
	if path != "" {
		rel, _ = filepath.Rel(b.root, path)
	}
	b.rows = append(b.rows, report.Row{Budget: b.name, Variant: variant, Params: c.Params, Layers: len(a.Layers), Positions: a.Depth(),
		MACs: c.MACs, Accuracy: acc, Steps: steps, Model: rel, Compute: compute})
	b.archs = append(b.archs, a)
	b.opts.log("   %-22s params %7d  MACs %9d  test %6.2f%%", variant, c.Params, c.MACs, 100*acc)
	return nil
}

// extracted loads the extraction in dir when resuming and complete, else extracts for
// target and writes it there.
func (b *budgetRun) extracted(sub string, t budget.Target, from string) (*extraction, error) {
	dir := filepath.Join(b.dir, sub)
	return resumeOrMake(b.opts.Resume, dir, func() (*extraction, error) {
		x, err := loadExtraction(dir)
		if err != nil {
			return nil, err
		}
		x.test, err = b.ex.TestAccuracy(x.model.Arch, x.model.Params)
		return x, err
	}, func() (*extraction, error) {
		sel := extract.Selection{Target: &t, TargetFrom: from, Trained: trainedFor(b.supernet.fixed, t, b.ex.Supernet().Arch)}
		res, err := Extract(b.cfg, b.ex, sel, ExtractOptions{Dir: dir, Provenance: b.prov})
		if err != nil {
			return nil, err
		}
		return &extraction{model: res.Model, manifest: &res.Manifest, test: res.Test}, nil
	})
}

// finetuned fine-tunes m into dir/sub with c's finetune section (or loads that run when
// resuming), reporting it as variant after the upstream compute stages; stage names the
// run's own stage.
func (b *budgetRun) finetuned(ctx context.Context, variant, sub, title, stage string, c Config, m, teacher *modelfile.Model,
	upstream ...report.Stage) (*FinetuneResult, report.Stage, error) {
	dir := filepath.Join(b.dir, sub)
	r, err := resumeOrMake(b.opts.Resume, dir, func() (*FinetuneResult, error) { return loadFinetunedSteps(dir, c.Finetune.Steps) },
		func() (*FinetuneResult, error) {
			return Finetune(ctx, c, m, teacher, b.ds, FinetuneOptions{Output: b.opts.Output, Title: b.name + " " + title, Dir: dir, Resume: b.opts.Resume})
		})
	if err != nil {
		return nil, report.Stage{}, err
	}
	teacherMACs := 0.0
	if teacher != nil {
		teacherMACs = float64(teacher.Arch.SubnetCost(arch.Largest(teacher.Arch)).MACs)
	}
	per := trainingMACs(float64(m.Arch.ModelCost().MACs), teacherMACs)
	st := report.Stage{Name: stage, Steps: r.Steps, Batch: c.Finetune.BatchSize, MACsPerExample: per,
		MACs: float64(r.Steps) * float64(c.Finetune.BatchSize) * per, Seconds: r.Seconds, Untimed: r.Untimed}
	return r, st, b.row(variant, r.Model.Arch, r.Test, r.Steps, filepath.Join(dir, FileModel), append(upstream, st)...)
}

// extractionStage is the compute of an extraction: its importance scores (a forward and
// backward pass of the whole model per calibration example, plus a forward pass per layer
// when layers are scored by dropping them; counted for every extraction, though scores
// are measured once per model and reused) and the validation passes of its search and
// order comparison.
func (b *budgetRun) extractionStage(name string, a arch.Arch, c extract.Config, mf *extract.Manifest) report.Stage {
	per := float64(trainingPasses)
	if c.Criteria.Layers == extract.LayerDrop {
		per += float64(len(a.Layers))
	}
	macs := float64(c.CalibrationBatches*extractBatch)*per*float64(a.ModelCost().MACs) + float64(mf.EvaluatedMACs)*float64(b.ex.ValExamples())
	return report.Stage{Name: name, MACs: macs, Seconds: mf.Seconds}
}

func (b *budgetRun) run(ctx context.Context) error {
	sn := b.ex.Supernet()
	x, err := b.extracted("extracted", b.target, "run.budgets")
	if err != nil {
		return err
	}
	em, mf, acc := x.model, x.manifest, x.test
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

// fresh is a randomly initialised model of architecture a (the supernet's initialisation
// seed), for the baselines trained from scratch.
func (b *budgetRun) fresh(a arch.Arch, note string) (*modelfile.Model, error) {
	p, err := supernet.NewParamsWith(a, tensor.Float32, b.cfg.Model.InitSeed, b.cfg.Model.InitOptions())
	if err != nil {
		return nil, err
	}
	return derive(b.ex.Supernet(), modelfile.KindDense, a, p, &modelfile.Provenance{Step: "scratch", Config: string(b.opts.StoredConfig)},
		map[string]string{modelfile.KeyNote: note}), nil
}

// expanded extracts a model whose expansion fits the budget's unique-parameter limit (the
// transforms' own parameters come out of the extraction's budget: the extraction is
// repeated with a smaller budget until the expanded model fits) and expands it. With
// expand.width_for_depth the extraction keeps WideLayers(plainLayers) layers (plainLayers:
// the budget's plain extraction's depth), as wide as the budget allows.
func (b *budgetRun) expanded(plainLayers int) (*modelfile.Model, report.Stage, error) {
	dir := filepath.Join(b.dir, "expanded")
	type staged struct {
		model *modelfile.Model
		stage report.Stage
	}
	x, err := resumeOrMake(b.opts.Resume, dir, func() (staged, error) {
		e, err := loadExtraction(dir)
		if err != nil {
			return staged{}, err
		}
		st := b.extractionStage("extraction", b.ex.Supernet().Arch, b.cfg.Extract.Config, e.manifest)
		st.Untimed = true // earlier tries of that run are not recorded
		return staged{e.model, st}, nil
	}, func() (staged, error) {
		m, st, err := b.expand(dir, plainLayers)
		return staged{m, st}, err
	})
	return x.model, x.stage, err
}

// expand is expanded's work: the extractions until the expanded model fits, saved in dir.
func (b *budgetRun) expand(dir string, plainLayers int) (*modelfile.Model, report.Stage, error) {
	sn := b.ex.Supernet()
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
