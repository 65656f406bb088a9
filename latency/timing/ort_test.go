package timing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx/ortrun"
	"github.com/ofa-go/ofa/latency"
)

// ortLibrary returns the onnxruntime library for the tests, or skips naming it (tests run in
// extract/, so the npm package's default location is one level up).
func ortLibrary(t *testing.T) string {
	t.Helper()
	if !ortrun.Built {
		t.Skip("built without onnxruntime support (go test -tags onnxruntime, with cgo)")
	}
	lib := os.Getenv(ortrun.LibEnv)
	if lib == "" {
		if os.Getenv(ortrun.NodeEnv) == "" {
			t.Setenv(ortrun.NodeEnv, filepath.Join("..", "export", "onnx", "testdata", "ort"))
		}
		lib = ortrun.DefaultLibPath()
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("onnxruntime library %s not found (%v): run scripts/install-onnx-test-deps.sh or set %s", lib, err, ortrun.LibEnv)
	}
	return lib
}

// TestORTRuntimeNotBuilt: without onnxruntime support asking for it is an error saying how
// to build with it, from Measure and TimeModel alike.
func TestORTRuntimeNotBuilt(t *testing.T) {
	if ortrun.Built {
		t.Skip("built with onnxruntime support")
	}
	cfg := latency.Config{Batch: 1, Repeats: 3, Runtime: latency.RuntimeONNXRuntime}
	_, err := Measure(tinyLatencyArch(), cfg, nil)
	if !errors.Is(err, latency.ErrLatency) || !errors.Is(err, ortrun.ErrNotBuilt) || !strings.Contains(err.Error(), "-tags onnxruntime") {
		t.Errorf("Measure: %v, want latency.ErrLatency and ortrun.ErrNotBuilt naming -tags onnxruntime", err)
	}
	if _, err := TimeModel(tinyLatencyArch(), cfg); !errors.Is(err, ortrun.ErrNotBuilt) {
		t.Errorf("TimeModel: %v, want ortrun.ErrNotBuilt", err)
	}
}

// TestMeasureORT: a table timed in onnxruntime records the runtime and its version,
// has one entry per shape and a check per subnet, and saves and loads again.
func TestMeasureORT(t *testing.T) {
	lib := ortLibrary(t)
	a := tinyLatencyArch()
	a.Positions = nil
	tb, err := Measure(a, latency.Config{Batch: 3, Repeats: 3, MLPGrid: []int{8, 16}, Checks: 2, Seed: 1,
		Runtime: latency.RuntimeONNXRuntime, ORTLib: lib}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Runtime != latency.RuntimeONNXRuntime || !strings.HasPrefix(tb.RuntimeVersion, "1.") || !strings.Contains(tb.RuntimeDescription, "onnxruntime "+tb.RuntimeVersion) {
		t.Errorf("runtime %q version %q (%q)", tb.Runtime, tb.RuntimeVersion, tb.RuntimeDescription)
	}
	if len(tb.Blocks) != 4 || len(tb.Checks) != 3 || tb.Batch != 3 {
		t.Fatalf("%d blocks, %d checks at batch %d; want 4, 3 at batch 3", len(tb.Blocks), len(tb.Checks), tb.Batch)
	}
	for _, c := range tb.Checks {
		if !(c.MeasuredMS > 0) || !(c.PredictedMS >= 0) {
			t.Errorf("check %+v", c)
		}
	}
	path := filepath.Join(t.TempDir(), "latency.json")
	if err := tb.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := latency.LoadTable(path)
	if err != nil || got.Runtime != latency.RuntimeONNXRuntime || got.RuntimeVersion != tb.RuntimeVersion {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	// an expanded model is timed too (the lifecycle times expanded models)
	e := a.Clone()
	e.Positions = []arch.Position{{Layer: 0}, {Layer: 1}, {Layer: 1, Affine: true, LowRank: 2}}
	if ms, err := TimeModel(e, latency.Config{Batch: 1, Repeats: 3, Runtime: latency.RuntimeONNXRuntime, ORTLib: lib}); err != nil || !(ms > 0) {
		t.Errorf("TimeModel of an expanded model: %v ms, %v", ms, err)
	}
}
