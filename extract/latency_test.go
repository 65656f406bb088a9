package extract

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
