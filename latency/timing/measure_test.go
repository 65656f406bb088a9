package timing

import (
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
	"github.com/ofa-go/ofa/latency"
)

// TestMeasureRepeatedGrid: a repeated MLP width in the grid gives one entry, so the
// table saved loads again; Save leaves no temporary file.
func TestMeasureRepeatedGrid(t *testing.T) {
	a := arch.Default()
	a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth = 4, 4, 2, 2
	a.Dim, a.HeadDim = 8, 4
	a.Layers = arch.Uniform(1, arch.Layer{Heads: 1, MLP: 16})
	tb, err := Measure(a, latency.Config{Batch: 1, Repeats: 3, MLPGrid: []int{16, 8, 16}, Seed: 1}, nil)
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
	if _, err := latency.LoadTable(path); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files after Save, want 1", len(entries))
	}
	if _, err := Measure(a, latency.Config{Batch: 1, Repeats: 3, MLPGrid: []int{0, 16}}, nil); !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), "mlp_grid") {
		t.Errorf("grid with width 0: error %v, want latency.ErrLatency naming mlp_grid", err)
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

// TestMeasureRecordsRuntime: a table says which runtime measured it, carries the
// interquartile range and MACs of every entry and check, and its order statistics lie in
// [0, 1]; an unknown runtime is refused naming the choices.
func TestMeasureRecordsRuntime(t *testing.T) {
	a := tinyLatencyArch()
	tb, err := Measure(a, latency.Config{Batch: 2, Repeats: 3, MLPGrid: []int{8, 16}, Checks: 2, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Runtime != latency.RuntimeOfa || !strings.Contains(tb.RuntimeDescription, "own inference") {
		t.Errorf("runtime %q (%q), want %q described as the tool's own inference", tb.Runtime, tb.RuntimeDescription, latency.RuntimeOfa)
	}
	for _, e := range tb.Blocks {
		if want := 2 * a.BlockCost(e.Heads, e.MLP).MACs; e.MACs != want || !(e.IQRMS >= 0) {
			t.Errorf("entry %+v: want MACs %d (batch 2) and latency.IQR >= 0", e, want)
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
	_, err = Measure(a, latency.Config{Batch: 1, Repeats: 3, Runtime: "tflite"}, nil)
	if !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), `"tflite"`) || !strings.Contains(err.Error(), latency.RuntimeONNXRuntime) {
		t.Errorf("runtime tflite: error %v, want latency.ErrLatency naming it and the choices", err)
	}
	if _, err := TimeModel(a, latency.Config{Batch: 1, Repeats: 3, Runtime: "tflite"}); !errors.Is(err, latency.ErrLatency) {
		t.Errorf("TimeModel with runtime tflite: error %v, want latency.ErrLatency", err)
	}
	_, err = Measure(a, latency.Config{Batch: 1, Repeats: 3, Statistic: "mean"}, nil)
	if !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), `"mean"`) || !strings.Contains(err.Error(), latency.StatMin) {
		t.Errorf("statistic mean: error %v, want latency.ErrLatency naming it and the choices", err)
	}
	_, err = Measure(a, latency.Config{Batch: 1, Repeats: 3, Clock: "tsc"}, nil)
	if !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), `"tsc"`) || !strings.Contains(err.Error(), latency.ClockCPU) {
		t.Errorf("clock tsc: error %v, want latency.ErrLatency naming it and the choices", err)
	}
	_, err = Measure(a, latency.Config{Batch: 1, Repeats: 3, Threads: runtime.GOMAXPROCS(0) + 1}, nil)
	if !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), "GOMAXPROCS") {
		t.Errorf("threads with the ofa runtime: error %v, want latency.ErrLatency naming GOMAXPROCS", err)
	}
}

// TestMeasureMin: latency.Config.Statistic picks the summary of the samples (the
// median by default, the least sample with latency.StatMin), and the table records it.
func TestMeasureMin(t *testing.T) {
	samples := []float64{0.9, 0.3, 5, 0.4, 0.5}
	for _, c := range []struct {
		name, want string
		value      float64
	}{{"", latency.StatMedian, 0.5}, {latency.StatMedian, latency.StatMedian, 0.5}, {latency.StatMin, latency.StatMin, 0.3}} {
		name, stat, err := latency.Config{Statistic: c.name}.Summary()
		if err != nil || name != c.want || stat(samples) != c.value {
			t.Errorf("statistic %q: %q, %v, %v; want %q giving %v", c.name, name, stat(samples), err, c.want, c.value)
		}
	}
	tb, err := Measure(tinyLatencyArch(), latency.Config{Batch: 1, Repeats: 5, MLPGrid: []int{16}, Checks: 1, Seed: 1, Statistic: latency.StatMin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Statistic != latency.StatMin || len(tb.Blocks) != 2 || !(tb.Checks[0].MeasuredMS > 0) {
		t.Fatalf("statistic %q, %d blocks, checks %+v; want %q, 2, a positive measurement", tb.Statistic, len(tb.Blocks), tb.Checks, latency.StatMin)
	}
	for _, e := range tb.Blocks {
		if !(e.MS >= 0) || math.IsInf(e.MS, 0) {
			t.Errorf("entry %+v", e)
		}
	}
}

// TestClockCPU: the CPU clock needs a single-threaded forward pass; with GOMAXPROCS=1 it
// measures the tool's own runtime and the table records it.
func TestClockCPU(t *testing.T) {
	a := tinyLatencyArch()
	cfg := latency.Config{Batch: 1, Repeats: 3, MLPGrid: []int{16}, Checks: 1, Seed: 1, Clock: latency.ClockCPU}
	if runtime.GOMAXPROCS(0) > 1 {
		_, err := Measure(a, cfg, nil)
		if !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), "GOMAXPROCS=1") {
			t.Errorf("CPU clock with GOMAXPROCS %d: error %v, want latency.ErrLatency naming GOMAXPROCS=1", runtime.GOMAXPROCS(0), err)
		}
	}
	if runtime.GOOS != "linux" {
		t.Skip("the CPU clock is read on Linux only")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tb, err := Measure(a, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Clock != latency.ClockCPU || tb.Threads != 1 || !(tb.Checks[0].MeasuredMS > 0) {
		t.Fatalf("clock %q, threads %d, checks %+v; want %q, 1, a positive measurement", tb.Clock, tb.Threads, tb.Checks, latency.ClockCPU)
	}
}

// TestMeasurePredictor: a table records both predictors' errors and reports the
// chosen one's; an unknown predictor is refused, and a table naming the fit without one
// does not load.
func TestMeasurePredictor(t *testing.T) {
	tb, err := Measure(tinyLatencyArch(), latency.Config{Batch: 1, Repeats: 3, MLPGrid: []int{8, 16}, Checks: 1, Seed: 1, Predictor: latency.PredictFit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Predictor != latency.PredictFit || tb.Fit == nil || tb.MeanAbsErrorPct != tb.Fit.MeanAbsErrorPct || !(tb.GridMeanAbsErrorPct > 0) {
		t.Fatalf("predictor %q, fit %+v, error %v; want the fit's error reported", tb.Predictor, tb.Fit, tb.MeanAbsErrorPct)
	}
	for _, c := range tb.Checks {
		if got := tb.Predict(tinyLatencyArch(), mustSubnet(t, c.Subnet)); math.Abs(got-c.PredictedMS) > 1e-12 {
			t.Errorf("check %s predicted %v, Predict gives %v", c.Subnet, c.PredictedMS, got)
		}
	}
	if _, err := Measure(tinyLatencyArch(), latency.Config{Batch: 1, Repeats: 3, Predictor: "knn"}, nil); !errors.Is(err, latency.ErrLatency) || !strings.Contains(err.Error(), `"knn"`) {
		t.Errorf("predictor knn: error %v, want latency.ErrLatency naming it", err)
	}
}

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
