package latency

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

// gridTable is a table over heads 1..4 and MLP widths 32..256 whose block times grow with
// both, entered row by row as Measure enters them.
func gridTable() *Table {
	t := &Table{Dim: 64, HeadDim: 16, Tokens: 17, Patch: 7, Classes: 10, Batch: 1, Repeats: 3, StemMS: 0.05}
	for h := 1; h <= 4; h++ {
		for m := 32; m <= 256; m += 32 {
			t.Blocks = append(t.Blocks, Entry{Heads: h, MLP: m, MS: 0.01*float64(h) + 0.001*float64(m)})
		}
	}
	return t
}

func writeTable(t *testing.T, tb *Table) string {
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

// TestLoadTableRejectsDuplicate: a table holding one block shape twice is refused,
// naming the file and the shape, wherever the duplicate stands (a copy of the first entry
// appended at the end once made every latency budget impossible).
func TestLoadTableRejectsDuplicate(t *testing.T) {
	good := gridTable()
	if _, err := LoadTable(writeTable(t, good)); err != nil {
		t.Fatal(err)
	}
	for name, blocks := range map[string][]Entry{
		"first entry appended":  append(slices.Clone(good.Blocks), good.Blocks[0]),
		"first entry prepended": append([]Entry{good.Blocks[0]}, good.Blocks...),
		"other time":            append(slices.Clone(good.Blocks), Entry{Heads: 1, MLP: 32, MS: 7}),
	} {
		tb := *good
		tb.Blocks = blocks
		path := writeTable(t, &tb)
		_, err := LoadTable(path)
		if !errors.Is(err, ErrLatency) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "heads 1, mlp 32") {
			t.Errorf("%s: error %v, want ErrLatency naming %s and the shape heads 1, mlp 32", name, err, path)
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
	prepended.Blocks = append([]Entry{prepended.Blocks[0]}, prepended.Blocks...)
	sparse := gridTable() // rows of 1, 2 and 4 heads: 3 is scaled from the nearest row
	sparse.Blocks = slices.DeleteFunc(sparse.Blocks, func(e Entry) bool { return e.Heads == 3 })
	sparseReversed := gridTable()
	sparseReversed.Blocks = slices.Clone(sparse.Blocks)
	slices.Reverse(sparseReversed.Blocks)

	for h := 1; h <= 6; h++ {
		for m := 1; m <= 300; m++ {
			want := base.block(h, m)
			if math.IsNaN(want) || math.IsInf(want, 0) || want < 0 {
				t.Fatalf("block(%d, %d) = %v", h, m, want)
			}
			for name, tb := range map[string]*Table{"reversed": reversed, "first entry appended": appended, "first entry prepended": prepended} {
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

// TestLoadTableRuntime: a table written before tables recorded their runtime loads
// as measured by the tool's own runtime; an unknown runtime is refused naming the file.
func TestLoadTableRuntime(t *testing.T) {
	old := gridTable()
	old.Runtime = ""
	got, err := LoadTable(writeTable(t, old))
	if err != nil || got.Runtime != RuntimeOfa {
		t.Fatalf("table without runtime: %+v, %v; want runtime %q", got, err, RuntimeOfa)
	}
	ort := gridTable()
	ort.Runtime = RuntimeONNXRuntime
	if got, err := LoadTable(writeTable(t, ort)); err != nil || got.Runtime != RuntimeONNXRuntime {
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
	if _, err := LoadTable(writeTable(t, tsc)); !errors.Is(err, ErrLatency) || !strings.Contains(err.Error(), `"tsc"`) {
		t.Errorf("clock tsc: error %v, want ErrLatency naming it", err)
	}
	odd := gridTable()
	odd.Statistic = "p90"
	if _, err := LoadTable(writeTable(t, odd)); !errors.Is(err, ErrLatency) || !strings.Contains(err.Error(), `"p90"`) {
		t.Errorf("statistic p90: error %v, want ErrLatency naming it", err)
	}
	bad := gridTable()
	bad.Runtime = "tvm"
	path := writeTable(t, bad)
	if _, err := LoadTable(path); !errors.Is(err, ErrLatency) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"tvm"`) {
		t.Errorf("runtime tvm: error %v, want ErrLatency naming %s and the runtime", err, path)
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
		if got := Concordance(c.x, c.y); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Concordance(%v, %v) = %v, want %v", c.x, c.y, got, c.want)
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
		if got := IQR(c.v); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("IQR(%v) = %v, want %v", c.v, got, c.want)
		}
		if !slices.Equal(in, c.v) {
			t.Errorf("iqr reordered its input to %v", c.v)
		}
	}
	if !math.IsNaN(IQR(nil)) {
		t.Error("IQR(nil) is not NaN")
	}
}

// TestFitBlocks: the fit recovers a + b·heads + c·width exactly from exact entries, stays on
// the line when one entry is spoiled (least absolute deviations), derives the stem from the
// one-block times, and Predict uses it when the table's predictor is PredictFit.
func TestFitBlocks(t *testing.T) {
	line := func(h, m int) float64 { return 0.02 + 0.005*float64(h) + 0.0001*float64(m) }
	var blocks []Entry
	for h := 1; h <= 4; h++ {
		for m := 32; m <= 256; m += 32 {
			blocks = append(blocks, Entry{Heads: h, MLP: m, MS: line(h, m), OneMS: 0.03 + line(h, m)})
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
	check("exact", FitBlocks(blocks))
	spoiled := slices.Clone(blocks)
	spoiled[9].MS *= 3 // one shape hit by a burst of load
	check("one spoiled entry", FitBlocks(spoiled))

	tb := &Table{Blocks: blocks, StemMS: 0.03, Predictor: PredictFit, Fit: FitBlocks(blocks)}
	s := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 3, MLP: 100}, {Layer: 1, Heads: 1, MLP: 7}}}
	if got, want := tb.Predict(arch.Default(), s), 0.03+line(3, 100)+line(1, 7); math.Abs(got-want) > 1e-9 {
		t.Errorf("Predict with the fit = %v, want %v", got, want)
	}
	if f := FitBlocks([]Entry{{Heads: 1, MLP: 8, MS: 2, OneMS: 3}, {Heads: 1, MLP: 16, MS: 4, OneMS: 5}}); f.Intercept != 3 || f.StemMS != 1 {
		t.Errorf("one head count: fit %+v, want the mean 3 as a constant and stem 1", *f)
	}
}

// TestLoadTableFitWithoutFit: a table that predicts with the fit but holds none is refused.
func TestLoadTableFitWithoutFit(t *testing.T) {
	bad := gridTable()
	bad.Predictor = PredictFit
	if _, err := LoadTable(writeTable(t, bad)); !errors.Is(err, ErrLatency) || !strings.Contains(err.Error(), "without a fit") {
		t.Errorf("fit predictor without a fit: error %v", err)
	}
}
