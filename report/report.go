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
	"math"
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
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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
	// Flags are what a reader must know to compare the row (see Report.Annotate): the
	// same model as another row, not at equal size, far below or over the budget.
	Flags []string `json:"flags,omitempty"`
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

// wallString is the row's wall time followed by unit ("" in a table whose header names
// it), "≥" before it when a stage was not timed, or "not measured" when none was.
func (r Row) wallString(unit string) string {
	if len(r.Compute) == 0 {
		return ""
	}
	t, all := r.Seconds()
	switch {
	case !all && t == 0:
		return "not measured"
	case !all:
		return fmt.Sprintf("≥ %.1f%s", t, unit)
	}
	return fmt.Sprintf("%.1f%s", t, unit)
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
	// TestExamples is the size of the test split the accuracies are measured on (0:
	// unknown), for the noise of a difference between two rows.
	TestExamples int `json:"test_examples,omitempty"`
	// Recommendations are filled by Write from the rows (see Recommend).
	Recommendations []Recommendation `json:"recommendations,omitempty"`
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
	r.Annotate()
	r.Recommendations = r.Recommend()
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
		"train_macs", "wall_seconds", "wall_time_complete", "compute", "model", "flags"})
	for _, row := range append([]Row{r.Reference}, r.Rows...) {
		sec, all := row.Seconds()
		_ = w.Write([]string{row.Budget, row.Variant, strconv.FormatInt(row.Params, 10), strconv.Itoa(row.Layers), strconv.Itoa(row.Positions),
			strconv.FormatInt(row.MACs, 10), strconv.FormatFloat(row.LatencyMS, 'f', 4, 64),
			strconv.FormatFloat(row.Accuracy, 'f', 4, 64), strconv.Itoa(row.Steps),
			strconv.FormatFloat(row.TrainMACs(), 'g', 6, 64), strconv.FormatFloat(sec, 'f', 1, 64), strconv.FormatBool(all),
			row.ComputeString(), row.Model, strings.Join(row.Flags, "; ")})
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
		fmt.Fprintf(&b, "; trained with %s = %s training MACs, wall time %s", ref.ComputeString(), SI(ref.TrainMACs()), ref.wallString(" s"))
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
			variant := row.Variant
			if len(row.Flags) > 0 {
				variant += " — *" + strings.Join(row.Flags, "; ") + "*"
			}
			fmt.Fprintf(&b, "| %s | %d | %d / %d | %d | %.3f | %.2f%% | %s | %s | %s |\n", variant, row.Params, row.Layers, row.Positions, row.MACs,
				row.LatencyMS, 100*row.Accuracy, row.ComputeString(), total, row.wallString(""))
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
	b.WriteString(r.recommendationMarkdown())
	return b.String()
}

// writePlots draws accuracy against cost for each variant, and the training curves.
func (r *Report) writePlots(dir string) ([]string, error) {
	var files []string
	for _, axis := range []struct {
		file, label string
		x           func(Row) float64
	}{
		{"accuracy_vs_params.png", "unique parameters (log scale)", func(row Row) float64 { return float64(row.Params) }},
		{"accuracy_vs_macs.png", "MACs per example (log scale)", func(row Row) float64 { return float64(row.MACs) }},
		{"accuracy_vs_latency.png", "latency, ms per batch (log scale)", func(row Row) float64 { return row.LatencyMS }},
	} {
		p := plot.New()
		p.Title.Text = "Test accuracy vs " + strings.TrimSuffix(axis.label, " (log scale)")
		p.X.Label.Text = axis.label
		p.Y.Label.Text = "test accuracy (%)"
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, siTicks{}
		p.Add(plotter.NewGrid())
		legend := plot.NewLegend()
		byVariant := map[string]plotter.XYs{}
		below := map[string]int{} // points under the floor, left out and counted in the legend
		var names []string        // in row order: pipeline rows first, as the lifecycle writes them
		pts := plotter.XYs{{X: axis.x(r.Reference), Y: 100 * r.Reference.Accuracy}}
		floor := r.plotFloor()
		for _, row := range r.Rows {
			if axis.x(row) <= 0 || row.sameModelAsEarlier() { // a log axis has no room for a zero
				continue
			}
			if _, ok := byVariant[row.Variant]; !ok {
				names = append(names, row.Variant)
				byVariant[row.Variant] = nil
			}
			xy := plotter.XY{X: axis.x(row), Y: 100 * row.Accuracy}
			if xy.Y < floor {
				below[row.Variant]++
				continue
			}
			byVariant[row.Variant] = append(byVariant[row.Variant], xy)
			pts = append(pts, xy)
		}
		if pts[0].X <= 0 {
			pts = pts[1:]
		}
		if len(pts) == 0 {
			continue
		}
		for _, n := range names {
			xy := byVariant[n]
			sort.Slice(xy, func(a, b int) bool { return xy[a].X < xy[b].X })
			label := n
			if k := below[n]; k > 0 {
				label = fmt.Sprintf("%s (%d below %.0f%%, not shown)", n, k, floor)
			}
			if len(xy) == 0 {
				legend.Add(label)
				continue
			}
			line, scatter, err := plotter.NewLinePoints(xy)
			if err != nil {
				return nil, err
			}
			st := styleOf(n)
			line.Color, line.Width, line.Dashes = st.color, st.width, st.dashes
			scatter.Color, scatter.Shape, scatter.Radius = st.color, st.shape, vg.Points(3.5)
			p.Add(line, scatter)
			legend.Add(label, line, scatter)
		}
		if axis.x(r.Reference) > 0 {
			ref, err := plotter.NewScatter(plotter.XYs{{X: axis.x(r.Reference), Y: 100 * r.Reference.Accuracy}})
			if err != nil {
				return nil, err
			}
			ref.Color, ref.Shape, ref.Radius = color.Black, draw.PyramidGlyph{}, vg.Points(5)
			p.Add(ref)
			legend.Add(r.Reference.Variant, ref)
		}
		// room around the points, so that no marker sits on the frame
		minX, maxX, minY, maxY := pts[0].X, pts[0].X, pts[0].Y, pts[0].Y
		for _, q := range pts {
			minX, maxX, minY, maxY = min(minX, q.X), max(maxX, q.X), min(minY, q.Y), max(maxY, q.Y)
		}
		p.X.Min, p.X.Max = minX/1.3, maxX*1.3
		pad := max(1, 0.08*(maxY-minY))
		p.Y.Min, p.Y.Max = minY-pad, maxY+pad
		if err := saveWithLegend(p, legend, filepath.Join(dir, axis.file)); err != nil {
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
		p.Add(plotter.NewGrid())
		legend := plot.NewLegend()
		for i, cv := range c.curves {
			pts := make(plotter.XYs, len(cv.X))
			for j := range cv.X {
				pts[j] = plotter.XY{X: cv.X[j], Y: cv.Y[j]}
			}
			line, scatter, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			line.Color, scatter.Color = plotutil.Color(i), plotutil.Color(i)
			line.Dashes, scatter.Shape = plotutil.Dashes(i/7), plotutil.Shape(i)
			if len(pts) > 20 { // markers only where a curve has few points (a one-epoch fine-tune has one)
				p.Add(line)
				legend.Add(cv.Name, line)
				continue
			}
			p.Add(line, scatter)
			legend.Add(cv.Name, line, scatter)
		}
		if err := saveWithLegend(p, legend, filepath.Join(dir, c.file)); err != nil {
			return nil, err
		}
		files = append(files, c.file)
	}
	return files, nil
}

// plotFloor is the lowest accuracy (percent) the accuracy plots show: 10 points under the
// least accurate pipeline row, so that a failed baseline (random units, a few steps from
// scratch) does not squash the rows that matter; what falls below is named in the legend.
func (r *Report) plotFloor() float64 {
	lo := 100 * r.Reference.Accuracy
	for _, row := range r.Rows {
		if isPipeline(row.Variant) {
			lo = min(lo, 100*row.Accuracy)
		}
	}
	return lo - 10
}

// sameModelAsEarlier says the row repeats an earlier row's model file (see Annotate).
func (row Row) sameModelAsEarlier() bool {
	for _, f := range row.Flags {
		if strings.HasPrefix(f, sameModelFlag) {
			return true
		}
	}
	return false
}

// style is how one variant is drawn in every plot: a colour per family (the pipeline's
// models, unit-order baselines, models trained from scratch, the dense model), solid
// lines after fine-tuning and dashed before it.
type style struct {
	color  color.Color
	shape  draw.GlyphDrawer
	dashes []vg.Length
	width  vg.Length
}

func styleOf(variant string) style {
	dashed := []vg.Length{vg.Points(4), vg.Points(3)}
	st := style{color: color.RGBA{R: 120, G: 120, B: 120, A: 255}, shape: draw.CircleGlyph{}, width: vg.Points(1)}
	finetuned := strings.Contains(variant, "finetune") || strings.Contains(variant, "fine-tune")
	switch {
	case strings.HasPrefix(variant, "extracted"):
		st.color, st.shape, st.width = color.RGBA{R: 31, G: 119, B: 180, A: 255}, draw.CircleGlyph{}, vg.Points(2)
	case strings.HasPrefix(variant, "expanded"):
		st.color, st.shape, st.width = color.RGBA{R: 255, G: 127, B: 14, A: 255}, draw.TriangleGlyph{}, vg.Points(2)
	case strings.HasPrefix(variant, "plain slices"):
		st.color, st.shape = color.RGBA{R: 110, G: 110, B: 110, A: 255}, draw.BoxGlyph{}
	case strings.HasPrefix(variant, "random units"):
		st.color, st.shape = color.RGBA{R: 170, G: 170, B: 170, A: 255}, draw.CrossGlyph{}
	case strings.HasPrefix(variant, "scratch, equal steps"):
		st.color, st.shape, finetuned = color.RGBA{R: 44, G: 160, B: 44, A: 255}, draw.RingGlyph{}, true
	case strings.HasPrefix(variant, "scratch"):
		st.color, st.shape = color.RGBA{R: 148, G: 103, B: 189, A: 255}, draw.PlusGlyph{}
		st.dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		return st
	case strings.HasPrefix(variant, "dense"):
		st.color, st.shape = color.RGBA{R: 140, G: 86, B: 75, A: 255}, draw.SquareGlyph{}
	}
	if !finetuned {
		st.dashes = dashed
	}
	return st
}

// saveWithLegend writes the plot as a PNG with its legend to the right of the data,
// where it covers nothing.
func saveWithLegend(p *plot.Plot, legend plot.Legend, path string) error {
	const width, height = 11 * vg.Inch, 5 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	legend.Top, legend.Left = true, true
	lw := legend.Rectangle(dc).Size().X + vg.Points(12)
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	legend.Draw(draw.Crop(dc, width-lw+vg.Points(6), 0, 0, -vg.Points(28)))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return checkpoint.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// siTicks marks a log axis at 1, 2 and 5 times the powers of ten, labelled with SI
// prefixes (20k, 50k, 100k), so that a range within one decade still has labels.
type siTicks struct{}

func (siTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if !(lo > 0) || !(hi > lo) {
		return ticks
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for _, m := range []float64{1, 2, 5} {
			if v := m * p; v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: SI(v)})
			}
		}
		for m := 2.0; m < 10; m++ {
			if v := m * p; v >= lo && v <= hi && m != 2 && m != 5 {
				ticks = append(ticks, plot.Tick{Value: v}) // minor
			}
		}
	}
	return ticks
}
