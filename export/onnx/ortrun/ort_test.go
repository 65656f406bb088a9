//go:build onnxruntime && cgo

package ortrun_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/export/onnx/ortrun"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// library returns the onnxruntime library the tests load, or skips naming it. Tests run in
// the package directory, so the default npm location is three levels up.
func library(t *testing.T) string {
	t.Helper()
	lib := os.Getenv(ortrun.LibEnv)
	if lib == "" {
		if os.Getenv(ortrun.NodeEnv) == "" {
			t.Setenv(ortrun.NodeEnv, filepath.Join("..", "testdata", "ort"))
		}
		lib = ortrun.DefaultLibPath()
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("onnxruntime library %s not found (%v): run scripts/install-onnx-test-deps.sh (npm package onnxruntime-node %s) or set %s",
			lib, err, ortrun.LibraryVersion, ortrun.LibEnv)
	}
	return lib
}

func tinyArch() arch.Arch {
	return arch.Arch{Task: arch.TaskImage, InChannels: 1, InHeight: 8, InWidth: 8, PatchHeight: 4, PatchWidth: 4,
		Dim: 16, HeadDim: 4, Classes: 5, NormEps: 1e-6, Activation: arch.ActivationGELUTanh,
		Layers: []arch.Layer{{Heads: 4, MLP: 32}, {Heads: 2, MLP: 16}}}
}

// TestSessionMatchesOfa: the exported model run in onnxruntime through a Session gives the
// logits of the tool's own graph, at two batch sizes, and runs again with a new input.
func TestSessionMatchesOfa(t *testing.T) {
	version, err := ortrun.Init(library(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "1.") {
		t.Fatalf("version %q, want 1.x", version)
	}
	a := tinyArch()
	p, err := supernet.NewParams(a, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	model, err := onnx.Export(a, p, arch.Largest(a), onnx.Options{Kind: "supernet"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		s, err := ortrun.NewSession(model, ortrun.IO{Name: onnx.InputName, Shape: []int64{int64(n), 1, 8, 8}},
			ortrun.IO{Name: onnx.OutputName, Shape: []int64{int64(n), 5}}, ortrun.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		for round := uint64(0); round < 2; round++ {
			r := rand.New(rand.NewPCG(round, uint64(n)))
			x := s.Input()
			if len(x) != n*64 {
				t.Fatalf("input buffer of %d values, want %d", len(x), n*64)
			}
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			want := ofaLogits(t, a, p, x, n)
			if err := s.Run(); err != nil {
				t.Fatal(err)
			}
			got := s.Output()
			if len(got) != len(want) {
				t.Fatalf("batch %d: %d logits, want %d", n, len(got), len(want))
			}
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); !(d < 1e-4) {
					t.Fatalf("batch %d round %d: logit %d = %v in onnxruntime, %v in ofa", n, round, i, got[i], want[i])
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInitOneLibrary: Init is idempotent for one library and refuses a second one.
func TestInitOneLibrary(t *testing.T) {
	lib := library(t)
	v1, err := ortrun.Init(lib)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ortrun.Init(lib)
	if err != nil || v2 != v1 {
		t.Fatalf("second Init = %q, %v; want %q, nil", v2, err, v1)
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if _, err := ortrun.Init(other); !errors.Is(err, ortrun.ErrLibrary) || !strings.Contains(err.Error(), other) {
		t.Fatalf("Init of a second library: %v, want ErrLibrary naming %s", err, other)
	}
}

// TestNewSessionErrors: a bad model or a wrong input name is an error, not a crash.
func TestNewSessionErrors(t *testing.T) {
	if _, err := ortrun.Init(library(t)); err != nil {
		t.Fatal(err)
	}
	in := ortrun.IO{Name: onnx.InputName, Shape: []int64{1, 1, 8, 8}}
	out := ortrun.IO{Name: onnx.OutputName, Shape: []int64{1, 5}}
	if _, err := ortrun.NewSession([]byte("not a model"), in, out, ortrun.Options{}); err == nil {
		t.Error("garbage model: no error")
	}
	a := tinyArch()
	p, err := supernet.NewParams(a, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	model, err := onnx.Export(a, p, arch.Largest(a), onnx.Options{Kind: "supernet"})
	if err != nil {
		t.Fatal(err)
	}
	bad := ortrun.IO{Name: "pixels", Shape: in.Shape}
	s, err := ortrun.NewSession(model, bad, out, ortrun.Options{})
	if err == nil {
		err = s.Run()
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "pixels") {
		t.Errorf("input named pixels: error %v, want one naming it", err)
	}
}

// ofaLogits runs (a, p) with the tool's own fused graph on n examples x (N, C, H, W).
func ofaLogits(t *testing.T, a arch.Arch, p *supernet.Params, x []float32, n int) []float32 {
	t.Helper()
	g := G.NewGraph()
	net, err := supernet.Build(g, a, p, arch.Largest(a), supernet.NewPatches(a, n, tensor.Float32), nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	if err := supernet.Patchify(a, x, n, net.Patches); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), net.Logits.Value().Data().([]float32)...)
}
