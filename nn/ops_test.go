package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	asm "github.com/ofa-go/ofa/nn/internal/kernel"

	"gonum.org/v1/gonum/diff/fd"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opCase is one operation applied to fixed random inputs.
type opCase struct {
	name   string
	shapes [][]int
	// positive marks inputs that must be probability rows (targets).
	positive map[int]bool
	oneHot   map[int]bool
	wrt      []int // inputs whose gradient is checked
	build    func(ops Ops, in []*G.Node) (*G.Node, error)
}

func opCases() []opCase {
	lin := func(s LinearSpec, bias bool) func(Ops, []*G.Node) (*G.Node, error) {
		return func(o Ops, in []*G.Node) (*G.Node, error) {
			if bias {
				return o.Linear(in[0], in[1], in[2], &s)
			}
			return o.Linear(in[0], in[1], nil, &s)
		}
	}
	return []opCase{
		{name: "linear/full", shapes: [][]int{{5, 4}, {3, 4}, {3}}, wrt: []int{0, 1, 2},
			build: lin(LinearSpec{Out: 3, In: 4}, true)},
		{name: "linear/qkv-slice", shapes: [][]int{{6, 3}, {3 * 4, 5}, {12}}, wrt: []int{0, 1, 2},
			build: lin(LinearSpec{Groups: 3, Out: 2, In: 3}, true)},
		{name: "linear/cols-slice-nobias", shapes: [][]int{{4, 2}, {3, 5}}, wrt: []int{0, 1},
			build: lin(LinearSpec{Out: 3, In: 2}, false)},
		{name: "linear/no-input-grad", shapes: [][]int{{4, 3}, {2, 3}, {2}}, wrt: []int{1, 2},
			build: lin(LinearSpec{Out: 2, In: 3, NoInputGrad: true}, true)},
		{name: "layernorm", shapes: [][]int{{4, 6}, {6}, {6}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.LayerNorm(in[0], in[1], in[2], 1e-5) }},
		{name: "gelu", shapes: [][]int{{3, 7}}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.GELU(in[0]) }},
		{name: "attention", shapes: [][]int{{2 * 3, 3 * 2 * 4}}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) {
				return o.Attention(in[0], &AttentionSpec{Tokens: 3, Heads: 2, HeadDim: 4}, nil, nil)
			}},
		{name: "attention/headmix", shapes: [][]int{{2 * 4, 3 * 3 * 2}, {3, 3}, {3, 3}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) {
				return o.Attention(in[0], &AttentionSpec{Tokens: 4, Heads: 3, HeadDim: 2, HeadMix: true}, in[1], in[2])
			}},
		{name: "tokens", shapes: [][]int{{2 * 3, 4}, {4}, {4, 4}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.Tokens(in[0], in[1], in[2], 3) }},
		{name: "classtoken", shapes: [][]int{{3 * 4, 5}}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.ClassToken(in[0], 4) }},
		{name: "affine", shapes: [][]int{{3, 4}, {4}, {4}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.Affine(in[0], in[1], in[2]) }},
		{name: "add", shapes: [][]int{{3, 5}, {3, 5}}, wrt: []int{0, 1},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.Add(in[0], in[1]) }},
		{name: "add/scalar-losses", shapes: [][]int{{2, 3}, {2, 3}}, oneHot: map[int]bool{1: true}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) {
				l1, err := o.SoftCrossEntropy(in[0], in[1], 1, 0.3)
				if err != nil {
					return nil, err
				}
				l2, err := o.SoftCrossEntropy(in[0], in[1], 2, 0.7)
				if err != nil {
					return nil, err
				}
				return o.Add(l1, l2)
			}},
		{name: "gate/heads", shapes: [][]int{{3, 6}, {3}}, wrt: []int{0, 1},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.Gate(in[0], in[1], 2) }},
		{name: "gate/neurons", shapes: [][]int{{4, 5}, {5}}, wrt: []int{0, 1},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.Gate(in[0], in[1], 1) }},
		{name: "softce/labels", shapes: [][]int{{4, 5}, {4, 5}}, oneHot: map[int]bool{1: true}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.SoftCrossEntropy(in[0], in[1], 1, 1) }},
		{name: "softce/distill", shapes: [][]int{{4, 5}, {4, 5}}, positive: map[int]bool{1: true}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.SoftCrossEntropy(in[0], in[1], 2.5, 0.7) }},
		{name: "squarederror", shapes: [][]int{{4, 5}, {4, 5}}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.SquaredError(in[0], in[1], 0.7) }},
		// widths that are multiples of 8 take the float32 assembly kernels (LayerNormRows8,
		// FillRows8 for the bias)
		{name: "layernorm/d16", shapes: [][]int{{5, 16}, {16}, {16}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.LayerNorm(in[0], in[1], in[2], 1e-5) }},
		{name: "linear/qkv-slice-8", shapes: [][]int{{5, 9}, {3 * 12, 10}, {36}}, wrt: []int{0, 1, 2},
			build: lin(LinearSpec{Groups: 3, Out: 8, In: 9}, true)},
	}
}

// inputs makes deterministic random inputs for c in the given dtype.
func (c opCase) inputs(dt tensor.Dtype, seed uint64) []*tensor.Dense {
	r := rand.New(rand.NewPCG(seed, 7))
	var out []*tensor.Dense
	for i, s := range c.shapes {
		n := 1
		for _, d := range s {
			n *= d
		}
		v := make([]float64, n)
		for j := range v {
			v[j] = r.NormFloat64()
		}
		if c.positive[i] || c.oneHot[i] {
			cols := s[len(s)-1]
			for row := 0; row < n/cols; row++ {
				rv := v[row*cols : (row+1)*cols]
				if c.oneHot[i] {
					hot := r.IntN(cols)
					for j := range rv {
						rv[j] = 0
					}
					rv[hot] = 1
					continue
				}
				var sum float64
				for j := range rv {
					rv[j] = math.Exp(rv[j])
					sum += rv[j]
				}
				for j := range rv {
					rv[j] /= sum
				}
			}
		}
		out = append(out, denseOf(dt, s, v))
	}
	return out
}

func denseOf(dt tensor.Dtype, shape []int, v []float64) *tensor.Dense {
	if dt == tensor.Float32 {
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), v...)))
}

func floats(v G.Value) []float64 {
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
	panic(fmt.Sprintf("floats: %T", v.Data()))
}

// harness runs an op with loss = Σ out ⊙ R (or the scalar output itself).
type harness struct {
	g      *G.ExprGraph
	in     []*G.Node
	out    *G.Node
	loss   *G.Node
	grads  G.Nodes
	m      G.VM
	values []*tensor.Dense
}

func newHarness(t testing.TB, ops Ops, c opCase, values []*tensor.Dense, withGrad bool) *harness {
	return newHarnessLoss(t, ops, c, values, withGrad, false)
}

// newHarnessLoss builds the harness; fusedLoss uses a fused Σ out ⊙ R (benchmarks, so
// that only the operation under test differs between implementations).
func newHarnessLoss(t testing.TB, ops Ops, c opCase, values []*tensor.Dense, withGrad, fusedLoss bool) *harness {
	t.Helper()
	h := &harness{g: G.NewGraph(), values: values}
	for i, v := range values {
		h.in = append(h.in, G.NodeFromAny(h.g, v, G.WithName(fmt.Sprintf("in%d", i))))
	}
	out, err := c.build(ops, h.in)
	if err != nil {
		t.Fatalf("%s: build: %v", c.name, err)
	}
	h.out = out
	h.loss = out
	if !out.IsScalar() {
		r := rand.New(rand.NewPCG(99, 1))
		w := make([]float64, out.Shape().TotalSize())
		for i := range w {
			w[i] = r.NormFloat64()
		}
		weights := G.NewConstant(denseOf(out.Dtype(), out.Shape(), w))
		if fusedLoss {
			h.loss, err = apply(&weightedSumKernel{dims: out.Dims()}, out, G.NodeFromAny(h.g, denseOf(out.Dtype(), out.Shape(), w)))
		} else if h.loss, err = G.HadamardProd(out, weights); err == nil {
			h.loss, err = G.Sum(h.loss)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if withGrad {
		var wrt G.Nodes
		for _, i := range c.wrt {
			wrt = append(wrt, h.in[i])
		}
		if h.grads, err = G.Grad(h.loss, wrt...); err != nil {
			t.Fatalf("%s: grad: %v", c.name, err)
		}
	}
	h.m = G.NewTapeMachine(h.g)
	return h
}

func (h *harness) run(t testing.TB) float64 {
	t.Helper()
	h.m.Reset()
	if err := h.m.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	return floats(h.loss.Value())[0]
}

// TestFusedGradientsFiniteDifference checks every fused op's gradient against central
// differences in float64 (gonum's diff/fd).
func TestFusedGradientsFiniteDifference(t *testing.T) {
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) {
			values := c.inputs(tensor.Float64, 1)
			h := newHarness(t, Fused{}, c, values, true)
			h.run(t)
			analytic := make([][]float64, len(c.wrt))
			for k, gn := range h.grads {
				analytic[k] = floats(gn.Value())
			}
			numeric := newHarness(t, Fused{}, c, values, false)
			central := &fd.Settings{Formula: fd.Central, Step: 1e-6}
			for k, i := range c.wrt {
				x := values[i].Data().([]float64)
				for j := range x {
					orig := x[j]
					num := fd.Derivative(func(v float64) float64 { x[j] = v; return numeric.run(t) }, orig, central)
					x[j] = orig
					if !close(num, analytic[k][j], 1e-6) {
						t.Errorf("input %d element %d: analytic %.10g, numeric %.10g", i, j, analytic[k][j], num)
					}
				}
			}
		})
	}
}

func close(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*(1+math.Max(math.Abs(a), math.Abs(b)))
}

// TestFusedMatchesComposed compares values and gradients of the fused ops with the
// composed reference, in float64 and float32.
func TestFusedMatchesComposed(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		tol := 1e-10
		if dt == tensor.Float32 {
			tol = 1e-5
		}
		for _, c := range opCases() {
			t.Run(dt.String()+"/"+c.name, func(t *testing.T) {
				hf := newHarness(t, Fused{}, c, c.inputs(dt, 3), true)
				hc := newHarness(t, Composed{}, c, c.inputs(dt, 3), true)
				hf.run(t)
				hc.run(t)
				compare(t, "output", floats(hf.out.Value()), floats(hc.out.Value()), tol)
				for k := range hf.grads {
					compare(t, fmt.Sprintf("grad of input %d", c.wrt[k]), floats(hf.grads[k].Value()), floats(hc.grads[k].Value()), tol)
				}
				// a second run of the same machines must give the same numbers (buffers are reused)
				before := floats(hf.grads[0].Value())
				hf.run(t)
				compare(t, "rerun", floats(hf.grads[0].Value()), before, 0)
			})
		}
	}
}

func compare(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !close(got[i], want[i], tol) {
			t.Fatalf("%s[%d]: fused %.10g, composed %.10g", what, i, got[i], want[i])
		}
	}
}

// TestHeadMixIdentity: identity mixing matrices leave attention unchanged.
func TestHeadMixIdentity(t *testing.T) {
	c := opCases()[6] // attention without mixing
	vals := c.inputs(tensor.Float64, 5)
	plain := newHarness(t, Fused{}, c, vals, false)
	plain.run(t)
	eye := denseOf(tensor.Float64, []int{2, 2}, []float64{1, 0, 0, 1})
	mixed := opCase{name: "mix", shapes: c.shapes, build: func(o Ops, in []*G.Node) (*G.Node, error) {
		g := in[0].Graph()
		m1 := G.NodeFromAny(g, eye.Clone().(*tensor.Dense), G.WithName("m1"))
		m2 := G.NodeFromAny(g, eye.Clone().(*tensor.Dense), G.WithName("m2"))
		return o.Attention(in[0], &AttentionSpec{Tokens: 3, Heads: 2, HeadDim: 4, HeadMix: true}, m1, m2)
	}}
	hm := newHarness(t, Fused{}, mixed, vals, false)
	hm.run(t)
	compare(t, "identity mix", floats(hm.out.Value()), floats(plain.out.Value()), 0)
}

// TestFastTanh: the float32 approximation stays within a few ulps of math.Tanh.
func TestFastTanh(t *testing.T) {
	for x := -12.0; x <= 12; x += 0.001 {
		got := float64(tanh32(float32(x)))
		want := math.Tanh(float64(float32(x)))
		if math.Abs(got-want) > 4e-7*math.Max(1, math.Abs(want))+1e-9 {
			t.Fatalf("tanh(%g) = %.9g, want %.9g", x, got, want)
		}
	}
}

// TestExp8: the AVX2 exponential stays within 2 ulps of exp rounded to float32 over
// [-87.3, 0] (lengths that are not multiples of 8 included), clamps like expShift32 and
// keeps NaN; softmaxRows matches a float64 softmax to 1e-6 and gives the same bits as
// running it row block by row block.
func TestExp8(t *testing.T) {
	if !asm.Available {
		t.Skip("no AVX2/FMA kernel in this build or on this CPU")
	}
	var xs []float32
	for x := -87.3; x <= 0; x += 0.00071 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, -100, float32(math.Inf(-1)), float32(math.NaN()), -1) // len % 8 != 0
	ys := append([]float32(nil), xs...)
	exp8(ys)
	worst := 0.0
	for i, x := range xs[:len(xs)-5] {
		w := float32(math.Exp(float64(x)))
		ulp := float64(math.Nextafter32(w, float32(math.Inf(1))) - w)
		worst = math.Max(worst, math.Abs(float64(ys[i])-float64(w))/ulp)
	}
	if worst > 2 {
		t.Fatalf("exp8 is off by %.2f ulps", worst)
	}
	sp := ys[len(ys)-5:]
	if sp[0] != 1 || sp[1] < math.Float32frombits(1<<23) || sp[1] > 1.1755e-38 || sp[2] != sp[1] || sp[3] == sp[3] || math.Abs(float64(sp[4])-math.Exp(-1)) > 1e-7 {
		t.Fatalf("exp of 0, -100, -Inf, NaN, -1 = %v", sp)
	}
	t.Logf("largest error %.2f ulps", worst)

	r := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 13, 17
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(4 * r.NormFloat64())
	}
	got := append([]float32(nil), x...)
	softmaxRows(got, rows, cols)
	split := append([]float32(nil), x...)
	softmaxRows(split[:5*cols], 5, cols)
	softmaxRows(split[5*cols:], rows-5, cols)
	for i := 0; i < rows; i++ {
		row := x[i*cols : (i+1)*cols]
		m, s := math.Inf(-1), 0.0
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for j, v := range row {
			want := math.Exp(float64(v)-m) / s
			if math.Abs(float64(got[i*cols+j])-want) > 1e-6 {
				t.Fatalf("softmax row %d col %d = %v, want %v", i, j, got[i*cols+j], want)
			}
			if math.Float32bits(split[i*cols+j]) != math.Float32bits(got[i*cols+j]) {
				t.Fatalf("softmax row %d col %d: %v split, %v whole", i, j, split[i*cols+j], got[i*cols+j])
			}
		}
	}
}

// TestSoftmaxBackwardRows: the four-rows-at-a-time softmax gradient gives the same bits as
// taking the rows one at a time (13 rows: three blocks and a tail), and matches
// P ⊙ (g - Σ P g) computed in float64.
func TestSoftmaxBackwardRows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 13, 17
	p, g := make([]float32, rows*cols), make([]float32, rows*cols)
	for i := range p {
		p[i], g[i] = float32(r.Float64()), float32(r.NormFloat64())
	}
	whole := append([]float32(nil), g...)
	softmaxBackwardRows(p, whole, rows, cols)
	for i := 0; i < rows; i++ {
		one := append([]float32(nil), g[i*cols:(i+1)*cols]...)
		softmaxBackwardRows(p[i*cols:(i+1)*cols], one, 1, cols)
		var dot float64
		for j := 0; j < cols; j++ {
			dot += float64(p[i*cols+j]) * float64(g[i*cols+j])
		}
		for j, v := range one {
			if math.Float32bits(v) != math.Float32bits(whole[i*cols+j]) {
				t.Fatalf("row %d col %d: %v alone, %v in a block", i, j, v, whole[i*cols+j])
			}
			want := float64(p[i*cols+j]) * (float64(g[i*cols+j]) - dot)
			if math.Abs(float64(v)-want) > 1e-5 {
				t.Fatalf("row %d col %d = %v, want %v", i, j, v, want)
			}
		}
	}
}

// TestExpShift32: the softmax's float32 exp stays within 2 ulps of exp rounded to float32
// over [-87.3, 0], clamps below that to about the smallest normal float32, and keeps NaN.
func TestExpShift32(t *testing.T) {
	var xs []float32
	for x := -87.3; x <= 0; x += 0.00071 {
		xs = append(xs, float32(x)+3)
	}
	ys := make([]float32, len(xs))
	sum := expShift32(xs, ys, 3)
	worst, want := 0.0, 0.0
	for i, x := range xs {
		w := float32(math.Exp(float64(x - 3)))
		ulp := float64(math.Nextafter32(w, float32(math.Inf(1))) - w)
		if d := math.Abs(float64(ys[i])-float64(w)) / ulp; d > worst {
			worst = d
		}
		want += float64(ys[i])
	}
	if worst > 2 {
		t.Fatalf("expShift32 is off by %.2f ulps", worst)
	}
	if sum != want {
		t.Fatalf("sum %g, want %g", sum, want)
	}
	special := []float32{0, -100, float32(math.Inf(-1)), float32(math.NaN())}
	out := make([]float32, len(special))
	expShift32(special, out, 0)
	if out[0] != 1 || out[1] < math.Float32frombits(1<<23) || out[1] > 1.1755e-38 || out[2] != out[1] || out[3] == out[3] {
		t.Fatalf("exp of 0, -100, -Inf, NaN = %v", out)
	}
	t.Logf("largest error %.2f ulps", worst)
}

// TestGELUFloat32: both float32 GELU paths (table interpolation everywhere; the AVX2
// kernel where the CPU has it) stay within 2e-6 of the exact function, and of its
// derivative within 2e-6 (table) and 5e-6 (kernel),
// including at and beyond ±10 and at lengths that are not multiples of 8; NaN propagates;
// and the kernel's results do not depend on how the work is split across goroutines.
func TestGELUFloat32(t *testing.T) {
	var xs []float32
	for x := -12.0; x <= 12; x += 0.00037 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 30, -30, 1e6, -1e6, 1e30, -1e30) // len(xs) % 8 != 0
	type path struct {
		name string
		fwd  func(par int, x, y []float32)
		bwd  func(par int, x, dy, dx []float32)
		dTol float64 // the derivative's absolute error bound
	}
	paths := []path{{"table", geluTableForward, geluTableBackward, 2e-6}}
	if asm.Available {
		// computed in float32 from tanh, which is within an ulp of ±1 near saturation
		paths = append(paths, path{"avx2", geluForward32, geluBackward32, 5e-6})
	} else {
		t.Log("no AVX2 kernel in this build or on this CPU: only the table is tested")
	}
	ones := make([]float32, len(xs))
	for i := range ones {
		ones[i] = 1
	}
	for _, p := range paths {
		y, dx := make([]float32, len(xs)), make([]float32, len(xs))
		p.fwd(0, xs, y)
		p.bwd(0, xs, ones, dx)
		for i, x := range xs {
			v := float64(x)
			th := math.Tanh(geluC * (v + geluA*v*v*v))
			f := 0.5 * v * (1 + th)
			df := 0.5*(1+th) + 0.5*v*(1-th*th)*geluC*(1+3*geluA*v*v)
			if math.IsNaN(th) { // |v| so large that v³ overflows: the limits
				f, df = math.Max(v, 0), 0
				if v > 0 {
					df = 1
				}
			}
			if math.Abs(float64(y[i])-f) > 2e-6*math.Max(1, math.Abs(f)) || math.Abs(float64(dx[i])-df) > p.dTol {
				t.Fatalf("%s: x=%g: gelu %g (want %g), derivative %g (want %g)", p.name, x, y[i], f, dx[i], df)
			}
		}
		nan := []float32{float32(math.NaN()), 1, 2, 3, 4, 5, 6, 7, float32(math.NaN())}
		ny, nd := make([]float32, len(nan)), make([]float32, len(nan))
		p.fwd(0, nan, ny)
		p.bwd(0, nan, ones[:len(nan)], nd)
		for _, i := range []int{0, 8} {
			if !math.IsNaN(float64(ny[i])) || !math.IsNaN(float64(nd[i])) {
				t.Fatalf("%s: GELU(NaN) = %v, derivative %v: want NaN", p.name, ny[i], nd[i])
			}
		}
		// one goroutine against many: the same bits
		y1, d1 := make([]float32, len(xs)), make([]float32, len(xs))
		p.fwd(1, xs, y1)
		p.bwd(1, xs, ones, d1)
		for i := range xs {
			if math.Float32bits(y1[i]) != math.Float32bits(y[i]) || math.Float32bits(d1[i]) != math.Float32bits(dx[i]) {
				t.Fatalf("%s: x=%g: one goroutine gives %v/%v, several %v/%v", p.name, xs[i], y1[i], d1[i], y[i], dx[i])
			}
		}
	}
}

// weightedSumKernel is Σ x ⊙ w (test and benchmark loss).
type weightedSumKernel struct{ dims int }

func (k *weightedSumKernel) name() string     { return "WeightedSum" }
func (k *weightedSumKernel) inputDims() []int { return []int{k.dims, k.dims} }
func (k *weightedSumKernel) outDims() int     { return 0 }
func (k *weightedSumKernel) diffWRT() []bool  { return []bool{true, false} }
func (k *weightedSumKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (k *weightedSumKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		x, w := data[float32](in[0]), data[float32](in[1])
		var s float64
		for i, v := range x {
			s += float64(v * w[i])
		}
		data[float32](out)[0] = float32(s)
		return nil
	}
	x, w := data[float64](in[0]), data[float64](in[1])
	var s float64
	for i, v := range x {
		s += v * w[i]
	}
	data[float64](out)[0] = s
	return nil
}
func (k *weightedSumKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		g, w, dx := data[float32](dOut)[0], data[float32](in[1]), data[float32](grads[0])
		for i, v := range w {
			dx[i] = g * v
		}
		return nil
	}
	g, w, dx := data[float64](dOut)[0], data[float64](in[1]), data[float64](grads[0])
	for i, v := range w {
		dx[i] = g * v
	}
	return nil
}

// TestLayerNormFloat32: the AVX2 LayerNorm forward pass (float32 sums) against the
// portable one (float64 sums), on widths that are multiples of 8, rows of every scale, a
// constant row (variance 0: 1/sqrt(eps)) and a row far from zero.
func TestLayerNormFloat32(t *testing.T) {
	if !asm.Available {
		t.Skip("no AVX2 kernel in this build or on this CPU")
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, d := range []int{8, 64, 72, 256} {
		const rows = 6
		x, y, y32 := make([]float32, rows*d), make([]float32, rows*d), make([]float32, rows*d)
		gamma, beta := make([]float32, d), make([]float32, d)
		for j := range gamma {
			gamma[j], beta[j] = float32(1+rng.NormFloat64()/4), float32(rng.NormFloat64()/4)
		}
		for r := 0; r < rows; r++ {
			scale, offset := math.Pow(10, float64(r-3)), 0.0
			if r == 4 {
				scale, offset = 0, 3 // constant row
			}
			if r == 5 {
				scale, offset = 1, 100
			}
			for j := 0; j < d; j++ {
				x[r*d+j] = float32(offset + scale*rng.NormFloat64())
			}
		}
		mean, rstd := make([]float64, rows), make([]float64, rows)
		mean32, rstd32 := make([]float32, rows), make([]float32, rows)
		layerNormRows(x, y, gamma, beta, d, 1e-5, mean, rstd)
		layerNormRows32(x, y32, gamma, beta, d, 1e-5, mean32, rstd32)
		for r := 0; r < rows; r++ {
			if !close(float64(mean32[r]), mean[r], 1e-6) || !close(float64(rstd32[r]), rstd[r], 1e-4) {
				t.Errorf("d %d row %d: mean %g rstd %g, want %g %g", d, r, mean32[r], rstd32[r], mean[r], rstd[r])
			}
			for j := 0; j < d; j++ {
				if i := r*d + j; math.Abs(float64(y32[i]-y[i])) > 2e-4*(1+math.Abs(float64(y[i]))) {
					t.Fatalf("d %d row %d col %d: %g, want %g", d, r, j, y32[i], y[i])
				}
			}
		}
	}
}

// TestLayerNormBackwardFloat32: the AVX2 LayerNorm backward pass (float32, after the AVX2
// forward pass) against the portable one in float64, on widths that are multiples of 8,
// enough rows for both goroutines, and inputs of several scales.
func TestLayerNormBackwardFloat32(t *testing.T) {
	if !asm.Available {
		t.Skip("no AVX2 kernel in this build or on this CPU")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for _, d := range []int{8, 64, 72} {
		const rows = 300
		mk := func(dt tensor.Dtype, shape ...int) *tensor.Dense {
			return tensor.New(tensor.WithShape(shape...), tensor.Of(dt))
		}
		in32 := []*tensor.Dense{mk(tensor.Float32, rows, d), mk(tensor.Float32, d), mk(tensor.Float32, d)}
		in64 := []*tensor.Dense{mk(tensor.Float64, rows, d), mk(tensor.Float64, d), mk(tensor.Float64, d)}
		dy32, dy64 := mk(tensor.Float32, rows, d), mk(tensor.Float64, rows, d)
		fill := func(a *tensor.Dense, b *tensor.Dense, scale func(i int) float64) {
			av, bv := a.Data().([]float32), b.Data().([]float64)
			for i := range av {
				av[i] = float32(scale(i) * rng.NormFloat64())
				bv[i] = float64(av[i])
			}
		}
		fill(in32[0], in64[0], func(i int) float64 { return math.Pow(10, float64((i/d)%5-2)) })
		fill(in32[1], in64[1], func(int) float64 { return 1 })
		fill(in32[2], in64[2], func(int) float64 { return 0.3 })
		fill(dy32, dy64, func(int) float64 { return 1 })
		g32 := []*tensor.Dense{mk(tensor.Float32, rows, d), mk(tensor.Float32, d), mk(tensor.Float32, d)}
		g64 := []*tensor.Dense{mk(tensor.Float64, rows, d), mk(tensor.Float64, d), mk(tensor.Float64, d)}
		k32, k64 := &layerNormKernel{eps: 1e-5, par: 2}, &layerNormKernel{eps: 1e-5, par: 2}
		out32, out64 := mk(tensor.Float32, rows, d), mk(tensor.Float64, rows, d)
		if err := k32.forward(in32, out32); err != nil {
			t.Fatal(err)
		}
		if err := k64.forward(in64, out64); err != nil {
			t.Fatal(err)
		}
		if len(k32.mean32) != rows {
			t.Fatal("the float32 forward pass did not take the AVX2 kernel")
		}
		for i := range g32 { // stale values must be overwritten
			for j := range g32[i].Data().([]float32) {
				g32[i].Data().([]float32)[j] = 7
			}
		}
		if err := k32.backward(in32, out32, dy32, g32); err != nil {
			t.Fatal(err)
		}
		if err := k64.backward(in64, out64, dy64, g64); err != nil {
			t.Fatal(err)
		}
		for i, what := range []string{"dx", "dgamma", "dbeta"} {
			got, want := g32[i].Data().([]float32), g64[i].Data().([]float64)
			scale := 0.0
			for _, v := range want {
				scale = math.Max(scale, math.Abs(v))
			}
			for j := range got {
				if math.Abs(float64(got[j])-want[j]) > 1e-4*scale {
					t.Fatalf("d %d %s[%d] = %g, want %g (largest %g)", d, what, j, got[j], want[j], scale)
				}
			}
		}
	}
}

// TestAddFillFloat32: the AVX2 sum (with a tail of len%8 values) and bias broadcast are
// exact.
func TestAddFillFloat32(t *testing.T) {
	if !asm.Available {
		t.Skip("no AVX2 kernel in this build or on this CPU")
	}
	for _, n := range []int{8, 13, 40, 167} {
		a, b, y := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(i)*0.37, float32(n-i)*1.13
		}
		addInto(y, a, b)
		for i := range y {
			if y[i] != a[i]+b[i] {
				t.Fatalf("n %d: y[%d] = %g, want %g", n, i, y[i], a[i]+b[i])
			}
		}
	}
	const rows, ld, o = 5, 30, 16
	bias := make([]float32, o)
	for j := range bias {
		bias[j] = float32(j) + 0.5
	}
	y := make([]float32, rows*ld)
	asm.FillRows8(unsafe.Pointer(&bias[0]), unsafe.Pointer(&y[3]), o, rows, ld)
	for r := 0; r < rows; r++ {
		for j := 0; j < ld; j++ {
			want := float32(0)
			if j >= 3 && j < 3+o {
				want = bias[j-3]
			}
			if y[r*ld+j] != want {
				t.Fatalf("row %d col %d: %g, want %g", r, j, y[r*ld+j], want)
			}
		}
	}
}

// TestSumRowsKernel: the bias gradient's column sums through the AVX kernel give the same
// bits as sumRows' order written out here (four rows as (r0 + r1) + (r2 + r3), then one at
// a time), for row counts with and without a tail, 8- and 32-column blocks and a row
// stride wider than the rows.
func TestSumRowsKernel(t *testing.T) {
	if !asm.Available {
		t.Skip("no AVX2/FMA kernel in this build or on this CPU")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, o := range []int{8, 24, 32, 40, 72} {
		for _, n := range []int{1, 3, 4, 5, 9, 17} {
			ld := o + 5
			src := make([]float32, n*ld)
			for i := range src {
				src[i] = float32(r.NormFloat64())
			}
			dst, want := make([]float32, o), make([]float32, o)
			for j := range dst {
				dst[j] = float32(r.NormFloat64())
				want[j] = dst[j]
			}
			sumRows(dst, src, n, ld)
			for j := range want {
				k := 0
				for ; k+4 <= n; k += 4 {
					want[j] += (src[k*ld+j] + src[(k+1)*ld+j]) + (src[(k+2)*ld+j] + src[(k+3)*ld+j])
				}
				for ; k < n; k++ {
					want[j] += src[k*ld+j]
				}
				if math.Float32bits(dst[j]) != math.Float32bits(want[j]) {
					t.Fatalf("o %d, n %d: column %d = %v, want %v", o, n, j, dst[j], want[j])
				}
			}
		}
	}
}
