package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flagsReport is a report whose 4x budget (reference 1000 params: a limit of 250) holds
// each situation Annotate and Recommend must see.
func flagsReport() *Report {
	return &Report{Title: "t", TestExamples: 10000,
		Reference: Row{Budget: "1x", Variant: "supernet (largest)", Params: 1000, MACs: 9000, Accuracy: 0.9},
		Rows: []Row{
			{Budget: "4x", Variant: "extracted", Params: 240, MACs: 2000, Accuracy: 0.70, Model: "budgets/4x/extracted/model.safetensors"},
			{Budget: "4x", Variant: "extracted+finetune", Params: 240, MACs: 2000, Accuracy: 0.80, Model: "budgets/4x/finetuned/model.safetensors"},
			{Budget: "4x", Variant: "plain slices+finetune", Params: 240, MACs: 2000, Accuracy: 0.80, Model: "budgets/4x/finetuned/model.safetensors"},
			{Budget: "4x", Variant: "expanded+finetune", Params: 250, MACs: 4000, Accuracy: 0.79, Model: "budgets/4x/expanded-finetuned/model.safetensors"},
			{Budget: "4x", Variant: "scratch, equal steps", Params: 240, MACs: 2000, Accuracy: 0.85, Model: "budgets/4x/scratch-equal-steps/model.safetensors"},
			{Budget: "4x", Variant: "dense -> prune (Taylor) -> fine-tune", Params: 150, MACs: 1500, Accuracy: 0.95, Model: "budgets/4x/dense/model.safetensors"},
			{Budget: "4x", Variant: "random units", Params: 260, MACs: 2000, Accuracy: 0.99},
		}}
}

// TestAnnotate: a repeated model file, an expansion not at equal unique params, a model
// far below its budget and one over it are each flagged on their row.
func TestAnnotate(t *testing.T) {
	r := flagsReport()
	r.Annotate()
	want := map[string]string{
		"plain slices+finetune":                "the same model file as extracted+finetune",
		"expanded+finetune":                    "not at equal unique params: +4.2% against extracted+finetune",
		"dense -> prune (Taylor) -> fine-tune": "far below the budget: 60% of its tightest limit",
		"random units":                         "over the budget",
	}
	for _, row := range r.Rows {
		flags := strings.Join(row.Flags, "; ")
		if w, ok := want[row.Variant]; ok != (flags != "") || !strings.Contains(flags, w) {
			t.Errorf("%s: flags %q, want %q", row.Variant, flags, w)
		}
	}
}

// TestRecommend: the most accurate pipeline row within the budget is the pipeline's
// choice; a more accurate baseline within it is reported as having beaten the pipeline,
// and is the model to ship when it did so beyond the noise; rows over the budget and
// repeats of a pipeline model are not baselines.
func TestRecommend(t *testing.T) {
	r := flagsReport()
	recs := r.Recommend()
	if len(recs) != 1 {
		t.Fatalf("%d recommendations, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Ship != "extracted+finetune" || rec.Baseline != "dense -> prune (Taylor) -> fine-tune" || !rec.BaselineWins || rec.Noise <= 0 {
		t.Fatalf("recommendation %+v", rec)
	}
	if b := rec.Best(); !b.Baseline || b.Variant != rec.Baseline || b.Model != "budgets/4x/dense/model.safetensors" || b.Params != 150 {
		t.Fatalf("the model to ship %+v, want the dense -> prune baseline that beat the pipeline by 15 points", b)
	}
	// without the dense row, scratch (0.85) beats the pipeline (0.80) by more than the noise
	r.Rows = append(r.Rows[:5], r.Rows[6:]...)
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "| 4x | **scratch, equal steps** (a baseline) | 85.00% | 240 | budgets/4x/scratch-equal-steps/model.safetensors | extracted+finetune | 80.00% |") ||
		!strings.Contains(string(md), "**the baseline beat the pipeline by 5.00") {
		t.Fatalf("report.md lacks the recommendation:\n%s", md)
	}
	if i := strings.Index(string(md), "## Recommendation"); i < 0 || strings.Contains(string(md)[i:], "\n## Plots") {
		t.Fatalf("the report does not end with the recommendation:\n%s", md)
	}
	// the pipeline ahead by less than twice the standard error is called noise
	r.Rows[4].Accuracy = 0.795
	if rec := r.Recommend()[0]; rec.BaselineWins || rec.Baseline != "scratch, equal steps" || rec.Best().Variant != "extracted+finetune" {
		t.Fatalf("recommendation %+v", rec)
	}
	// a baseline ahead within the noise does not displace the pipeline's model
	r.Rows[4].Accuracy = 0.805
	if rec := r.Recommend()[0]; !rec.BaselineWins || !rec.withinNoise() || rec.Best().Variant != "extracted+finetune" {
		t.Fatalf("recommendation %+v: a baseline within noise was shipped", rec)
	}
}

// TestSITicks: a log axis within one decade still gets labelled ticks.
func TestSITicks(t *testing.T) {
	var labels []string
	for _, tk := range (siTicks{}).Ticks(20e3, 260e3) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "20k 50k 100k 200k" {
		t.Fatalf("labels %q", got)
	}
}
