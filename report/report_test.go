package report

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	r := &Report{Title: "test", Notes: []string{"a note"},
		Reference: Row{Budget: "1x", Variant: "supernet", Params: 1000, MACs: 5000, LatencyMS: 1, Accuracy: 0.9,
			Compute: []Stage{{Name: "supernet", Steps: 680, Batch: 64, MACsPerExample: 9.41e6, MACs: 680 * 64 * 9.41e6, Untimed: true, Shared: true}}},
		Rows: []Row{
			{Budget: "2x", Variant: "extracted", Params: 500, Positions: 3, MACs: 2500, LatencyMS: 0.5, Accuracy: 0.8},
			{Budget: "2x", Variant: "expanded+finetune", Params: 490, Layers: 3, Positions: 6, MACs: 4000, LatencyMS: 0.8, Accuracy: 0.85, Steps: 100,
				Compute: []Stage{
					{Name: "supernet", Steps: 680, Batch: 64, MACsPerExample: 9.41e6, MACs: 680 * 64 * 9.41e6, Seconds: 90, Shared: true},
					{Name: "extraction", MACs: 2.5e9, Seconds: 1.5},
					{Name: "fine-tune", Steps: 100, Batch: 64, MACsPerExample: 1.2e6, MACs: 100 * 64 * 1.2e6, Seconds: 8.5}}},
			{Budget: "2x", Variant: "scratch, equal steps", Params: 500, Layers: 3, Positions: 3, MACs: 2500, Accuracy: 0.75, Steps: 780,
				Compute: []Stage{{Name: "training", Steps: 780, Batch: 64, MACsPerExample: 2e6, MACs: 780 * 64 * 2e6, Untimed: true}}},
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
	for _, want := range []string{"## Budget 2x", "## Budget 4x",
		"| expanded+finetune | 490 | 3 / 6 | 4000 | 0.800 | 85.00% | supernet* 680 × 64 × 9.41M + extraction 2.5G + fine-tune 100 × 64 × 1.2M | 420G | 100.0 |",
		"| scratch, equal steps | 500 | 3 / 3 | 2500 | 0.000 | 75.00% | training 780 × 64 × 2M | 99.8G | not measured |",
		"| extracted | 500 | 0 / 3 | 2500 | 0.500 | 80.00% |  |  |  |",
		"training MACs, wall time not measured.\n",
		"A star marks a stage shared", "plots/accuracy_vs_params.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	f, _ := os.Open(filepath.Join(dir, "report.csv"))
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 6 || rows[3][1] != "expanded+finetune" || rows[3][3] != "3" {
		t.Fatalf("csv %v %v", rows, err)
	}
	// the compute columns: total training MACs, wall time and whether every stage was timed
	if h := rows[0]; h[9] != "train_macs" || h[10] != "wall_seconds" || h[11] != "wall_time_complete" {
		t.Fatalf("csv header %v", h)
	}
	if got, want := rows[3][9], strconv.FormatFloat(680*64*9.41e6+2.5e9+100*64*1.2e6, 'g', 6, 64); got != want || rows[3][10] != "100.0" || rows[3][11] != "true" {
		t.Fatalf("expanded+finetune compute %v, want %s MACs in 100.0 s", rows[3], want)
	}
	if rows[4][11] != "false" {
		t.Fatalf("an untimed stage is not flagged: %v", rows[4])
	}
	for _, p := range []string{"accuracy_vs_params.png", "accuracy_vs_macs.png", "accuracy_vs_latency.png", "training_loss.png", "training_accuracy.png"} {
		b, err := os.ReadFile(filepath.Join(dir, "plots", p))
		if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
			t.Fatalf("plot %s: %d bytes, %v", p, len(b), err)
		}
	}
}

// TestSI: counts are written with 3 significant digits and an SI prefix.
func TestSI(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 950: "950", 1500: "1.5k", 9.41e6: "9.41M", 4.17e11: "417G", 4.197e11: "420G", 2.2e12: "2.2T"} {
		if got := SI(x); got != want {
			t.Errorf("SI(%g) = %q, want %q", x, got, want)
		}
	}
}
