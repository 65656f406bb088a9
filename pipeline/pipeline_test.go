package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/modelfile"
)

// tinyConfig is a small model and short runs on part of the embedded data.
func tinyConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Data.Embedded, c.Data.TrainLimit, c.Data.TestLimit, c.Data.ValSize = true, 600, 100, 88
	c.Data.Augment.CropPad, c.Data.Augment.HFlip = 0, false
	c.Model.Dim, c.Model.HeadDim, c.Model.Heads, c.Model.MLP, c.Model.Depth = 32, 8, 2, 64, 2
	c.Model.HeadChoices, c.Model.MLPChoices, c.Model.DepthChoices = []int{1, 2}, []int{32, 64}, []int{1, 2}
	c.Train.Epochs, c.Train.Steps, c.Train.BatchSize, c.Train.WarmupSteps, c.Train.EvalBatch = 0, 8, 32, 2, 50
	c.Finetune.Epochs, c.Finetune.Steps, c.Finetune.BatchSize, c.Finetune.WarmupSteps, c.Finetune.EvalBatch = 0, 4, 32, 1, 50
	c.Extract.CalibrationBatches, c.Extract.ValExamples = 2, 50
	c.Extract.Search.Population, c.Extract.Search.Generations = 4, 1
	c.Run.Budgets, c.Run.LatencyRepeats = []string{"2x"}, 3
	c.Out = t.TempDir()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStepsOnValues runs every step as a library call: train, extract, expand, fine-tune.
// The extracted model computes the supernet's subnet and the fresh expansion computes the
// extracted model (both checked inside the steps); fine-tuning returns the best model.
func TestStepsOnValues(t *testing.T) {
	cfg := tinyConfig(t)
	ds, err := LoadData(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := TrainSupernet(context.Background(), cfg, ds, TrainOptions{Dir: filepath.Join(cfg.Out, "sn"), StoredConfig: []byte("test")})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Steps != 8 || len(tr.Eval) != 3 || tr.Model.Kind != modelfile.KindSupernet {
		t.Fatalf("training result: %d steps, %d evaluations, kind %s", tr.Steps, len(tr.Eval), tr.Model.Kind)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "sn", modelfile.MarkerIncomplete)); err == nil {
		t.Fatal("a finished training run is still marked incomplete")
	}
	ex, err := NewExtractor(cfg, tr.Model, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	target := budget.Target{ParamsMultiple: 2}
	res, err := ex.Extract(cfg.Extract.Config, extract.Selection{Target: &target}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, limit := res.Arch.ModelCost().Params, tr.Model.Arch.ModelCost().Params/2; got > limit {
		t.Fatalf("extracted %d params, budget %d", got, limit)
	}
	em, err := ex.Model(res, &modelfile.Provenance{Step: "extract"})
	if err != nil {
		t.Fatal(err)
	}
	xm, err := Expand(em, cfg.Expand, ex.VerifyBatch())
	if err != nil {
		t.Fatal(err)
	}
	if !xm.Arch.Expanded() || xm.Extra[modelfile.KeyPlan] == "" {
		t.Fatalf("expanded model: positions %v, plan %q", xm.Arch.Positions, xm.Extra[modelfile.KeyPlan])
	}
	ft, err := Finetune(context.Background(), cfg, xm, tr.Model, ds, FinetuneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ft.Steps != 4 || ft.Model.Kind != modelfile.KindFinetuned || !ft.Model.Arch.Expanded() || ft.Test <= 0 {
		t.Fatalf("fine-tune result: %+v", ft)
	}
	acc, err := Accuracy(ft.Model.Arch, ft.Model.Params, Ops(cfg.Ops), ds.Test, ft.Model.Preprocess)
	if err != nil || acc != ft.Test {
		t.Fatalf("the returned model's accuracy %v (%v) is not the reported %v", acc, err, ft.Test)
	}
}

// TestLifecycleResumeReuses: a resumed lifecycle over a finished one loads every step's
// outputs and reports the same accuracies; a fresh one removes them first.
func TestLifecycleResumeReuses(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a supernet and fine-tunes four models")
	}
	cfg := tinyConfig(t)
	cfg.Run.Baselines = false
	cfg.Train.Steps = 10 // one point of the loss curve (drawn every 10 steps)
	opts := LifecycleOptions{Dir: cfg.Out, StoredConfig: []byte("test")}
	first, err := Lifecycle(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	// a marker left in one model directory makes only that step run again
	ft := filepath.Join(cfg.Out, DirBudgets, "2x", "finetuned")
	if err := modelfile.BeginDir(ft, "finetune"); err != nil {
		t.Fatal(err)
	}
	opts.Resume = true
	second, err := Lifecycle(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Rows) != len(second.Rows) || len(first.Rows) < 3 {
		t.Fatalf("rows: %d then %d", len(first.Rows), len(second.Rows))
	}
	for i := range first.Rows {
		a, b := first.Rows[i], second.Rows[i]
		if a.Variant != b.Variant || a.Accuracy != b.Accuracy || a.Params != b.Params || a.Steps != b.Steps {
			t.Errorf("row %d: %+v, resumed %+v", i, a, b)
		}
	}
	// the reused supernet keeps its curves (issue 29, finding 6: a resumed run reported
	// "losses": null and no supernet accuracy curve)
	if len(first.Losses) == 0 || len(first.Losses[0].Y) == 0 || !reflect.DeepEqual(first.Losses, second.Losses) {
		t.Errorf("losses %+v, resumed %+v", first.Losses, second.Losses)
	}
	if len(second.Accuracies) == 0 || !reflect.DeepEqual(first.Accuracies[0], second.Accuracies[0]) {
		t.Errorf("supernet accuracy curve %+v, resumed %+v", first.Accuracies, second.Accuracies)
	}
	if _, err := os.Stat(filepath.Join(ft, modelfile.MarkerIncomplete)); err == nil {
		t.Fatal("the redone fine-tune is still marked incomplete")
	}
	// a finished step whose outputs cannot be read is reported, not silently redone
	x := filepath.Join(cfg.Out, DirBudgets, "2x", "extracted")
	if err := os.WriteFile(filepath.Join(x, FileManifest), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Lifecycle(context.Background(), cfg, opts); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), x) {
		t.Fatalf("resumed over a damaged extraction: %v", err)
	}
	// outputs made with one configuration are not reused under another
	opts.StoredConfig = []byte("changed")
	// and the error names the flag that resumes it (issue 29, finding 8)
	want := "--config " + filepath.Join(cfg.Out, FileConfig)
	if _, err := Lifecycle(context.Background(), cfg, opts); err == nil || !strings.Contains(err.Error(), "differs from the one") || !strings.Contains(err.Error(), want) {
		t.Fatalf("resumed with another configuration: %v, want an error naming %q", err, want)
	}
}
