package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Composed builds every operation from gorgonia's stock operations. It is slow and
// allocation-heavy; it exists as an independent reference for the fused kernels.
type Composed struct{}

// composer carries the first error through a chain of gorgonia calls.
type composer struct{ err error }

func (c *composer) n(n *G.Node, err error) *G.Node {
	if c.err == nil && err != nil {
		c.err = err
	}
	return n
}

// constant returns a scalar constant of like's dtype.
func constant(like *G.Node, v float64) *G.Node {
	if like.Dtype() == tensor.Float32 {
		return G.NewConstant(float32(v))
	}
	return G.NewConstant(v)
}

// row reshapes a vector (D) to (1, D) for broadcasting over rows.
func (c *composer) row(v *G.Node) *G.Node {
	if c.err != nil {
		return nil
	}
	return c.n(G.Reshape(v, tensor.Shape{1, v.Shape()[0]}))
}

// Linear implements Ops.
func (Composed) Linear(x, w, b *G.Node, sp *LinearSpec) (*G.Node, error) {
	s := *sp
	c := &composer{}
	g := s.groups()
	f := w.Shape()[0] / g
	var rows, biases G.Nodes
	for gi := 0; gi < g; gi++ {
		rows = append(rows, c.n(G.Slice(w, G.S(gi*f, gi*f+s.Out), G.S(0, s.In)))) // (Out, In)
		if b != nil {
			biases = append(biases, c.n(G.Slice(b, G.S(gi*f, gi*f+s.Out)))) // (Out)
		}
	}
	wsub, bsub := rows[0], (*G.Node)(nil)
	if b != nil {
		bsub = biases[0]
	}
	if g > 1 && c.err == nil {
		wsub = c.n(G.Concat(0, rows...)) // (g*Out, In)
		if b != nil {
			bsub = c.n(G.Concat(0, biases...))
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	wt := c.n(G.Transpose(wsub))  // (In, g*Out)
	y := c.n(G.Mul(x, wt))        // (N, In) x (In, g*Out) -> (N, g*Out)
	if b != nil && c.err == nil { // + (1, g*Out) broadcast over rows
		y = c.n(G.BroadcastAdd(y, c.row(bsub), nil, []byte{0}))
	}
	return y, c.err
}

// LayerNorm implements Ops.
func (Composed) LayerNorm(x, gamma, beta *G.Node, eps float64) (*G.Node, error) {
	c := &composer{}
	n := x.Shape()[0]
	mean := c.n(G.Mean(x, 1)) // (N)
	if c.err != nil {
		return nil, c.err
	}
	mean = c.n(G.Reshape(mean, tensor.Shape{n, 1}))
	xc := c.n(G.BroadcastSub(x, mean, nil, []byte{1})) // (N, D)
	if c.err != nil {
		return nil, c.err
	}
	v := c.n(G.Mean(c.n(G.Square(xc)), 1)) // (N)
	if c.err != nil {
		return nil, c.err
	}
	// Pow(v+eps, -1/2): gorgonia's InverseSqrt has a wrong gradient in v0.9.18.
	rstd := c.n(G.Pow(c.n(G.Add(v, constant(v, eps))), constant(v, -0.5)))
	if c.err != nil {
		return nil, c.err
	}
	rstd = c.n(G.Reshape(rstd, tensor.Shape{n, 1}))
	xhat := c.n(G.BroadcastHadamardProd(xc, rstd, nil, []byte{1}))
	if c.err != nil {
		return nil, c.err
	}
	y := c.n(G.BroadcastHadamardProd(xhat, c.row(gamma), nil, []byte{0}))
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.BroadcastAdd(y, c.row(beta), nil, []byte{0})), c.err
}

// GELU implements Ops.
func (Composed) GELU(x *G.Node) (*G.Node, error) {
	c := &composer{}
	inner := c.n(G.Add(x, c.n(G.Mul(constant(x, geluA), c.n(G.Cube(x))))))
	if c.err != nil {
		return nil, c.err
	}
	t := c.n(G.Tanh(c.n(G.Mul(constant(x, geluC), inner))))
	if c.err != nil {
		return nil, c.err
	}
	half := c.n(G.Mul(constant(x, 0.5), x))
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.HadamardProd(half, c.n(G.Add(t, constant(x, 1))))), c.err
}

// Attention implements Ops.
func (Composed) Attention(qkv *G.Node, sp *AttentionSpec, mixPre, mixPost *G.Node) (*G.Node, error) {
	s := *sp
	if err := s.check(mixPre, mixPost); err != nil {
		return nil, err
	}
	c := &composer{}
	t, h, dh := s.Tokens, s.Heads, s.HeadDim
	hd := h * dh
	b := qkv.Shape()[0] / t
	part := func(i int) *G.Node {
		p := c.n(G.Slice(qkv, nil, G.S(i*hd, (i+1)*hd))) // (B*T, hd)
		if c.err != nil {
			return nil
		}
		p = c.n(G.Reshape(p, tensor.Shape{b, t, h, dh}))
		if c.err != nil {
			return nil
		}
		p = c.n(G.Transpose(p, 0, 2, 1, 3)) // (B, h, T, dh)
		if c.err != nil {
			return nil
		}
		return c.n(G.Reshape(p, tensor.Shape{b * h, t, dh}))
	}
	q, k, v := part(0), part(1), part(2)
	if c.err != nil {
		return nil, c.err
	}
	sc := c.n(G.BatchedMatMul(q, k, false, true)) // (B*h, T, T)
	if c.err != nil {
		return nil, c.err
	}
	sc = c.n(G.Mul(sc, constant(sc, s.scale())))
	if s.HeadMix {
		sc = c.mixHeads(mixPre, sc, b, h, t)
	}
	if c.err != nil {
		return nil, c.err
	}
	p := c.n(G.SoftMax(sc)) // over the last axis
	if s.HeadMix {
		p = c.mixHeads(mixPost, p, b, h, t)
	}
	if c.err != nil {
		return nil, c.err
	}
	o := c.n(G.BatchedMatMul(p, v)) // (B*h, T, dh)
	if c.err != nil {
		return nil, c.err
	}
	o = c.n(G.Reshape(o, tensor.Shape{b, h, t, dh}))
	if c.err != nil {
		return nil, c.err
	}
	o = c.n(G.Transpose(o, 0, 2, 1, 3)) // (B, T, h, dh)
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.Reshape(o, tensor.Shape{b * t, hd})), c.err
}

// mixHeads computes out_i = Σ_j m[i,j] x_j over heads for x (B*h, T, T).
func (c *composer) mixHeads(m, x *G.Node, b, h, t int) *G.Node {
	if c.err != nil {
		return nil
	}
	y := c.n(G.Reshape(x, tensor.Shape{b, h, t * t}))
	if c.err != nil {
		return nil
	}
	y = c.n(G.Transpose(y, 1, 0, 2)) // (h, B, T*T)
	if c.err != nil {
		return nil
	}
	y = c.n(G.Reshape(y, tensor.Shape{h, b * t * t}))
	if c.err != nil {
		return nil
	}
	y = c.n(G.Mul(m, y)) // (h, h) x (h, B*T*T)
	if c.err != nil {
		return nil
	}
	y = c.n(G.Reshape(y, tensor.Shape{h, b, t * t}))
	if c.err != nil {
		return nil
	}
	y = c.n(G.Transpose(y, 1, 0, 2)) // (B, h, T*T)
	if c.err != nil {
		return nil
	}
	return c.n(G.Reshape(y, tensor.Shape{b * h, t, t}))
}

// Tokens implements Ops.
func (Composed) Tokens(patches, cls, pos *G.Node, p int) (*G.Node, error) {
	c := &composer{}
	d := patches.Shape()[1]
	b := patches.Shape()[0] / p
	x := c.n(G.Reshape(patches, tensor.Shape{b, p, d}))
	cl := c.n(G.Reshape(cls, tensor.Shape{1, 1, d}))
	if c.err != nil {
		return nil, c.err
	}
	zeros := G.NodeFromAny(cls.Graph(), tensor.New(tensor.WithShape(b, 1, d), tensor.Of(cls.Dtype())))
	cl = c.n(G.BroadcastAdd(zeros, cl, nil, []byte{0})) // (B, 1, D)
	if c.err != nil {
		return nil, c.err
	}
	x = c.n(G.Concat(1, cl, x)) // (B, T, D)
	if c.err != nil {
		return nil, c.err
	}
	ps := c.n(G.Reshape(pos, tensor.Shape{1, p + 1, d}))
	if c.err != nil {
		return nil, c.err
	}
	x = c.n(G.BroadcastAdd(x, ps, nil, []byte{0}))
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.Reshape(x, tensor.Shape{b * (p + 1), d})), c.err
}

// ClassToken implements Ops.
func (Composed) ClassToken(x *G.Node, tokens int) (*G.Node, error) {
	c := &composer{}
	d := x.Shape()[1]
	y := c.n(G.Reshape(x, tensor.Shape{x.Shape()[0] / tokens, tokens, d})) // (B, T, D)
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.Slice(y, nil, G.S(0))), c.err // (B, D)
}

// Affine implements Ops.
func (Composed) Affine(x, scale, shift *G.Node) (*G.Node, error) {
	c := &composer{}
	y := c.n(G.BroadcastHadamardProd(x, c.row(scale), nil, []byte{0}))
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.BroadcastAdd(y, c.row(shift), nil, []byte{0})), c.err
}

// SoftCrossEntropy implements Ops.
func (Composed) SoftCrossEntropy(logits, target *G.Node, temperature, weight float64) (*G.Node, error) {
	if !(temperature > 0) {
		return nil, fmt.Errorf("nn: SoftCrossEntropy: temperature %g must be positive", temperature)
	}
	c := &composer{}
	z := c.n(G.Mul(logits, constant(logits, 1/temperature)))
	if c.err != nil {
		return nil, c.err
	}
	logq := c.n(G.LogSoftMax(z)) // (B, C)
	// t*log(t): t+tiny keeps 0*log(0) at 0 without changing positive entries.
	logt := c.n(G.Log(c.n(G.Add(target, constant(target, math.SmallestNonzeroFloat32*1e8)))))
	if c.err != nil {
		return nil, c.err
	}
	kl := c.n(G.HadamardProd(target, c.n(G.Sub(logt, logq))))
	if c.err != nil {
		return nil, c.err
	}
	sum := c.n(G.Sum(kl))
	if c.err != nil {
		return nil, c.err
	}
	b := float64(logits.Shape()[0])
	return c.n(G.Mul(sum, constant(sum, weight*temperature*temperature/b))), c.err
}

// SquaredError implements Ops.
func (Composed) SquaredError(x, target *G.Node, weight float64) (*G.Node, error) {
	c := &composer{}
	d := c.n(G.Sub(x, target)) // (N, D)
	if c.err != nil {
		return nil, c.err
	}
	sum := c.n(G.Sum(c.n(G.HadamardProd(d, d))))
	if c.err != nil {
		return nil, c.err
	}
	n := float64(x.Shape().TotalSize())
	return c.n(G.Mul(sum, constant(sum, weight/n))), c.err
}

// Add implements Ops.
func (Composed) Add(a, b *G.Node) (*G.Node, error) { return G.Add(a, b) }

// Gate implements Ops.
func (Composed) Gate(x, g *G.Node, blk int) (*G.Node, error) {
	c := &composer{}
	n, cols := x.Shape()[0], x.Shape()[1]
	groups := cols / blk
	y := c.n(G.Reshape(x, tensor.Shape{n, groups, blk})) // (N, G, blk)
	gr := c.n(G.Reshape(g, tensor.Shape{1, groups, 1}))
	if c.err != nil {
		return nil, c.err
	}
	y = c.n(G.BroadcastHadamardProd(y, gr, nil, []byte{0, 2}))
	if c.err != nil {
		return nil, c.err
	}
	return c.n(G.Reshape(y, tensor.Shape{n, cols})), c.err
}
