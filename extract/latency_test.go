package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

// gridTable is a table over heads 1..4 and MLP widths 32..256 whose block times grow with
// both, entered row by row as MeasureLatency enters them.
func gridTable() *LatencyTable {
	t := &LatencyTable{Dim: 64, HeadDim: 16, Tokens: 17, Patch: 7, Classes: 10, Batch: 1, Repeats: 3, StemMS: 0.05}
	for h := 1; h <= 4; h++ {
		for m := 32; m <= 256; m += 32 {
			t.Blocks = append(t.Blocks, LatencyEntry{Heads: h, MLP: m, MS: 0.01*float64(h) + 0.001*float64(m)})
		}
	}
	return t
}

func writeTable(t *testing.T, tb *LatencyTable) string {
	t.Helper()
	b, err := json.Marshal(tb)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "latency.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadLatencyTableRejectsDuplicate: a table holding one block shape twice is refused,
// naming the file and the shape, wherever the duplicate stands (a copy of the first entry
// appended at the end once made every latency budget impossible).
func TestLoadLatencyTableRejectsDuplicate(t *testing.T) {
	good := gridTable()
	if _, err := LoadLatencyTable(writeTable(t, good)); err != nil {
		t.Fatal(err)
	}
	for name, blocks := range map[string][]LatencyEntry{
		"first entry appended":  append(slices.Clone(good.Blocks), good.Blocks[0]),
		"first entry prepended": append([]LatencyEntry{good.Blocks[0]}, good.Blocks...),
		"other time":            append(slices.Clone(good.Blocks), LatencyEntry{Heads: 1, MLP: 32, MS: 7}),
	} {
		tb := *good
		tb.Blocks = blocks
		path := writeTable(t, &tb)
		_, err := LoadLatencyTable(path)
		if !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "heads 1, mlp 32") {
			t.Errorf("%s: error %v, want ErrExtract naming %s and the shape heads 1, mlp 32", name, err, path)
		}
	}
}

// TestLatencyLookupConsistent: predictions are finite and independent of the order of the
// entries; a repeated shape (possible in a table built in memory) neither changes them nor
// makes them NaN (it once divided by the zero distance between the two copies).
func TestLatencyLookupConsistent(t *testing.T) {
	base := gridTable()
	reversed := gridTable()
	slices.Reverse(reversed.Blocks)
	appended := gridTable()
	appended.Blocks = append(appended.Blocks, appended.Blocks[0])
	prepended := gridTable()
	prepended.Blocks = append([]LatencyEntry{prepended.Blocks[0]}, prepended.Blocks...)
	sparse := gridTable() // rows of 1, 2 and 4 heads: 3 is scaled from the nearest row
	sparse.Blocks = slices.DeleteFunc(sparse.Blocks, func(e LatencyEntry) bool { return e.Heads == 3 })
	sparseReversed := gridTable()
	sparseReversed.Blocks = slices.Clone(sparse.Blocks)
	slices.Reverse(sparseReversed.Blocks)

	for h := 1; h <= 6; h++ {
		for m := 1; m <= 300; m++ {
			want := base.block(h, m)
			if math.IsNaN(want) || math.IsInf(want, 0) || want < 0 {
				t.Fatalf("block(%d, %d) = %v", h, m, want)
			}
			for name, tb := range map[string]*LatencyTable{"reversed": reversed, "first entry appended": appended, "first entry prepended": prepended} {
				if got := tb.block(h, m); got != want {
					t.Fatalf("%s: block(%d, %d) = %v, want %v", name, h, m, got, want)
				}
			}
			if a, b := sparse.block(h, m), sparseReversed.block(h, m); a != b || math.IsNaN(a) {
				t.Fatalf("without 3 heads: block(%d, %d) = %v in order, %v reversed", h, m, a, b)
			}
		}
	}
	a := arch.Default()
	s := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 16}, {Layer: 1, Heads: 1, MLP: 32}}}
	if p := appended.Predict(a, s); math.IsNaN(p) || p != base.Predict(a, s) || !(p < 5000) {
		t.Fatalf("Predict with a repeated first entry = %v, want %v", p, base.Predict(a, s))
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5}, // the mean of the middle two, not the upper one
		{[]float64{5, 1}, 3},
		{[]float64{2, 2, 9, 9}, 5.5},
	} {
		in := slices.Clone(c.v)
		if got := Median(c.v); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.v, got, c.want)
		}
		if !slices.Equal(in, c.v) {
			t.Errorf("Median reordered its input to %v", c.v)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

// TestMeasureLatencyRepeatedGrid: a repeated MLP width in the grid gives one entry, so the
// table saved loads again; Save leaves no temporary file.
func TestMeasureLatencyRepeatedGrid(t *testing.T) {
	a := arch.Default()
	a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth = 4, 4, 2, 2
	a.Dim, a.HeadDim = 8, 4
	a.Layers = arch.Uniform(1, arch.Layer{Heads: 1, MLP: 16})
	tb, err := MeasureLatency(a, LatencyConfig{Batch: 1, Repeats: 3, MLPGrid: []int{16, 8, 16}, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var widths []int
	for _, e := range tb.Blocks {
		widths = append(widths, e.MLP)
	}
	if !slices.Equal(widths, []int{8, 16}) {
		t.Fatalf("entries for widths %v, want [8 16]", widths)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "latency.json")
	if err := tb.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLatencyTable(path); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files after Save, want 1", len(entries))
	}
	if _, err := MeasureLatency(a, LatencyConfig{Batch: 1, Repeats: 3, MLPGrid: []int{0, 16}}, nil); !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), "mlp_grid") {
		t.Errorf("grid with width 0: error %v, want ErrExtract naming mlp_grid", err)
	}
}

// tinyLatencyArch is a model small enough to time in a test.
func tinyLatencyArch() arch.Arch {
	a := arch.Default()
	a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth = 4, 4, 2, 2
	a.Dim, a.HeadDim = 8, 4
	a.Layers = arch.Uniform(2, arch.Layer{Heads: 2, MLP: 16})
	return a
}

// TestMeasureLatencyRecordsRuntime: a table says which runtime measured it, carries the
// interquartile range and MACs of every entry and check, and its order statistics lie in
// [0, 1]; an unknown runtime is refused naming the choices.
func TestMeasureLatencyRecordsRuntime(t *testing.T) {
	a := tinyLatencyArch()
	tb, err := MeasureLatency(a, LatencyConfig{Batch: 2, Repeats: 3, MLPGrid: []int{8, 16}, Checks: 2, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Runtime != RuntimeOfa || !strings.Contains(tb.RuntimeDescription, "own inference") {
		t.Errorf("runtime %q (%q), want %q described as the tool's own inference", tb.Runtime, tb.RuntimeDescription, RuntimeOfa)
	}
	for _, e := range tb.Blocks {
		if want := 2 * a.BlockCost(e.Heads, e.MLP).MACs; e.MACs != want || !(e.IQRMS >= 0) {
			t.Errorf("entry %+v: want MACs %d (batch 2) and IQR >= 0", e, want)
		}
	}
	if len(tb.Checks) != 3 || tb.Checks[0].MACs != 2*a.ModelCost().MACs {
		t.Errorf("checks %+v, want 3, the first of the largest subnet with MACs %d", tb.Checks, 2*a.ModelCost().MACs)
	}
	for _, v := range []float64{tb.BlockOrder, tb.CheckOrder} {
		if !(v >= 0 && v <= 1) {
			t.Errorf("order statistics %v, %v, want both in [0, 1]", tb.BlockOrder, tb.CheckOrder)
		}
	}
	_, err = MeasureLatency(a, LatencyConfig{Batch: 1, Repeats: 3, Runtime: "tflite"}, nil)
	if !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), `"tflite"`) || !strings.Contains(err.Error(), RuntimeONNXRuntime) {
		t.Errorf("runtime tflite: error %v, want ErrExtract naming it and the choices", err)
	}
	if _, err := TimeModel(a, LatencyConfig{Batch: 1, Repeats: 3, Runtime: "tflite"}); !errors.Is(err, ErrExtract) {
		t.Errorf("TimeModel with runtime tflite: error %v, want ErrExtract", err)
	}
	_, err = MeasureLatency(a, LatencyConfig{Batch: 1, Repeats: 3, Statistic: "mean"}, nil)
	if !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), `"mean"`) || !strings.Contains(err.Error(), StatMin) {
		t.Errorf("statistic mean: error %v, want ErrExtract naming it and the choices", err)
	}
	_, err = MeasureLatency(a, LatencyConfig{Batch: 1, Repeats: 3, Clock: "tsc"}, nil)
	if !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), `"tsc"`) || !strings.Contains(err.Error(), ClockCPU) {
		t.Errorf("clock tsc: error %v, want ErrExtract naming it and the choices", err)
	}
	_, err = MeasureLatency(a, LatencyConfig{Batch: 1, Repeats: 3, Threads: runtime.GOMAXPROCS(0) + 1}, nil)
	if !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), "GOMAXPROCS") {
		t.Errorf("threads with the ofa runtime: error %v, want ErrExtract naming GOMAXPROCS", err)
	}
}

// TestMeasureLatencyMin: LatencyConfig.Statistic picks the summary of the samples (the
// median by default, the least sample with StatMin), and the table records it.
func TestMeasureLatencyMin(t *testing.T) {
	samples := []float64{0.9, 0.3, 5, 0.4, 0.5}
	for _, c := range []struct {
		name, want string
		value      float64
	}{{"", StatMedian, 0.5}, {StatMedian, StatMedian, 0.5}, {StatMin, StatMin, 0.3}} {
		name, stat, err := LatencyConfig{Statistic: c.name}.statistic()
		if err != nil || name != c.want || stat(samples) != c.value {
			t.Errorf("statistic %q: %q, %v, %v; want %q giving %v", c.name, name, stat(samples), err, c.want, c.value)
		}
	}
	tb, err := MeasureLatency(tinyLatencyArch(), LatencyConfig{Batch: 1, Repeats: 5, MLPGrid: []int{16}, Checks: 1, Seed: 1, Statistic: StatMin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Statistic != StatMin || len(tb.Blocks) != 2 || !(tb.Checks[0].MeasuredMS > 0) {
		t.Fatalf("statistic %q, %d blocks, checks %+v; want %q, 2, a positive measurement", tb.Statistic, len(tb.Blocks), tb.Checks, StatMin)
	}
	for _, e := range tb.Blocks {
		if !(e.MS >= 0) || math.IsInf(e.MS, 0) {
			t.Errorf("entry %+v", e)
		}
	}
}

// TestLoadLatencyTableRuntime: a table written before tables recorded their runtime loads
// as measured by the tool's own runtime; an unknown runtime is refused naming the file.
func TestLoadLatencyTableRuntime(t *testing.T) {
	old := gridTable()
	old.Runtime = ""
	got, err := LoadLatencyTable(writeTable(t, old))
	if err != nil || got.Runtime != RuntimeOfa {
		t.Fatalf("table without runtime: %+v, %v; want runtime %q", got, err, RuntimeOfa)
	}
	ort := gridTable()
	ort.Runtime = RuntimeONNXRuntime
	if got, err := LoadLatencyTable(writeTable(t, ort)); err != nil || got.Runtime != RuntimeONNXRuntime {
		t.Fatalf("onnxruntime table: %v, %v", got, err)
	}
	if got.Statistic != StatMedian {
		t.Errorf("table without statistic loads with %q, want %q", got.Statistic, StatMedian)
	}
	if got.Clock != ClockWall {
		t.Errorf("table without clock loads with %q, want %q", got.Clock, ClockWall)
	}
	tsc := gridTable()
	tsc.Clock = "tsc"
	if _, err := LoadLatencyTable(writeTable(t, tsc)); !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), `"tsc"`) {
		t.Errorf("clock tsc: error %v, want ErrExtract naming it", err)
	}
	odd := gridTable()
	odd.Statistic = "p90"
	if _, err := LoadLatencyTable(writeTable(t, odd)); !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), `"p90"`) {
		t.Errorf("statistic p90: error %v, want ErrExtract naming it", err)
	}
	bad := gridTable()
	bad.Runtime = "tvm"
	path := writeTable(t, bad)
	if _, err := LoadLatencyTable(path); !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"tvm"`) {
		t.Errorf("runtime tvm: error %v, want ErrExtract naming %s and the runtime", err, path)
	}
}

func TestConcordance(t *testing.T) {
	for _, c := range []struct {
		x, y []float64
		want float64
	}{
		{[]float64{1, 2, 3}, []float64{10, 20, 30}, 1},
		{[]float64{1, 2, 3}, []float64{30, 20, 10}, 0},
		{[]float64{1, 2, 3}, []float64{10, 30, 20}, 2.0 / 3},
		{[]float64{1, 2}, []float64{5, 5}, 0.5},       // a tie in y counts half
		{[]float64{1, 1, 2}, []float64{9, 0, 5}, 0.5}, // pairs of equal x are left out: (1,2) up, (1,2) down
		{[]float64{4, 4}, []float64{1, 2}, 1},         // no pair to compare
		{nil, nil, 1},
	} {
		if got := concordance(c.x, c.y); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("concordance(%v, %v) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
}

func TestIQR(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{
		{[]float64{7}, 0},
		{[]float64{1, 2, 3, 4, 5}, 2}, // quartiles 2 and 4
		{[]float64{5, 1, 4, 2, 3}, 2}, // order does not matter
		{[]float64{1, 2, 3, 4}, 1.5},  // quartiles 1.75 and 3.25
		{[]float64{0, 0, 0, 100}, 25}, // quartiles 0 and 25
	} {
		in := slices.Clone(c.v)
		if got := iqr(c.v); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("iqr(%v) = %v, want %v", c.v, got, c.want)
		}
		if !slices.Equal(in, c.v) {
			t.Errorf("iqr reordered its input to %v", c.v)
		}
	}
	if !math.IsNaN(iqr(nil)) {
		t.Error("iqr(nil) is not NaN")
	}
}

// TestClockCPU: the CPU clock needs a single-threaded forward pass; with GOMAXPROCS=1 it
// measures the tool's own runtime and the table records it.
func TestClockCPU(t *testing.T) {
	a := tinyLatencyArch()
	cfg := LatencyConfig{Batch: 1, Repeats: 3, MLPGrid: []int{16}, Checks: 1, Seed: 1, Clock: ClockCPU}
	if runtime.GOMAXPROCS(0) > 1 {
		_, err := MeasureLatency(a, cfg, nil)
		if !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), "GOMAXPROCS=1") {
			t.Errorf("CPU clock with GOMAXPROCS %d: error %v, want ErrExtract naming GOMAXPROCS=1", runtime.GOMAXPROCS(0), err)
		}
	}
	if runtime.GOOS != "linux" {
		t.Skip("the CPU clock is read on Linux only")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tb, err := MeasureLatency(a, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Clock != ClockCPU || tb.Threads != 1 || !(tb.Checks[0].MeasuredMS > 0) {
		t.Fatalf("clock %q, threads %d, checks %+v; want %q, 1, a positive measurement", tb.Clock, tb.Threads, tb.Checks, ClockCPU)
	}
}

// TestFitBlocks: the fit recovers a + b·heads + c·width exactly from exact entries, stays on
// the line when one entry is spoiled (least absolute deviations), derives the stem from the
// one-block times, and Predict uses it when the table's predictor is PredictFit.
func TestFitBlocks(t *testing.T) {
	line := func(h, m int) float64 { return 0.02 + 0.005*float64(h) + 0.0001*float64(m) }
	var blocks []LatencyEntry
	for h := 1; h <= 4; h++ {
		for m := 32; m <= 256; m += 32 {
			blocks = append(blocks, LatencyEntry{Heads: h, MLP: m, MS: line(h, m), OneMS: 0.03 + line(h, m)})
		}
	}
	check := func(name string, f *BlockFit) {
		t.Helper()
		for _, c := range [][3]float64{{f.Intercept, 0.02}, {f.PerHead, 0.005}, {f.PerNeuron, 0.0001}, {f.StemMS, 0.03}} {
			if math.Abs(c[0]-c[1]) > 1e-6 {
				t.Errorf("%s: fit %+v, want intercept 0.02, per head 0.005, per neuron 0.0001, stem 0.03", name, *f)
				return
			}
		}
	}
	check("exact", fitBlocks(blocks))
	spoiled := slices.Clone(blocks)
	spoiled[9].MS *= 3 // one shape hit by a burst of load
	check("one spoiled entry", fitBlocks(spoiled))

	tb := &LatencyTable{Blocks: blocks, StemMS: 0.03, Predictor: PredictFit, Fit: fitBlocks(blocks)}
	s := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 3, MLP: 100}, {Layer: 1, Heads: 1, MLP: 7}}}
	if got, want := tb.Predict(arch.Default(), s), 0.03+line(3, 100)+line(1, 7); math.Abs(got-want) > 1e-9 {
		t.Errorf("Predict with the fit = %v, want %v", got, want)
	}
	if f := fitBlocks([]LatencyEntry{{Heads: 1, MLP: 8, MS: 2, OneMS: 3}, {Heads: 1, MLP: 16, MS: 4, OneMS: 5}}); f.Intercept != 3 || f.StemMS != 1 {
		t.Errorf("one head count: fit %+v, want the mean 3 as a constant and stem 1", *f)
	}
}

// TestMeasureLatencyPredictor: a table records both predictors' errors and reports the
// chosen one's; an unknown predictor is refused, and a table naming the fit without one
// does not load.
func TestMeasureLatencyPredictor(t *testing.T) {
	tb, err := MeasureLatency(tinyLatencyArch(), LatencyConfig{Batch: 1, Repeats: 3, MLPGrid: []int{8, 16}, Checks: 1, Seed: 1, Predictor: PredictFit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Predictor != PredictFit || tb.Fit == nil || tb.MeanAbsErrorPct != tb.Fit.MeanAbsErrorPct || !(tb.GridMeanAbsErrorPct > 0) {
		t.Fatalf("predictor %q, fit %+v, error %v; want the fit's error reported", tb.Predictor, tb.Fit, tb.MeanAbsErrorPct)
	}
	for _, c := range tb.Checks {
		if got := tb.Predict(tinyLatencyArch(), mustSubnet(t, c.Subnet)); math.Abs(got-c.PredictedMS) > 1e-12 {
			t.Errorf("check %s predicted %v, Predict gives %v", c.Subnet, c.PredictedMS, got)
		}
	}
	if _, err := MeasureLatency(tinyLatencyArch(), LatencyConfig{Batch: 1, Repeats: 3, Predictor: "knn"}, nil); !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), `"knn"`) {
		t.Errorf("predictor knn: error %v, want ErrExtract naming it", err)
	}
	bad := gridTable()
	bad.Predictor = PredictFit
	if _, err := LoadLatencyTable(writeTable(t, bad)); !errors.Is(err, ErrExtract) || !strings.Contains(err.Error(), "without a fit") {
		t.Errorf("fit predictor without a fit: error %v", err)
	}
}

// mustSubnet parses a subnet key ("0:h2m16,1:h1m8").
func mustSubnet(t *testing.T, key string) arch.Subnet {
	t.Helper()
	var s arch.Subnet
	for _, part := range strings.Split(key, ",") {
		var l arch.SubLayer
		if _, err := fmt.Sscanf(part, "%d:h%dm%d", &l.Layer, &l.Heads, &l.MLP); err != nil {
			t.Fatalf("subnet key %q: %v", key, err)
		}
		s.Layers = append(s.Layers, l)
	}
	return s
}
