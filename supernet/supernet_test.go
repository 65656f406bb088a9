package supernet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"gonum.org/v1/gonum/diff/fd"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func tinyArch() arch.Arch {
	return arch.Arch{
		Task: arch.TaskImage, InChannels: 1, InHeight: 8, InWidth: 8, PatchHeight: 4, PatchWidth: 4,
		Dim: 8, HeadDim: 4, Classes: 4, NormEps: 1e-6, Activation: arch.ActivationGELUTanh,
		Layers: arch.Uniform(3, arch.Layer{Heads: 3, MLP: 12}),
	}
}

// randomParams gives every tensor (norms and biases included) random values, so that no
// part of the computation hides behind a zero or a one.
func randomParams(t testing.TB, a arch.Arch, dt tensor.Dtype, seed uint64) *Params {
	t.Helper()
	p, err := NewParams(a, dt, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 42))
	for _, name := range p.Names() {
		w := p.Get(name)
		for i := 0; i < w.Shape().TotalSize(); i++ {
			setAt(w, i, at(w, i)+0.3*r.NormFloat64())
		}
	}
	return p
}

func randomImages(a arch.Arch, n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	x := make([]float32, n*a.InChannels*a.InHeight*a.InWidth)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func reference(a arch.Arch, p *Params) refModel {
	return refModel{a: a, w: func(name string) []float64 {
		t := p.Get(name)
		if t == nil {
			panic("reference: missing " + name)
		}
		out := make([]float64, t.Shape().TotalSize())
		for i := range out {
			out[i] = at(t, i)
		}
		return out
	}}
}

func forward(t testing.TB, a arch.Arch, p *Params, s arch.Subnet, images []float32, n int, ops nn.Ops) [][]float64 {
	t.Helper()
	g := G.NewGraph()
	net, err := Build(g, a, p, s, NewPatches(a, n, p.Dtype()), ops)
	if err != nil {
		t.Fatal(err)
	}
	if err := Patchify(a, images, n, net.Patches); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	flat := values(net.Logits.Value())
	out := make([][]float64, n)
	for b := range out {
		out[b] = flat[b*a.Classes : (b+1)*a.Classes]
	}
	return out
}

func values(v G.Value) []float64 {
	switch d := v.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	case float32:
		return []float64{float64(d)}
	case float64:
		return []float64{d}
	}
	panic(fmt.Sprintf("values: %T", v.Data()))
}

func assertClose(t *testing.T, what string, got, want [][]float64, tol float64) {
	t.Helper()
	for b := range want {
		for c := range want[b] {
			if d := math.Abs(got[b][c] - want[b][c]); d > tol*(1+math.Abs(want[b][c])) {
				t.Fatalf("%s: example %d class %d: got %.12g, want %.12g", what, b, c, got[b][c], want[b][c])
			}
		}
	}
}

// TestLargestSubnetEqualsDenseModel: the elastic graph at its largest subnet computes exactly
// what a plain dense ViT computes with the same weights.
func TestLargestSubnetEqualsDenseModel(t *testing.T) {
	a := tinyArch()
	p := randomParams(t, a, tensor.Float64, 1)
	images := randomImages(a, 3, 1)
	want := reference(a, p).forward(images, 3, arch.Largest(a))
	for _, ops := range []nn.Ops{nn.Fused{}, nn.Composed{}} {
		got := forward(t, a, p, arch.Largest(a), images, 3, ops)
		assertClose(t, fmt.Sprintf("%T", ops), got, want, 1e-10)
	}
	// float32 weights: same function up to rounding
	got := forward(t, a, p.Convert(tensor.Float32), arch.Largest(a), images, 3, nn.Fused{})
	assertClose(t, "float32", got, want, 1e-4)
}

// TestSubnetsEqualDenseModel: a subnet (fewer heads, neurons, layers) computes what the dense
// model computes with its leading heads and neurons.
func TestSubnetsEqualDenseModel(t *testing.T) {
	a := tinyArch()
	p := randomParams(t, a, tensor.Float64, 2)
	images := randomImages(a, 2, 2)
	for _, s := range []arch.Subnet{
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 3}}},
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 2, MLP: 12}, {Layer: 2, Heads: 3, MLP: 5}}},
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 3, MLP: 1}, {Layer: 1, Heads: 1, MLP: 12}, {Layer: 2, Heads: 2, MLP: 7}}},
	} {
		want := reference(a, p).forward(images, 2, s)
		got := forward(t, a, p, s, images, 2, nn.Fused{})
		assertClose(t, s.Key(), got, want, 1e-10)
	}
}

// TestExpandedModel: an expanded model (shared layers, per-position norms and transforms)
// matches the reference, with random transforms and with identity ones.
func TestExpandedModel(t *testing.T) {
	a := tinyArch()
	a.Layers = []arch.Layer{{Heads: 2, MLP: 5}, {Heads: 3, MLP: 7}}
	a.Positions = []arch.Position{
		{Layer: 0}, {Layer: 0, Affine: true, LowRank: 2, HeadMix: true}, {Layer: 1, HeadMix: true}, {Layer: 1, LowRank: 3},
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	images := randomImages(a, 2, 4)
	p := randomParams(t, a, tensor.Float64, 4)
	want := reference(a, p).forward(images, 2, arch.Largest(a))
	assertClose(t, "expanded", forward(t, a, p, arch.Largest(a), images, 2, nn.Fused{}), want, 1e-10)
	assertClose(t, "expanded/composed", forward(t, a, p, arch.Largest(a), images, 2, nn.Composed{}), want, 1e-10)
}

// TestWholeModelGradient checks the gradient of the loss with respect to every weight of a
// tiny model against central finite differences (float64), on a subnet that skips a layer,
// and on an expanded model where positions share layers.
func TestWholeModelGradient(t *testing.T) {
	a := tinyArch()
	ex := tinyArch()
	ex.Layers = []arch.Layer{{Heads: 2, MLP: 5}, {Heads: 1, MLP: 3}}
	ex.Positions = []arch.Position{{Layer: 0, HeadMix: true}, {Layer: 1}, {Layer: 0, Affine: true, LowRank: 2}}
	cases := []struct {
		name string
		a    arch.Arch
		s    arch.Subnet
	}{
		{"subnet", a, arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 2, MLP: 5}, {Layer: 2, Heads: 3, MLP: 12}}}},
		{"expanded", ex, arch.Largest(ex)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := randomParams(t, c.a, tensor.Float64, 5)
			images := randomImages(c.a, 2, 5)
			labels := []int{1, 3}
			g := G.NewGraph()
			net, err := Build(g, c.a, p, c.s, NewPatches(c.a, 2, p.Dtype()), nn.Fused{})
			if err != nil {
				t.Fatal(err)
			}
			if err := Patchify(c.a, images, 2, net.Patches); err != nil {
				t.Fatal(err)
			}
			onehot := tensor.New(tensor.WithShape(2, c.a.Classes), tensor.Of(tensor.Float64))
			for b, l := range labels {
				onehot.Data().([]float64)[b*c.a.Classes+l] = 1
			}
			loss, err := nn.Fused{}.SoftCrossEntropy(net.Logits, G.NodeFromAny(g, onehot, G.WithName("labels")), 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			grads, err := G.Grad(loss, net.Weights...)
			if err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			run := func() float64 {
				m.Reset()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				return values(loss.Value())[0]
			}
			run()
			analytic := make([][]float64, len(grads))
			for i, gn := range grads {
				analytic[i] = values(gn.Value())
			}
			r := rand.New(rand.NewPCG(9, 9))
			central := &fd.Settings{Formula: fd.Central, Step: 1e-6}
			checked := 0
			for i, name := range net.WeightNames {
				w := p.Get(name).Data().([]float64)
				// every element of small tensors, a random sample of larger ones
				idx := r.Perm(len(w))
				if len(idx) > 12 {
					idx = idx[:12]
				}
				for _, j := range idx {
					orig := w[j]
					num := fd.Derivative(func(v float64) float64 { w[j] = v; return run() }, orig, central)
					w[j] = orig
					if math.Abs(num-analytic[i][j]) > 1e-6*(1+math.Abs(num)) {
						t.Errorf("%s[%d]: analytic %.10g, numeric %.10g", name, j, analytic[i][j], num)
					}
					checked++
				}
			}
			if checked < 100 {
				t.Fatalf("only %d elements checked", checked)
			}
		})
	}
}

// TestBuildRejectsBadSubnet: invalid subnets are refused with a message naming the field.
func TestBuildRejectsBadSubnet(t *testing.T) {
	a := tinyArch()
	p := randomParams(t, a, tensor.Float32, 1)
	for _, c := range []struct {
		s    arch.Subnet
		want string
	}{
		{arch.Subnet{}, "depth is 0"},
		{arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 4, MLP: 3}}}, "subnet.layers[0].heads: got 4, layer 0 allows 1..3"},
		{arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 13}}}, "subnet.layers[0].mlp"},
		{arch.Subnet{Layers: []arch.SubLayer{{Layer: 1, Heads: 1, MLP: 3}, {Layer: 1, Heads: 1, MLP: 3}}}, "subnet.layers[1].layer"},
		{arch.Subnet{Layers: []arch.SubLayer{{Layer: 3, Heads: 1, MLP: 3}}}, "subnet.layers[0].layer"},
	} {
		_, err := Build(G.NewGraph(), a, p, c.s, NewPatches(a, 2, p.Dtype()), nn.Fused{})
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("subnet %v: error %v, want it to mention %q", c.s, err, c.want)
		}
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || (len(s) >= len(sub) && index(s, sub) >= 0) }

func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestParamCountMatchesCostModel: the stored tensors hold exactly the parameters the cost
// model counts, for a supernet and an expanded model.
func TestParamCountMatchesCostModel(t *testing.T) {
	a := arch.Default()
	p, err := NewParams(a, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Count(), a.ModelCost().Params; got != want {
		t.Fatalf("default: stored %d params, cost model %d", got, want)
	}
	ex := tinyArch()
	ex.Layers = []arch.Layer{{Heads: 2, MLP: 5}, {Heads: 1, MLP: 3}}
	ex.Positions = []arch.Position{{Layer: 0, HeadMix: true}, {Layer: 1}, {Layer: 0, Affine: true, LowRank: 2}}
	p, err = NewParams(ex, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Count(), ex.ModelCost().Params; got != want {
		t.Fatalf("expanded: stored %d params, cost model %d", got, want)
	}
}

// TestResizeMatchesFreshGraph: one graph resized between subnets computes the same logits
// and gradients, bit for bit, as a graph built for each subnet.
func TestResizeMatchesFreshGraph(t *testing.T) {
	a := tinyArch()
	p := randomParams(t, a, tensor.Float32, 6)
	images := randomImages(a, 3, 6)
	type run struct {
		logits []float64
		grads  [][]float64
	}
	setup := func(s arch.Subnet) (*Net, G.Nodes, G.VM) {
		g := G.NewGraph()
		net, err := Build(g, a, p, s, NewPatches(a, 3, p.Dtype()), nn.Fused{})
		if err != nil {
			t.Fatal(err)
		}
		if err := Patchify(a, images, 3, net.Patches); err != nil {
			t.Fatal(err)
		}
		target := tensor.New(tensor.WithShape(3, a.Classes), tensor.Of(tensor.Float32))
		target.Data().([]float32)[1], target.Data().([]float32)[5], target.Data().([]float32)[8] = 1, 1, 1
		loss, err := nn.Fused{}.SoftCrossEntropy(net.Logits, G.NodeFromAny(g, target), 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, net.Weights...)
		if err != nil {
			t.Fatal(err)
		}
		return net, grads, G.NewTapeMachine(g)
	}
	exec := func(net *Net, grads G.Nodes, vm G.VM) run {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		r := run{logits: values(net.Logits.Value())}
		for _, g := range grads {
			r.grads = append(r.grads, values(g.Value()))
		}
		return r
	}
	same := func(what string, x, y run) {
		t.Helper()
		if fmt.Sprint(x.logits) != fmt.Sprint(y.logits) || fmt.Sprint(x.grads) != fmt.Sprint(y.grads) {
			t.Fatalf("%s: resized graph differs from a fresh one", what)
		}
	}
	big := arch.Largest(a)
	net, grads, vm := setup(big)
	subnets := []arch.Subnet{
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 2}, {Layer: 1, Heads: 3, MLP: 12}, {Layer: 2, Heads: 2, MLP: 7}}},
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 3, MLP: 12}, {Layer: 1, Heads: 1, MLP: 1}, {Layer: 2, Heads: 1, MLP: 3}}},
		big,
	}
	for _, s := range subnets {
		if err := net.Resize(s); err != nil {
			t.Fatal(err)
		}
		fn, fg, fvm := setup(s)
		same(s.Key(), exec(net, grads, vm), exec(fn, fg, fvm))
	}
	if err := net.Resize(arch.Subnet{Layers: big.Layers[:2]}); err == nil {
		t.Fatal("resizing to fewer layers should fail")
	}
}
