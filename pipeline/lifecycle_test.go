package pipeline

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/configfile"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/infer"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
)

// tinyStored is the part of a stored configuration storedRun reads back.
const tinyStored = `train:
  steps: 8
  batch_size: 32
  warmup_steps: 2
  eval_batch: 50
sampler:
  kind: sandwich
  random: 0
  warm_fraction: 0.25
`

// tinyLifecycle is a small model and short runs on the embedded data, one budget.
func tinyLifecycle(dir string) Config {
	c := DefaultConfig()
	c.Data.Embedded, c.Data.TrainLimit, c.Data.TestLimit, c.Data.ValSize = true, 600, 100, 88
	c.Data.Augment = data.Augment{}
	c.Model = ModelConfig{Init: supernet.SchemePyTorch, PatchSize: 7, Dim: 32, HeadDim: 8, Heads: 2, MLP: 64, Depth: 2,
		HeadChoices: []int{1, 2}, MLPChoices: []int{32, 64}, DepthChoices: []int{1, 2}, InitSeed: 1}
	c.Train.Steps, c.Train.BatchSize, c.Train.WarmupSteps, c.Train.EvalBatch = 8, 32, 2, 50
	c.Finetune.Steps, c.Finetune.BatchSize, c.Finetune.WarmupSteps, c.Finetune.EvalBatch = 4, 32, 1, 50
	c.Extract.CalibrationBatches, c.Extract.ValExamples = 2, 50
	c.Extract.Search.Population, c.Extract.Search.Generations = 4, 1
	c.Run.Budgets, c.Run.Expand, c.Run.LatencyRepeats = []string{"2x"}, false, 3
	c.Out = dir
	return c
}

// TestLifecycleBaselinesAndCompute: a lifecycle reports the honest baselines (scratch for
// the supernet's plus the fine-tuning's steps; dense -> prune -> fine-tune at the
// supernet's training MACs), every row with its compute, and an extraction that is on
// validation at least as good as plain slices of its sizes.
func TestLifecycleBaselinesAndCompute(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyLifecycle(dir)
	rep, err := Lifecycle(context.Background(), cfg, LifecycleOptions{Dir: dir, StoredConfig: []byte(tinyStored)})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]report.Row{}
	for _, r := range rep.Rows {
		rows[r.Variant] = r
		if len(r.Compute) == 0 || r.TrainMACs() <= 0 {
			t.Errorf("%s states no compute: %+v", r.Variant, r.Compute)
		}
	}
	for _, v := range []string{"extracted", "plain slices", "random units", "extracted+finetune", "plain slices+finetune", "scratch, only the fine-tune's 4 steps",
		"scratch, equal steps", "dense -> prune (Taylor) -> fine-tune"} {
		if _, ok := rows[v]; !ok {
			t.Errorf("report lacks %q", v)
		}
	}
	// the supernet's compute, replayed from its sampler
	sn, err := modelfile.Load(filepath.Join(dir, DirSupernet, FileSupernet))
	if err != nil {
		t.Fatal(err)
	}
	smp, err := sampler.NewForRun(cfg.Sampler, *sn.Space, 8)
	if err != nil {
		t.Fatal(err)
	}
	fwd := 0.0 // forward MACs per example over the run
	for step := 0; step < 8; step++ {
		for _, s := range smp.Sample(step) {
			fwd += float64(sn.Arch.SubnetCost(s).MACs)
		}
	}
	ft := rows["extracted+finetune"]
	if len(ft.Compute) != 3 || ft.Compute[0].Name != "supernet" || ft.Compute[0].Steps != 8 || ft.Compute[0].Batch != 32 ||
		math.Abs(ft.Compute[0].MACs-3*32*fwd) > 1 || ft.Compute[2].Steps != 4 || !ft.Compute[0].Shared || ft.Compute[0].Untimed {
		t.Fatalf("extracted+finetune compute %+v; supernet forward MACs per example %g", ft.Compute, fwd)
	}
	// the plain slices are fine-tuned like the extracted model, at the same sizes
	if pf := rows["plain slices+finetune"]; pf.Steps != ft.Steps || pf.Params != ft.Params || len(pf.Compute) != 3 || pf.Compute[2].Steps != 4 {
		t.Fatalf("plain slices+finetune %+v, extracted+finetune %+v", pf, ft)
	}
	// scratch for the supernet's and the fine-tuning's steps, distilled (teacher forward counted)
	eq := rows["scratch, equal steps"]
	if eq.Steps != 8+4 || eq.Compute[0].MACsPerExample != float64(3*eq.MACs+sn.Arch.ModelCost().MACs) {
		t.Fatalf("scratch, equal steps: %d steps, %+v", eq.Steps, eq.Compute)
	}
	// the dense model trains for the supernet's training MACs, rounded to whole steps
	dp := rows["dense -> prune (Taylor) -> fine-tune"]
	dense := float64(sn.Arch.ModelCost().MACs)
	if d := dp.Compute[0]; d.Name != "dense" || math.Abs(float64(d.Steps)*dense-fwd) > dense/2 || d.Batch != 32 {
		t.Fatalf("dense stage %+v: %g forward MACs per example, want %g", d, float64(d.Steps)*dense, fwd)
	}
	if dp.Steps != 4 || dp.Params > sn.Arch.ModelCost().Params/2 {
		t.Fatalf("dense -> prune -> fine-tune: %d steps, %d params", dp.Steps, dp.Params)
	}
	// the extraction chose its unit order on validation: never below plain slices
	var mf extract.Manifest
	if err := readJSON(filepath.Join(dir, DirBudgets, "2x", "extracted", FileManifest), &mf); err != nil {
		t.Fatal(err)
	}
	if mf.OrderRule != extract.OrderBest || len(mf.Candidates) != 3 || mf.ValAccuracy == nil {
		t.Fatalf("manifest order %q rule %q candidates %+v", mf.Order, mf.OrderRule, mf.Candidates)
	}
	for _, c := range mf.Candidates {
		if c.ChosenValAccuracy > *mf.ValAccuracy {
			t.Errorf("order %s scores %g on the chosen sizes, above the chosen %g", c.Order, c.ChosenValAccuracy, *mf.ValAccuracy)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, FileReport))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"training MACs", "| scratch, equal steps |", "equal training MACs", "supernet compute: 8 steps x 32 examples"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// every model of the lifecycle names the supernet's classes, so predict prints them
	want, err := sn.ClassNames()
	if err != nil || want[0] == "0" {
		t.Fatalf("the supernet's class names %q (%v)", want, err)
	}
	a := sn.Arch
	blank := infer.Input{Name: "blank", X: make([]float32, a.InChannels*a.InHeight*a.InWidth)}
	for _, rel := range []string{DirDense, filepath.Join(DirBudgets, "2x", "dense-pruned"), filepath.Join(DirBudgets, "2x", "dense-pruned-finetuned"),
		filepath.Join(DirBudgets, "2x", "extracted"), filepath.Join(DirBudgets, "2x", "scratch")} {
		m, err := modelfile.Load(filepath.Join(dir, rel, FileModel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.ClassNames()
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s names classes %q (%v), want %q", rel, got, err, want)
			continue
		}
		p, err := infer.Predict(m, arch.Largest(m.Arch), Ops(cfg.Ops), []infer.Input{blank}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if top := p[0].Top[0]; top.Class != want[top.Label] {
			t.Errorf("%s predicts class %q for label %d, want %q", rel, top.Class, top.Label, want[top.Label])
		}
	}
	// a supernet given by path: its steps from the resume file beside it, its sections from
	// the stored configuration
	run := storedRun(cfg, sn, filepath.Join(dir, DirSupernet, FileSupernet))
	if !run.known || run.steps != 8 || run.batch != 32 || math.Abs(run.macsPerExample*8-3*fwd) > 1 || !strings.Contains(run.source, "stored configuration") {
		t.Fatalf("stored run %+v", run)
	}
	if run := storedRun(cfg, sn, filepath.Join(t.TempDir(), "supernet.safetensors")); run.known || !strings.Contains(run.source, "no readable resume file") {
		t.Fatalf("a supernet without its resume file: %+v", run)
	}
}

// TestStoredSections: the train and sampler sections of a stored configuration are read
// over their defaults; unknown keys and bad values are errors naming them.
func TestStoredSections(t *testing.T) {
	tc, sc, rc, err := storedSections("train:\n  batch_size: 16\n  lr: 0.001\nsampler:\n  kind: uniform\n  random: 1\nrun:\n  budgets: [2x]\n  teacher: dense\n",
		RunConfig{Budgets: []string{"4x"}})
	if err != nil {
		t.Fatal(err)
	}
	if tc.BatchSize != 16 || tc.LR != 0.001 || tc.WarmupSteps != 200 || sc.Kind != sampler.KindUniform || sc.Random != 1 {
		t.Fatalf("train %+v sampler %+v", tc, sc)
	}
	if len(rc.Budgets) != 1 || rc.Budgets[0] != "2x" || rc.Teacher != TeacherDense {
		t.Fatalf("run section %+v, want the stored budgets [2x] and teacher dense", rc)
	}
	for doc, want := range map[string]string{
		"train:\n  batch_sise: 16\nsampler:\n  kind: uniform\n": "batch_sise",
		"train:\n  lr: 2\nsampler:\n  kind: uniform\n":          "train.lr",
		"train:\n  lr: 0.001\n":                                 "no sampler section",
		"x":                                                     "stored configuration",
	} {
		if _, _, _, err := storedSections(doc, RunConfig{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}

// TestStoredSectionsDecodeLikeAFile: a stored configuration is refused exactly as the same
// YAML in a configuration file is (one strict loader): unknown keys in any section,
// fractional whole numbers, numbers for booleans, scalars for lists, invalid values.
func TestStoredSectionsDecodeLikeAFile(t *testing.T) {
	const sections = "train:\n  lr: 0.001\nsampler:\n  kind: uniform\n"
	for _, c := range []struct{ doc, key string }{
		{sections + "data:\n  embeded: true\n", "data.embeded"},
		{sections + "run:\n  teacher: dense\n  latency_repeat: 5\n", "run.latency_repeat"},
		{"train:\n  batch_size: 1.5\nsampler:\n  kind: uniform\n", "train.batch_size"},
		{sections + "run:\n  expand: 3\n", "run.expand"},
		{sections + "model:\n  head_choices: 4\n", "model.head_choices"},
		{sections + "reorder:\n  every_epochs: -1\n", "reorder.every_epochs"},
	} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, fileErr := configfile.Loader{File: path}.Load()
		_, _, _, storedErr := storedSections(c.doc, RunConfig{})
		if fileErr == nil || storedErr == nil {
			t.Errorf("%q: file error %v, stored error %v; want both refused", c.doc, fileErr, storedErr)
			continue
		}
		if !errors.Is(storedErr, ErrConfig) || !strings.Contains(fileErr.Error(), c.key) || !strings.Contains(storedErr.Error(), c.key) {
			t.Errorf("%q: file error %q, stored error %q; want both to wrap %v and name %s", c.doc, fileErr, storedErr, ErrConfig, c.key)
		}
		// decoding errors read the same but for where the YAML came from
		if !strings.Contains(fileErr.Error(), "before flags") && strings.ReplaceAll(fileErr.Error(), path, "stored configuration") != storedErr.Error() {
			t.Errorf("%q: file error %q, stored error %q differ", c.doc, fileErr, storedErr)
		}
	}
}

// TestLatencyNote: the report says how the table was measured, and warns when its mean
// prediction error is above latency.ErrorWarnPct.
func TestLatencyNote(t *testing.T) {
	for _, c := range []struct {
		errPct float64
		warn   bool
	}{{8.0, false}, {latency.ErrorWarnPct, false}, {14.3, true}} {
		tb := &latency.Table{Batch: 1, Repeats: 30, Statistic: latency.StatMin, Clock: latency.ClockWall, Predictor: latency.PredictFit, MeanAbsErrorPct: c.errPct}
		n := latencyNote(tb, "latency.json")
		if !strings.Contains(n, "min of 30 samples") || !strings.Contains(n, "predictor fit") || strings.Contains(n, "WARNING") != c.warn {
			t.Errorf("mean error %.1f%%: note %q, want a warning: %v", c.errPct, n, c.warn)
		}
	}
}

// TestLifecycleBudgetsAndDenseTeacher: with the budget-aware sampler and run.teacher dense,
// the dense model is trained first for the supernet's planned training MACs, the supernet
// trains the largest subnet and a subnet at the budget each step, distilled from the dense
// model (its forward pass counted), the scratch baseline distils from the same teacher,
// every row built on the teacher counts it, and the report states the compute totals.
// With budget_fixed the extraction's search starts from the subnet trained at the budget.
func TestLifecycleBudgetsAndDenseTeacher(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyLifecycle(dir)
	cfg.Sampler = sampler.Config{Kind: sampler.KindBudgets, WarmFraction: 0.25, BudgetFixed: true}
	cfg.Run.Teacher, cfg.Run.Baselines, cfg.Run.Scratch = TeacherDense, false, false
	stored := strings.Replace(tinyStored, "kind: sandwich", "kind: budgets\n  budget_fixed: true", 1) + "run:\n  budgets: [2x]\n  teacher: dense\n"
	rep, err := Lifecycle(context.Background(), cfg, LifecycleOptions{Dir: dir, StoredConfig: []byte(stored)})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := modelfile.Load(filepath.Join(dir, DirSupernet, FileSupernet))
	if err != nil {
		t.Fatal(err)
	}
	b, err := SamplerBudgets(cfg, sn.Arch)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := sampler.NewForBudgets(cfg.Sampler, *sn.Space, 8, b)
	if err != nil {
		t.Fatal(err)
	}
	fwd := 0.0
	for step := 0; step < 8; step++ {
		subs := smp.Sample(step)
		if step >= 2 && (len(subs) != 2 || sn.Arch.SubnetCost(subs[1]).Params > sn.Arch.ModelCost().Params/2) {
			t.Fatalf("step %d: sampled %v, want the largest and a subnet within the 2x budget", step, subs)
		}
		for _, s := range subs {
			fwd += float64(sn.Arch.SubnetCost(s).MACs)
		}
	}
	var mf extract.Manifest
	if err := readJSON(filepath.Join(dir, DirBudgets, "2x", "extracted", FileManifest), &mf); err != nil {
		t.Fatal(err)
	}
	if fixed := sampler.FixedSubnets(smp); len(fixed) != 1 || len(mf.Trained) != 1 || !mf.Trained[0].Equal(fixed[0]) {
		t.Fatalf("the extraction's search started from %v, want the fixed budget subnet %v", mf.Trained, fixed)
	}
	dense := float64(sn.Arch.ModelCost().MACs)
	rows := map[string]report.Row{}
	for _, r := range rep.Rows {
		rows[r.Variant] = r
	}
	ft := rows[VariantExtractedFT]
	if len(ft.Compute) != 4 || ft.Compute[0].Name != "dense" || !ft.Compute[0].Shared || ft.Compute[1].Name != "supernet" {
		t.Fatalf("extracted+finetune compute %+v, want the dense teacher, the supernet, the extraction and the fine-tune", ft.Compute)
	}
	if d := ft.Compute[0]; math.Abs(float64(d.Steps)*dense-fwd) > dense/2 {
		t.Errorf("dense teacher: %d steps, want the supernet's %g forward MACs per example", d.Steps, fwd)
	}
	if s := ft.Compute[1]; math.Abs(s.MACs-32*(3*fwd+8*dense)) > 1 {
		t.Errorf("supernet stage %+v, want 3 x the sampled MACs plus the teacher's forward pass at every step", s)
	}
	eq := rows[VariantScratchEqual]
	if len(eq.Compute) != 2 || eq.Compute[0] != ft.Compute[0] || eq.Compute[1].MACsPerExample != float64(3*eq.MACs)+dense {
		t.Fatalf("scratch, equal steps compute %+v, want the same dense teacher", eq.Compute)
	}
	dp := rows["dense -> prune (Taylor) -> fine-tune"]
	if len(dp.Compute) == 0 || dp.Compute[0] != ft.Compute[0] {
		t.Fatalf("dense -> prune compute %+v, want the teacher's dense model", dp.Compute)
	}
	tot := rep.Totals
	if tot == nil || tot.Budgets != 1 || math.Abs(tot.PipelineShared-ft.Compute[0].MACs-ft.Compute[1].MACs) > 1 ||
		math.Abs(tot.AlternativeShared-eq.Compute[0].MACs) > 1 {
		t.Fatalf("compute totals %+v", tot)
	}
	md, err := os.ReadFile(filepath.Join(dir, FileReport))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Compute for all 1 budgets", "fixed teacher of the supernet", "supernet subnets, test accuracy", "budgets sampler"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// the stored configuration gives a supernet loaded by path the same compute
	run := storedRun(cfg, sn, filepath.Join(dir, DirSupernet, FileSupernet))
	if !run.known || math.Abs(run.stage().MACs-ft.Compute[1].MACs) > 1 {
		t.Fatalf("stored run %+v: %g MACs, want %g", run, run.stage().MACs, ft.Compute[1].MACs)
	}
}
