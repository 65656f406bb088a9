package supernet

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"gorgonia.org/tensor"
)

// layoutArch has layers of different sizes, so that a wrong stride shows.
func layoutArch() arch.Arch {
	a := tinyArch()
	a.Layers = []arch.Layer{{Heads: 3, MLP: 12}, {Heads: 2, MLP: 5}, {Heads: 1, MLP: 1}}
	return a
}

// TestNamesMatchTheFormat: the names are the checkpoint's (docs/FORMAT.md); changing one
// breaks every stored model.
func TestNamesMatchTheFormat(t *testing.T) {
	l, p := Layer(3), Position(12)
	for _, c := range [][2]string{
		{l.Prefix, "blocks.3."}, {l.Norm1Weight, "blocks.3.norm1.weight"}, {l.Norm2Bias, "blocks.3.norm2.bias"},
		{l.QKVWeight, "blocks.3.attn.qkv.weight"}, {l.QKVBias, "blocks.3.attn.qkv.bias"},
		{l.ProjWeight, "blocks.3.attn.proj.weight"}, {l.ProjBias, "blocks.3.attn.proj.bias"},
		{l.FC1Weight, "blocks.3.mlp.fc1.weight"}, {l.FC1Bias, "blocks.3.mlp.fc1.bias"},
		{l.FC2Weight, "blocks.3.mlp.fc2.weight"}, {l.FC2Bias, "blocks.3.mlp.fc2.bias"},
		{p.Prefix, "positions.12."}, {p.Norm1Bias, "positions.12.norm1.bias"},
		{p.AffineInScale, "positions.12.affine.in_scale"}, {p.AffineMLPShift, "positions.12.affine.mlp_shift"},
		{p.LowRankDown, "positions.12.lowrank.down"}, {p.HeadMixPost, "positions.12.headmix.post"},
	} {
		if c[0] != c[1] {
			t.Errorf("name %q, want %q", c[0], c[1])
		}
	}
	// every tensor of an expanded model is named by the helpers or is a stem tensor
	a := layoutArch()
	a.Positions = []arch.Position{{Layer: 0}, {Layer: 1, Affine: true, LowRank: 2, HeadMix: true}, {Layer: 2}, {Layer: 0, Affine: true}}
	known := map[string]bool{}
	for _, n := range stemNames {
		known[n] = true
	}
	for i := range a.Layers {
		n := Layer(i)
		for _, s := range []string{n.QKVWeight, n.QKVBias, n.ProjWeight, n.ProjBias, n.FC1Weight, n.FC1Bias, n.FC2Weight, n.FC2Bias} {
			known[s] = true
		}
	}
	for i := range a.Positions {
		n := Position(i)
		for _, s := range []string{n.Norm1Weight, n.Norm1Bias, n.Norm2Weight, n.Norm2Bias, n.AffineInScale, n.AffineInShift,
			n.AffineAttnScale, n.AffineAttnShift, n.AffineMLPScale, n.AffineMLPShift, n.LowRankDown, n.LowRankUp, n.HeadMixPre, n.HeadMixPost} {
			known[s] = true
		}
	}
	for _, s := range Spec(a) {
		if !known[s.Name] {
			t.Errorf("tensor %q is not named by the layout helpers", s.Name)
		}
	}
}

// TestSliceComputesTheSubnet: the sliced model's largest subnet computes what the model
// computes for the subnet, its tensors are the documented parts of the original ones, and
// it shares no memory with the original.
func TestSliceComputesTheSubnet(t *testing.T) {
	a := layoutArch()
	p := randomParams(t, a, tensor.Float64, 6)
	orig := p.Clone()
	images := randomImages(a, 2, 6)
	d, dh := a.Dim, a.HeadDim
	for _, s := range []arch.Subnet{
		arch.Largest(a),
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 2, MLP: 5}, {Layer: 2, Heads: 1, MLP: 1}}},
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 12}, {Layer: 1, Heads: 1, MLP: 3}}},
		{Layers: []arch.SubLayer{{Layer: 1, Heads: 2, MLP: 1}}},
	} {
		sa, sp, err := Slice(a, p, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(sa.Layers) != len(s.Layers) || sp.Count() != sa.ModelCost().Params {
			t.Fatalf("%s: sliced to %+v with %d parameters", s.Key(), sa.Layers, sp.Count())
		}
		// the plain-loop reference sums in the same order on both: equal bit for bit
		want := reference(a, p).forward(images, 2, s)
		got := reference(sa, sp).forward(images, 2, arch.Largest(sa))
		assertClose(t, s.Key()+" reference", got, want, 0)
		assertClose(t, s.Key()+" graph", forward(t, sa, sp, arch.Largest(sa), images, 2, nn.Fused{}), forward(t, a, p, s, images, 2, nn.Fused{}), 1e-12)
		for i, l := range s.Layers {
			src, dst := Layer(l.Layer), Layer(i)
			fhd, hd, fm, m := a.Layers[l.Layer].Heads*dh, l.Heads*dh, a.Layers[l.Layer].MLP, l.MLP
			qkv, sqkv := p.Get(src.QKVWeight).Data().([]float64), sp.Get(dst.QKVWeight).Data().([]float64)
			proj, sproj := p.Get(src.ProjWeight).Data().([]float64), sp.Get(dst.ProjWeight).Data().([]float64)
			fc2, sfc2 := p.Get(src.FC2Weight).Data().([]float64), sp.Get(dst.FC2Weight).Data().([]float64)
			for g := 0; g < 3; g++ {
				for r := 0; r < hd; r++ {
					for c := 0; c < d; c++ {
						if sqkv[(g*hd+r)*d+c] != qkv[(g*fhd+r)*d+c] {
							t.Fatalf("%s layer %d: qkv group %d row %d column %d", s.Key(), i, g, r, c)
						}
					}
				}
			}
			for o := 0; o < d; o++ {
				for c := 0; c < hd; c++ {
					if sproj[o*hd+c] != proj[o*fhd+c] {
						t.Fatalf("%s layer %d: proj row %d column %d", s.Key(), i, o, c)
					}
				}
				for j := 0; j < m; j++ {
					if sfc2[o*m+j] != fc2[o*fm+j] {
						t.Fatalf("%s layer %d: fc2 row %d column %d", s.Key(), i, o, j)
					}
				}
			}
		}
		for _, n := range sp.Names() {
			sp.Get(n).Data().([]float64)[0] = math.NaN()
		}
		assertSame(t, "original after slicing", p, orig)
	}
	if _, _, err := Slice(a, p, arch.Subnet{Layers: []arch.SubLayer{{Layer: 1, Heads: 3, MLP: 1}}}); err == nil || !strings.Contains(err.Error(), "heads") {
		t.Fatalf("too many heads: %v", err)
	}
	if _, _, err := Slice(a, randomParams(t, tinyArch(), tensor.Float64, 1), arch.Largest(a)); !errors.Is(err, ErrParams) {
		t.Fatalf("weights of another architecture: %v", err)
	}
}

// assertSame fails unless p and q hold the same tensors bit for bit.
func assertSame(t *testing.T, what string, p, q *Params) {
	t.Helper()
	if !slices.Equal(p.Names(), q.Names()) {
		t.Fatalf("%s: names %v, want %v", what, p.Names(), q.Names())
	}
	for _, n := range p.Names() {
		for i := 0; i < p.Get(n).Shape().TotalSize(); i++ {
			if x, y := at(p.Get(n), i), at(q.Get(n), i); math.Float64bits(x) != math.Float64bits(y) {
				t.Fatalf("%s: %s[%d] is %v, want %v", what, n, i, x, y)
			}
		}
	}
}

func inverse(perm []int) []int {
	inv := make([]int, len(perm))
	for i, j := range perm {
		inv[j] = i
	}
	return inv
}

// TestPermuteThenInverseIsIdentity: permuting units moves each head's and neuron's parts to
// the new position, changes no output, and the inverse permutation restores every tensor
// and every extra slice bit for bit.
func TestPermuteThenInverseIsIdentity(t *testing.T) {
	a := layoutArch()
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		p := randomParams(t, a, dt, 7)
		orig := p.Clone()
		images := randomImages(a, 2, 7)
		before := forward(t, a, p, arch.Largest(a), images, 2, nn.Fused{})
		r := rand.New(rand.NewPCG(7, uint64(dt.Size())))
		heads, neurons := make([][]int, len(a.Layers)), make([][]int, len(a.Layers))
		for l, ly := range a.Layers {
			heads[l], neurons[l] = r.Perm(ly.Heads), r.Perm(ly.MLP)
		}
		heads[0], neurons[0] = []int{2, 0, 1}, []int{11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
		// an optimizer's moments, one value per element, keyed by weight name
		moments := map[string][]float32{}
		for _, n := range p.Names() {
			moments[n] = append([]float32(nil), p.Float32(n)...)
		}
		momentsBefore := map[string][]float32{}
		for n, v := range moments {
			momentsBefore[n] = append([]float32(nil), v...)
		}
		if err := Permute(a, p, heads, neurons, moments); err != nil {
			t.Fatal(err)
		}
		tol := 1e-12
		if dt == tensor.Float32 {
			tol = 1e-5
		}
		assertClose(t, "permuted outputs", forward(t, a, p, arch.Largest(a), images, 2, nn.Fused{}), before, tol)
		// head 2 of layer 0 is now head 0: its value rows and projection columns moved
		d, dh, hd := a.Dim, a.HeadDim, a.Layers[0].Heads*a.HeadDim
		n := Layer(0)
		for j := 0; j < dh*d; j++ {
			if got, want := at(p.Get(n.QKVWeight), 2*hd*d+j), at(orig.Get(n.QKVWeight), 2*hd*d+2*dh*d+j); got != want {
				t.Fatalf("%v: value row element %d of the moved head: %v, want %v", dt, j, got, want)
			}
		}
		for o := 0; o < d; o++ {
			if got, want := at(p.Get(n.ProjWeight), o*hd), at(orig.Get(n.ProjWeight), o*hd+2*dh); got != want {
				t.Fatalf("%v: projection row %d of the moved head: %v, want %v", dt, o, got, want)
			}
			// neuron 11 is now neuron 0: its fc2 column
			if got, want := at(p.Get(n.FC2Weight), o*12), at(orig.Get(n.FC2Weight), o*12+11); got != want {
				t.Fatalf("%v: fc2 row %d of the moved neuron: %v, want %v", dt, o, got, want)
			}
		}
		for _, name := range p.Names() {
			if !slices.Equal(moments[name], p.Float32(name)) {
				t.Fatalf("%v: moments of %s did not follow the weights", dt, name)
			}
		}
		inv := func(ps [][]int) [][]int {
			out := make([][]int, len(ps))
			for i, q := range ps {
				out[i] = inverse(q)
			}
			return out
		}
		if err := Permute(a, p, inv(heads), inv(neurons), moments); err != nil {
			t.Fatal(err)
		}
		assertSame(t, dt.String()+" after the inverse", p, orig)
		for name, v := range moments {
			if !slices.Equal(v, momentsBefore[name]) {
				t.Fatalf("%v: moments of %s not restored", dt, name)
			}
		}
	}
}

// TestPermuteRejectsBadOrders: orders that are not permutations and extra slices of the
// wrong length are refused before anything moves.
func TestPermuteRejectsBadOrders(t *testing.T) {
	a := layoutArch()
	p := randomParams(t, a, tensor.Float32, 8)
	orig := p.Clone()
	ids := func() ([][]int, [][]int) {
		h, m := make([][]int, len(a.Layers)), make([][]int, len(a.Layers))
		for l, ly := range a.Layers {
			h[l], m[l] = identity(ly.Heads), identity(ly.MLP)
		}
		return h, m
	}
	for _, c := range []struct {
		name  string
		mut   func(h, m [][]int) ([][]int, [][]int)
		extra map[string][]float32
		want  error
	}{
		{"repeated head", func(h, m [][]int) ([][]int, [][]int) { h[0] = []int{0, 0, 1}; return h, m }, nil, ErrPermutation},
		{"out of range", func(h, m [][]int) ([][]int, [][]int) { m[1] = []int{0, 1, 2, 3, 5}; return h, m }, nil, ErrPermutation},
		{"short", func(h, m [][]int) ([][]int, [][]int) { m[0] = m[0][:3]; return h, m }, nil, ErrPermutation},
		{"missing layer", func(h, m [][]int) ([][]int, [][]int) { return h[:2], m }, nil, ErrPermutation},
		{"short moments", func(h, m [][]int) ([][]int, [][]int) { h[0] = []int{1, 2, 0}; return h, m },
			map[string][]float32{Layer(2).FC1Bias: make([]float32, 2)}, ErrParams},
	} {
		h, m := c.mut(ids())
		var extra []map[string][]float32
		if c.extra != nil {
			extra = append(extra, c.extra)
		}
		if err := Permute(a, p, h, m, extra...); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		assertSame(t, c.name, p, orig)
	}
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// TestExpandIsIdentity: a freshly expanded model computes bit for bit what the original
// computes, its positions' norms are their layers', and the original is untouched.
func TestExpandIsIdentity(t *testing.T) {
	a := layoutArch()
	p := randomParams(t, a, tensor.Float64, 9)
	orig := p.Clone()
	images := randomImages(a, 2, 9)
	want := forward(t, a, p, arch.Largest(a), images, 2, nn.Fused{})
	ea := a.Clone()
	ea.Positions = []arch.Position{{Layer: 0}, {Layer: 0, Affine: true, LowRank: 2, HeadMix: true}, {Layer: 1, Affine: true},
		{Layer: 2, HeadMix: true}, {Layer: 1, Affine: true, LowRank: 3}}
	ep, err := Expand(a, p, ea)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "expanded", forward(t, ea, ep, arch.Largest(ea), images, 2, nn.Fused{}), want, 0)
	for i, pos := range ea.Positions {
		if got, want := ep.Float32(Position(i).Norm2Weight), p.Float32(Layer(pos.Layer).Norm2Weight); !slices.Equal(got, want) {
			t.Fatalf("position %d: norm2 is not its layer's", i)
		}
	}
	if g := ep.Get(Position(2).AffineAttnScale).Data().([]float64); g[0] != 1 {
		t.Fatalf("first use of layer 1 has its attention gate at %v, want 1", g[0])
	}
	if g := ep.Get(Position(4).AffineMLPScale).Data().([]float64); g[0] != 0 {
		t.Fatalf("reuse of layer 1 has its MLP gate at %v, want 0", g[0])
	}
	ep.Get(Layer(0).QKVWeight).Data().([]float64)[0] = math.NaN()
	assertSame(t, "original after expanding", p, orig)

	for _, c := range []struct {
		name string
		mut  func(*arch.Arch)
		want string
	}{
		{"reuse without gates", func(e *arch.Arch) { e.Positions[1].Affine = false }, "without the affine maps"},
		{"other sizes", func(e *arch.Arch) { e.Layers[2].MLP = 2 }, "differ"},
		{"no positions", func(e *arch.Arch) { e.Positions = nil }, "no positions"},
	} {
		e := ea.Clone()
		c.mut(&e)
		if _, err := Expand(a, p, e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
