package report

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	r := &Report{Title: "test", Notes: []string{"a note"},
		Reference: Row{Budget: "1x", Variant: "supernet", Params: 1000, MACs: 5000, LatencyMS: 1, Accuracy: 0.9},
		Rows: []Row{
			{Budget: "2x", Variant: "extracted", Params: 500, Positions: 3, MACs: 2500, LatencyMS: 0.5, Accuracy: 0.8},
			{Budget: "2x", Variant: "expanded+finetune", Params: 490, Layers: 3, Positions: 6, MACs: 4000, LatencyMS: 0.8, Accuracy: 0.85, Steps: 100},
			{Budget: "4x", Variant: "extracted", Params: 250, Positions: 2, MACs: 1200, LatencyMS: 0.3, Accuracy: 0.7},
		},
		Losses:     []Curve{{Name: "supernet", X: []float64{1, 2, 3}, Y: []float64{2, 1, 0.5}}},
		Accuracies: []Curve{{Name: "supernet", X: []float64{1, 3}, Y: []float64{50, 80}}},
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"## Budget 2x", "## Budget 4x", "| expanded+finetune | 490 | 3 / 6 | 4000 | 0.800 | 85.00% | 100 |", "plots/accuracy_vs_params.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	f, _ := os.Open(filepath.Join(dir, "report.csv"))
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 5 || rows[3][1] != "expanded+finetune" || rows[3][3] != "3" {
		t.Fatalf("csv %v %v", rows, err)
	}
	for _, p := range []string{"accuracy_vs_params.png", "accuracy_vs_macs.png", "accuracy_vs_latency.png", "training_loss.png", "training_accuracy.png"} {
		b, err := os.ReadFile(filepath.Join(dir, "plots", p))
		if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
			t.Fatalf("plot %s: %d bytes, %v", p, len(b), err)
		}
	}
}
