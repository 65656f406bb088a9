package expand

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gonum.org/v1/gonum/diff/fd"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func smallModel(t testing.TB, dt tensor.Dtype) (arch.Arch, *supernet.Params) {
	a := arch.Default()
	a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth = 8, 8, 4, 4
	a.Dim, a.HeadDim = 12, 4
	a.Layers = []arch.Layer{{Heads: 2, MLP: 7}, {Heads: 3, MLP: 5}, {Heads: 1, MLP: 9}}
	p, err := supernet.NewParams(a, dt, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for _, n := range p.Names() {
		w := p.Get(n)
		for i := 0; i < w.Shape().TotalSize(); i++ {
			supernet.SetAt(w, i, supernet.At(w, i)+0.3*r.NormFloat64())
		}
	}
	return a, p
}

func images(a arch.Arch, n int) []float32 {
	r := rand.New(rand.NewPCG(8, 8))
	x := make([]float32, n*a.InHeight*a.InWidth)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// net builds a forward graph (and optionally a loss and gradients) of the whole model.
type net struct {
	n     *supernet.Net
	loss  *G.Node
	grads G.Nodes
	vm    G.VM
}

func build(t testing.TB, a arch.Arch, p *supernet.Params, x []float32, n int, withGrad bool) *net {
	t.Helper()
	g := G.NewGraph()
	sn, err := supernet.Build(g, a, p, arch.Largest(a), supernet.NewPatches(a, n, p.Dtype()), nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	if err := supernet.Patchify(a, x, n, sn.Patches); err != nil {
		t.Fatal(err)
	}
	out := &net{n: sn}
	if withGrad {
		target := tensor.New(tensor.WithShape(n, a.Classes), tensor.Of(p.Dtype()))
		for b := 0; b < n; b++ {
			supernet.SetAt(target, b*a.Classes+b%a.Classes, 1)
		}
		if out.loss, err = (nn.Fused{}).SoftCrossEntropy(sn.Logits, G.NodeFromAny(g, target), 1, 1); err != nil {
			t.Fatal(err)
		}
		if out.grads, err = G.Grad(out.loss, sn.Weights...); err != nil {
			t.Fatal(err)
		}
	}
	out.vm = G.NewTapeMachine(g)
	t.Cleanup(func() { out.vm.Close() })
	return out
}

func (n *net) run(t testing.TB) {
	n.vm.Reset()
	if err := n.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
}

func logits(n *net) []float64 {
	var out []float64
	switch z := n.n.Logits.Value().Data().(type) {
	case []float32:
		for _, v := range z {
			out = append(out, float64(v))
		}
	case []float64:
		out = append(out, z...)
	}
	return out
}

// TestIdentityExpansionIsExact: a freshly expanded model computes bit for bit what the
// original computes, for every plan and transform combination.
func TestIdentityExpansionIsExact(t *testing.T) {
	a, p := smallModel(t, tensor.Float32)
	x := images(a, 3)
	base := build(t, a, p, x, 3, false)
	base.run(t)
	want := logits(base)
	for _, spec := range []string{"repeat:2", "cycle:2", "0,1,1,2,2,2,0"} {
		for _, tr := range []Transforms{{}, {LowRank: 3}, {HeadMix: true}, {LowRank: 2, HeadMix: true, All: true}} {
			plan, err := ParsePlan(spec, len(a.Layers))
			if err != nil {
				t.Fatal(err)
			}
			ea, ep, err := Expand(a, p, plan, tr)
			if err != nil {
				t.Fatal(err)
			}
			e := build(t, ea, ep, x, 3, false)
			e.run(t)
			got := logits(e)
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("plan %s, transforms %+v: logit %d is %v, want %v", spec, tr, i, got[i], want[i])
				}
			}
		}
	}
}

// TestSharedGradientsAccumulate: the gradient of a layer weight used at several positions
// matches finite differences (so every position's contribution is summed into it).
func TestSharedGradientsAccumulate(t *testing.T) {
	a, p := smallModel(t, tensor.Float64)
	plan, _ := ParsePlan("0,1,0,2,1", len(a.Layers))
	ea, ep, err := Expand(a, p, plan, Transforms{LowRank: 2, HeadMix: true})
	if err != nil {
		t.Fatal(err)
	}
	// open the gates and move the transforms off identity so every position contributes
	r := rand.New(rand.NewPCG(9, 1))
	for _, n := range ep.Names() {
		if strings.HasPrefix(n, "positions.") {
			w := ep.Get(n)
			for i := 0; i < w.Shape().TotalSize(); i++ {
				supernet.SetAt(w, i, supernet.At(w, i)+0.3*r.NormFloat64())
			}
		}
	}
	x := images(ea, 2)
	n := build(t, ea, ep, x, 2, true)
	n.run(t)
	fd := build(t, ea, ep, x, 2, true)
	loss := func() float64 {
		fd.run(t)
		return fd.loss.Value().Data().(float64)
	}
	shared := func(name string) bool {
		return strings.HasPrefix(name, "blocks.0.") || strings.HasPrefix(name, "blocks.1.")
	}
	if checked := checkGradients(t, n.n.WeightNames, n.grads, ep, shared, loss); checked < 20 {
		t.Fatalf("checked %d elements", checked)
	}
}

// checkGradients compares, for the first, middle and last element of every float64 weight
// of p that keep selects, the gradient in grads (aligned with names) with a central finite
// difference of loss, and returns how many elements it checked. The gradients are copied
// first, so loss may rerun the graph that computed them.
func checkGradients(t *testing.T, names []string, grads G.Nodes, p *supernet.Params, keep func(string) bool, loss func() float64) int {
	t.Helper()
	var gs [][]float64
	for k := range names {
		gs = append(gs, append([]float64(nil), grads[k].Value().Data().([]float64)...))
	}
	checked := 0
	for k, name := range names {
		if !keep(name) {
			continue
		}
		w, g := p.Get(name).Data().([]float64), gs[k]
		for _, j := range []int{0, len(w) / 2, len(w) - 1} {
			orig := w[j]
			num := fd.Derivative(func(v float64) float64 { w[j] = v; return loss() }, orig, &fd.Settings{Formula: fd.Central, Step: 1e-6})
			w[j] = orig
			if math.Abs(num-g[j]) > 1e-6*(1+math.Abs(num)) {
				t.Errorf("%s[%d]: gradient %.10g, finite difference %.10g", name, j, g[j], num)
			}
			checked++
		}
	}
	return checked
}

// TestSharedTensorsStoredOnce: a checkpoint of an expanded model holds each shared layer
// tensor once, and its unique-parameter count is exact.
func TestSharedTensorsStoredOnce(t *testing.T) {
	a, p := smallModel(t, tensor.Float32)
	plan, _ := ParsePlan("repeat:3", len(a.Layers))
	ea, ep, err := Expand(a, p, plan, Transforms{LowRank: 2, HeadMix: true})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "e.safetensors")
	if err := modelfile.Save(path, &modelfile.Model{Kind: modelfile.KindExpanded, Arch: ea, Params: ep,
		Preprocess: modelfile.Preprocess{Mean: 0, Std: 1}}); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	var stored int64
	for _, tn := range f.Tensors {
		count[tn.Name]++
		stored += int64(len(tn.Data))
		if strings.HasPrefix(tn.Name, "positions.") && strings.Contains(tn.Name, "attn.qkv") {
			t.Fatalf("position-specific copy of a shared weight: %s", tn.Name)
		}
	}
	for l := range a.Layers {
		if n := count["blocks."+string(rune('0'+l))+".attn.qkv.weight"]; n != 1 {
			t.Fatalf("layer %d qkv stored %d times", l, n)
		}
	}
	if want := ea.ModelCost().Params; stored != want || ep.Count() != want {
		t.Fatalf("stored %d values, params %d, cost model %d", stored, ep.Count(), want)
	}
	// MACs grow with positions, unique params barely
	if ea.ModelCost().MACs <= a.ModelCost().MACs || ea.ModelCost().Params-a.ModelCost().Params > a.ModelCost().Params/2 {
		t.Fatalf("expanded cost %+v vs original %+v", ea.ModelCost(), a.ModelCost())
	}
	m, err := modelfile.Load(path)
	if err != nil || !m.Arch.Expanded() {
		t.Fatalf("reload: %v", err)
	}
}

// TestPlans parses and validates plans.
func TestPlans(t *testing.T) {
	for _, c := range []struct {
		spec string
		n    int
		want string // plan or error fragment
	}{
		{"repeat:2", 3, "0,0,1,1,2,2"},
		{"cycle:2", 3, "0,1,2,0,1,2"},
		{"0,0,1,2", 3, "0,0,1,2"},
		{"0,1,2", 3, "more positions than layers"},
		{"0,1,3,1", 3, "uses layer 3"},
		{"0,0,1,1", 3, "never uses layer 2"},
		{"repeat:1", 3, "count must be 2..16"},
		{"zig:2", 3, "not a layer index"},
		{"-1,0,1,2", 3, "uses layer -1"},
	} {
		p, err := ParsePlan(c.spec, c.n)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = p.String()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("ParsePlan(%q, %d) = %q, want %q", c.spec, c.n, got, c.want)
		}
	}
	a, p := smallModel(t, tensor.Float32)
	plan, _ := ParsePlan("repeat:2", 3)
	if _, _, err := Expand(a, p, plan, Transforms{LowRank: 99}); err == nil || !strings.Contains(err.Error(), "low_rank") {
		t.Fatalf("rank 99: %v", err)
	}
}

// TestOpenGateExpansion: with the gates starting at 1 and affine maps only, every reused
// position is a second full run of its layer's block, so "repeat:2" of a 3-layer model
// computes what the plain 6-layer model with each layer duplicated computes; a gate in
// between starts the reused branches scaled by it, and gates outside [0, 1] are refused.
func TestOpenGateExpansion(t *testing.T) {
	a, p := smallModel(t, tensor.Float64)
	plan, _ := ParsePlan("repeat:2", len(a.Layers))
	ea, ep, err := ExpandGated(a, p, plan, Transforms{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// the same computation without sharing: layers 0,0,1,1,2,2 stored separately
	da := a.Clone()
	da.Layers = nil
	for _, l := range plan {
		da.Layers = append(da.Layers, a.Layers[l])
	}
	dp, err := supernet.NewParams(da, tensor.Float64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range dp.Names() {
		src := name
		if rest, ok := strings.CutPrefix(name, "blocks."); ok {
			i, tail, _ := strings.Cut(rest, ".")
			n := int(i[0] - '0')
			src = "blocks." + string(rune('0'+plan[n])) + "." + tail
		}
		copy(dp.Get(name).Data().([]float64), p.Get(src).Data().([]float64))
	}
	x := images(a, 3)
	want := build(t, da, dp, x, 3, false)
	want.run(t)
	got := build(t, ea, ep, x, 3, false)
	got.run(t)
	w, g := logits(want), logits(got)
	orig := build(t, a, p, x, 3, false)
	orig.run(t)
	o := logits(orig)
	moved := 0.0
	for i := range w {
		if math.Abs(g[i]-w[i]) > 1e-12*(1+math.Abs(w[i])) {
			t.Fatalf("logit %d: open expansion %v, duplicated layers %v", i, g[i], w[i])
		}
		moved = math.Max(moved, math.Abs(g[i]-o[i]))
	}
	if moved < 1e-3 {
		t.Fatalf("open gates changed the logits by at most %g: the reused blocks do not run", moved)
	}

	_, half, err := ExpandGated(a, p, plan, Transforms{LowRank: 2}, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range plan {
		n := supernet.Position(i)
		if i == 0 || plan[i-1] != l { // the first use of a layer gets no transforms
			if half.Get(n.AffineAttnScale) != nil {
				t.Fatalf("position %d, the first use of layer %d, has transforms", i, l)
			}
			continue
		}
		for _, name := range []string{n.AffineAttnScale, n.AffineMLPScale} {
			for _, v := range half.Get(name).Data().([]float64) {
				if v != 0.25 {
					t.Fatalf("%s: %v, want 0.25", name, v)
				}
			}
		}
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		if _, _, err := ExpandGated(a, p, plan, Transforms{}, bad); err == nil || !strings.Contains(err.Error(), "init_gate") {
			t.Errorf("gate %v: %v, want an init_gate error", bad, err)
		}
		if err := (Config{Plan: "repeat:2", InitGate: bad}).Validate(a.Dim); err == nil {
			t.Errorf("Config.Validate accepted gate %v", bad)
		}
	}
}

// TestOpenExpansionIsRepeatedSubnet: expanding every layer twice with the gates open
// (init gate 1) computes bit for bit what the supernet computes for the subnet that runs
// each layer twice (arch.SubLayer.Repeat), the subnet reuse-aware supernet training
// samples; and that subnet's shared-weight gradients match finite differences.
func TestOpenExpansionIsRepeatedSubnet(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		a, p := smallModel(t, dt)
		x := images(a, 3)
		rep := arch.Largest(a)
		for i := range rep.Layers {
			rep.Layers[i].Repeat = 2
		}
		g := G.NewGraph()
		sn, err := supernet.Build(g, a, p, rep, supernet.NewPatches(a, 3, dt), nn.Fused{})
		if err != nil {
			t.Fatal(err)
		}
		if err := supernet.Patchify(a, x, 3, sn.Patches); err != nil {
			t.Fatal(err)
		}
		target := tensor.New(tensor.WithShape(3, a.Classes), tensor.Of(dt))
		for b := 0; b < 3; b++ {
			supernet.SetAt(target, b*a.Classes+b%a.Classes, 1)
		}
		loss, err := (nn.Fused{}).SoftCrossEntropy(sn.Logits, G.NodeFromAny(g, target), 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, sn.Weights...)
		if err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		run := func() {
			vm.Reset()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
		}
		run()
		want := logits(&net{n: sn})

		plan, _ := ParsePlan("repeat:2", len(a.Layers))
		ea, ep, err := ExpandGated(a, p, plan, Transforms{LowRank: 2, HeadMix: true}, 1)
		if err != nil {
			t.Fatal(err)
		}
		e := build(t, ea, ep, x, 3, false)
		e.run(t)
		got := logits(e)
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("%v: logit %d of the open expansion is %v, the repeated subnet's %v", dt, i, got[i], want[i])
			}
		}
		if dt != tensor.Float64 {
			continue
		}
		lossAt := func() float64 { run(); return loss.Value().Data().(float64) }
		run()
		blocks := func(name string) bool { return strings.HasPrefix(name, "blocks.") }
		if checked := checkGradients(t, sn.WeightNames, grads, p, blocks, lossAt); checked < 30 {
			t.Fatalf("checked %d elements", checked)
		}
	}
}
