package pipeline

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/expand"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// TestExpandInitGate: Expand with the default gate returns a model that reproduces the
// original and records no gate; with an open starting gate it still checks the closed
// expansion, then returns a model whose reused positions start at that gate (so its logits
// differ from the original's) and records the gate.
func TestExpandInitGate(t *testing.T) {
	a := arch.Default()
	a.Dim, a.HeadDim = 16, 8
	a.Layers = []arch.Layer{{Heads: 2, MLP: 12}, {Heads: 1, MLP: 20}}
	p, err := supernet.NewParams(a, tensor.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	m := &modelfile.Model{Kind: modelfile.KindExtracted, Arch: a, Params: p, Preprocess: modelfile.Preprocess{Mean: 0, Std: 1}}
	r := rand.New(rand.NewPCG(3, 3))
	b := data.Batch{X: make([]float32, 4*a.InHeight*a.InWidth), Labels: []int{0, 1, 2, 3}, Size: 4}
	for i := range b.X {
		b.X[i] = float32(r.NormFloat64())
	}
	closed, err := Expand(m, expand.Config{Plan: "repeat:2"}, b)
	if err != nil {
		t.Fatal(err)
	}
	if tj := closed.Extra[modelfile.KeyTransforms]; strings.Contains(tj, "init_gate") {
		t.Fatalf("default expansion records a gate: %s", tj)
	}
	open, err := Expand(m, expand.Config{Plan: "repeat:2", InitGate: 0.5}, b)
	if err != nil {
		t.Fatal(err)
	}
	if tj := open.Extra[modelfile.KeyTransforms]; !strings.Contains(tj, `"init_gate":0.5`) {
		t.Fatalf("transforms %s do not record the gate", tj)
	}
	for i, pos := range open.Arch.Positions {
		var g []float32
		if name := supernet.Position(i).AffineMLPScale; open.Params.Get(name) != nil {
			g = open.Params.Float32(name)
		}
		if (i%2 == 1) != (g != nil) || (g != nil && g[0] != 0.5) {
			t.Fatalf("position %d (layer %d): MLP gate %v, want 0.5 on reuses only", i, pos.Layer, g)
		}
	}
	if _, err := extract.Verify(a, p, arch.Largest(a), open.Arch, open.Params, b); err == nil {
		t.Fatal("an expansion with open gates reproduces the original: the gates do nothing")
	}
	if _, err := Expand(m, expand.Config{Plan: "repeat:2", InitGate: 2}, b); err == nil || !strings.Contains(err.Error(), "init_gate") {
		t.Fatalf("gate 2: %v, want an init_gate error", err)
	}
}
