// Package report writes the results of a lifecycle run: a Markdown and a CSV table per
// budget and PNG plots (accuracy against unique parameters, MACs and latency; training
// curves), with gonum/plot.
package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/checkpoint"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Row is one model in the report.
type Row struct {
	Budget    string  `json:"budget"`  // e.g. "4x"
	Variant   string  `json:"variant"` // e.g. "extracted", "extracted+finetune", "expanded+finetune", "scratch"
	Params    int64   `json:"unique_params"`
	Layers    int     `json:"layers"`    // stored layers
	Positions int     `json:"positions"` // blocks run (more than Layers when layers are reused)
	MACs      int64   `json:"macs"`
	LatencyMS float64 `json:"latency_ms"`
	Accuracy  float64 `json:"test_accuracy"`
	Steps     int     `json:"steps,omitempty"` // training/fine-tuning steps spent on this model
	Model     string  `json:"model,omitempty"` // checkpoint path, relative to the report
	// Compute is every stage of training and search behind the model, upstream stages
	// (the supernet, a dense model) included.
	Compute []Stage `json:"compute,omitempty"`
}

// Stage is one piece of the compute behind a model. Training MACs count a forward and a
// backward pass of a trained model as 3 forward passes (the backward pass costs about two),
// plus one forward pass of a separate teacher; evaluations during training are not counted.
type Stage struct {
	// Name says what the stage is: "supernet", "dense", "extraction", "fine-tune", ...
	Name string `json:"name"`
	// Steps and Batch are the optimizer steps and examples per step (0 for a stage
	// without steps, such as scoring and searching).
	Steps int `json:"steps,omitempty"`
	Batch int `json:"batch,omitempty"`
	// MACsPerExample is the training MACs per example and step (every model trained at
	// the step, and the teacher); MACs is the stage's total.
	MACsPerExample float64 `json:"macs_per_example,omitempty"`
	MACs           float64 `json:"macs"`
	// Seconds is the stage's wall time; Untimed says it was not measured in this run (a
	// given or reused model), so Seconds is 0 or only part of it.
	Seconds float64 `json:"seconds"`
	Untimed bool    `json:"untimed,omitempty"`
	// Shared marks a stage whose result every budget shares (the supernet, the dense model).
	Shared bool `json:"shared,omitempty"`
}

// TrainMACs is the total of the row's stages.
func (r Row) TrainMACs() float64 {
	t := 0.0
	for _, s := range r.Compute {
		t += s.MACs
	}
	return t
}

// Seconds is the row's total wall time and whether every stage of it was timed.
func (r Row) Seconds() (float64, bool) {
	t, all := 0.0, true
	for _, s := range r.Compute {
		t += s.Seconds
		all = all && !s.Untimed
	}
	return t, all
}

// ComputeString describes the stages, e.g. "supernet* 680 × 64 × 9.41M + fine-tune 85 × 64
// × 1.20M": steps × examples per step × training MACs per example (totals for stages
// without steps); a star marks a stage shared by every budget.
func (r Row) ComputeString() string {
	var parts []string
	for _, s := range r.Compute {
		name := s.Name
		if s.Shared {
			name += "*"
		}
		if s.Steps > 0 {
			parts = append(parts, fmt.Sprintf("%s %d × %d × %s", name, s.Steps, s.Batch, SI(s.MACsPerExample)))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", name, SI(s.MACs)))
		}
	}
	return strings.Join(parts, " + ")
}

// SI writes a count with an SI prefix and 3 significant digits (1.23G).
func SI(x float64) string {
	for _, p := range []struct {
		f float64
		s string
	}{{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if x >= p.f {
			return strconv.FormatFloat(x/p.f, 'g', 3, 64) + p.s
		}
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

func (r Row) wallString() string {
	if len(r.Compute) == 0 {
		return ""
	}
	t, all := r.Seconds()
	if !all {
		return fmt.Sprintf("≥ %.1f", t)
	}
	return fmt.Sprintf("%.1f", t)
}

// Curve is a training curve (x: step, y: a metric).
type Curve struct {
	Name string    `json:"name"`
	X    []float64 `json:"x"`
	Y    []float64 `json:"y"`
}

// Report is everything a run produced.
type Report struct {
	Title     string   `json:"title"`
	Notes     []string `json:"notes"`
	Reference Row      `json:"reference"` // the supernet's largest subnet
	Rows      []Row    `json:"rows"`
	// Losses and Accuracies are training curves (supernet, fine-tuning runs).
	Losses     []Curve `json:"losses"`
	Accuracies []Curve `json:"accuracies"`
	// Totals compares the pipeline's training compute for all budgets with one model
	// trained per budget (nil: the run has no such pair of rows).
	Totals *ComputeTotal `json:"compute_total,omitempty"`
}

// Budgets lists the distinct budgets in row order.
func (r *Report) Budgets() []string {
	var out []string
	seen := map[string]bool{}
	for _, row := range r.Rows {
		if !seen[row.Budget] {
			seen[row.Budget] = true
			out = append(out, row.Budget)
		}
	}
	return out
}

// Write creates dir/report.md, dir/report.csv, dir/report.json (each atomically) and
// dir/plots/*.png.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		return err
	}
	if err := r.writeCSV(filepath.Join(dir, "report.csv")); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	plots, err := r.writePlots(filepath.Join(dir, "plots"))
	if err != nil {
		return err
	}
	return checkpoint.WriteFileAtomic(filepath.Join(dir, "report.md"), []byte(r.markdown(plots)), 0o644)
}

func (r *Report) writeCSV(path string) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"budget", "variant", "unique_params", "layers", "positions", "macs", "latency_ms", "test_accuracy", "steps",
		"train_macs", "wall_seconds", "wall_time_complete", "compute", "model"})
	for _, row := range append([]Row{r.Reference}, r.Rows...) {
		sec, all := row.Seconds()
		_ = w.Write([]string{row.Budget, row.Variant, strconv.FormatInt(row.Params, 10), strconv.Itoa(row.Layers), strconv.Itoa(row.Positions),
			strconv.FormatInt(row.MACs, 10), strconv.FormatFloat(row.LatencyMS, 'f', 4, 64),
			strconv.FormatFloat(row.Accuracy, 'f', 4, 64), strconv.Itoa(row.Steps),
			strconv.FormatFloat(row.TrainMACs(), 'g', 6, 64), strconv.FormatFloat(sec, 'f', 1, 64), strconv.FormatBool(all),
			row.ComputeString(), row.Model})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return checkpoint.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

func (r *Report) markdown(plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	ref := r.Reference
	fmt.Fprintf(&b, "\nReference: the supernet's largest subnet, %d params, %d MACs, %.3f ms, test accuracy **%.2f%%**",
		ref.Params, ref.MACs, ref.LatencyMS, 100*ref.Accuracy)
	if len(ref.Compute) > 0 {
		fmt.Fprintf(&b, "; trained with %s = %s training MACs, %s s", ref.ComputeString(), SI(ref.TrainMACs()), ref.wallString())
	}
	b.WriteString(".\n")
	shared := false
	for _, budget := range r.Budgets() {
		fmt.Fprintf(&b, "\n## Budget %s\n\n", budget)
		b.WriteString("| model | unique params | layers / positions | MACs | latency (ms) | test accuracy | compute: steps × batch × training MACs per example | training MACs | wall time (s) |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n")
		for _, row := range r.Rows {
			if row.Budget != budget {
				continue
			}
			total := ""
			if len(row.Compute) > 0 {
				total = SI(row.TrainMACs())
			}
			for _, s := range row.Compute {
				shared = shared || s.Shared
			}
			fmt.Fprintf(&b, "| %s | %d | %d / %d | %d | %.3f | %.2f%% | %s | %s | %s |\n", row.Variant, row.Params, row.Layers, row.Positions, row.MACs,
				row.LatencyMS, 100*row.Accuracy, row.ComputeString(), total, row.wallString())
		}
	}
	if len(r.Rows) > 0 {
		b.WriteString("\nCompute: training MACs count a forward and backward pass as 3 forward passes, plus a forward pass of a separate teacher; " +
			"evaluations during training are not counted; a stage without steps (extraction: importance scores and the search's validation passes) shows its total.")
		if shared {
			b.WriteString(" A star marks a stage shared by every budget (the supernet, the dense model): each row counts it in full.")
		}
		b.WriteString(" A wall time with ≥ leaves out stages not timed in this run.\n")
	}
	if r.Totals != nil {
		b.WriteString(r.Totals.markdown())
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](plots/%s)\n\n", strings.TrimSuffix(p, ".png"), p)
		}
	}
	return b.String()
}

// writePlots draws accuracy against cost for each variant, and the training curves.
func (r *Report) writePlots(dir string) ([]string, error) {
	var files []string
	for _, axis := range []struct {
		file, label string
		x           func(Row) float64
	}{
		{"accuracy_vs_params.png", "unique parameters", func(row Row) float64 { return float64(row.Params) }},
		{"accuracy_vs_macs.png", "MACs per example", func(row Row) float64 { return float64(row.MACs) }},
		{"accuracy_vs_latency.png", "latency (ms per batch)", func(row Row) float64 { return row.LatencyMS }},
	} {
		p := plot.New()
		p.Title.Text = "Test accuracy vs " + axis.label
		p.X.Label.Text = axis.label
		p.Y.Label.Text = "test accuracy (%)"
		byVariant := map[string]plotter.XYs{}
		for _, row := range r.Rows {
			byVariant[row.Variant] = append(byVariant[row.Variant], plotter.XY{X: axis.x(row), Y: 100 * row.Accuracy})
		}
		var names []string
		for n := range byVariant {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			pts := byVariant[n]
			sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
			line, scatter, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			line.Color = plotutil.Color(i)
			scatter.Color = plotutil.Color(i)
			scatter.Shape = plotutil.Shape(i)
			p.Add(line, scatter)
			p.Legend.Add(n, line, scatter)
		}
		ref, err := plotter.NewScatter(plotter.XYs{{X: axis.x(r.Reference), Y: 100 * r.Reference.Accuracy}})
		if err != nil {
			return nil, err
		}
		ref.Color = color.Black
		p.Add(ref)
		p.Legend.Add("supernet (largest)", ref)
		p.Legend.Top = false
		p.Legend.Left = false
		p.Add(plotter.NewGrid())
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, axis.file)); err != nil {
			return nil, err
		}
		files = append(files, axis.file)
	}
	for _, c := range []struct {
		file, label string
		curves      []Curve
	}{{"training_loss.png", "training loss", r.Losses}, {"training_accuracy.png", "accuracy (%)", r.Accuracies}} {
		if len(c.curves) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = strings.ToUpper(c.label[:1]) + c.label[1:]
		p.X.Label.Text = "step"
		p.Y.Label.Text = c.label
		for i, cv := range c.curves {
			pts := make(plotter.XYs, len(cv.X))
			for j := range cv.X {
				pts[j] = plotter.XY{X: cv.X[j], Y: cv.Y[j]}
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return nil, err
			}
			line.Color = plotutil.Color(i)
			line.Dashes = plotutil.Dashes(i / 7)
			p.Add(line)
			p.Legend.Add(cv.Name, line)
		}
		p.Add(plotter.NewGrid())
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return nil, err
		}
		files = append(files, c.file)
	}
	return files, nil
}
