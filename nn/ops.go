package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Ops builds the Transformer's operations into a gorgonia graph. Fused and Composed
// compute the same functions; Fused is fast, Composed is the reference.
type Ops interface {
	// Linear is y = x·W[rows, :In]ᵀ + b[rows] over the rows chosen by s (b may be nil).
	// x (N, In) -> (N, Groups*Out).
	Linear(x, w, b *G.Node, s *LinearSpec) (*G.Node, error)
	// LayerNorm normalises the rows of x (N, D) and applies gamma, beta (D).
	LayerNorm(x, gamma, beta *G.Node, eps float64) (*G.Node, error)
	// GELU applies the tanh approximation of GELU element-wise.
	GELU(x *G.Node) (*G.Node, error)
	// Attention is multi-head self-attention on qkv (B*T, 3*h*dh) -> (B*T, h*dh). mixPre and
	// mixPost, (h, h), are used (and required) only when s.HeadMix is set.
	Attention(qkv *G.Node, s *AttentionSpec, mixPre, mixPost *G.Node) (*G.Node, error)
	// Tokens builds the token matrix (B*T, D) from patch embeddings (B*P, D), the class token
	// (D) and positions (T, D), T = P+1, class token first.
	Tokens(patches, cls, pos *G.Node, patchesPerExample int) (*G.Node, error)
	// ClassToken picks each example's first token: (B*T, D) -> (B, D).
	ClassToken(x *G.Node, tokens int) (*G.Node, error)
	// Affine is x*scale + shift with per-column scale and shift (D).
	Affine(x, scale, shift *G.Node) (*G.Node, error)
	// SoftCrossEntropy is weight*τ² times the batch mean of KL(target || softmax(logits/τ));
	// target (B, C) is a distribution per row (one-hot for labels) and gets no gradient.
	SoftCrossEntropy(logits, target *G.Node, temperature, weight float64) (*G.Node, error)
	// SquaredError is weight times the mean over all elements of (x − target)², for x and
	// target (N, D) of one shape; target gets no gradient (hidden-state distillation).
	SquaredError(x, target *G.Node, weight float64) (*G.Node, error)
	// Add is a + b for equal shapes (residual connections, summing losses).
	Add(a, b *G.Node) (*G.Node, error)
	// Gate scales column block i of x (N, G*blk) by g[i], g (G).
	Gate(x, g *G.Node, blk int) (*G.Node, error)
}

// Fused is the fast implementation: one custom op per operation. With Serial set its
// kernels stay on the calling goroutine (for graphs that run side by side, one per core). Its linear and attention
// ops read their spec through the pointer at every run, so a graph built for the largest
// subnet of a depth can run any width of that depth after the specs are changed (see
// supernet.Net.Resize); Composed graphs are fixed when built.
type Fused struct {
	Serial bool
}

func (f Fused) par() int {
	if f.Serial {
		return 1
	}
	return 0
}

// Resizable reports that fused graphs read their sizes at run time.
func (Fused) Resizable() bool { return true }

// Linear implements Ops.
func (f Fused) Linear(x, w, b *G.Node, s *LinearSpec) (*G.Node, error) {
	if b == nil {
		return apply(&linearKernel{s: s, par: f.par()}, x, w)
	}
	return apply(&linearKernel{s: s, hasBias: true, par: f.par()}, x, w, b)
}

// LayerNorm implements Ops.
func (f Fused) LayerNorm(x, gamma, beta *G.Node, eps float64) (*G.Node, error) {
	return apply(&layerNormKernel{eps: eps, par: f.par()}, x, gamma, beta)
}

// GELU implements Ops.
func (f Fused) GELU(x *G.Node) (*G.Node, error) { return apply(geluKernel{par: f.par()}, x) }

// Attention implements Ops.
func (f Fused) Attention(qkv *G.Node, s *AttentionSpec, mixPre, mixPost *G.Node) (*G.Node, error) {
	if err := s.check(mixPre, mixPost); err != nil {
		return nil, err
	}
	if s.HeadMix {
		return apply(&attentionKernel{s: s, par: f.par()}, qkv, mixPre, mixPost)
	}
	return apply(&attentionKernel{s: s, par: f.par()}, qkv)
}

func (s AttentionSpec) check(mixPre, mixPost *G.Node) error {
	if s.Tokens < 1 || s.Heads < 1 || s.HeadDim < 1 {
		return fmt.Errorf("%w: attention spec %+v", ErrShape, s)
	}
	if s.HeadMix != (mixPre != nil && mixPost != nil) {
		return fmt.Errorf("%w: attention: HeadMix=%t needs both mixing matrices exactly when set", ErrShape, s.HeadMix)
	}
	return nil
}

// Tokens implements Ops.
func (Fused) Tokens(patches, cls, pos *G.Node, patchesPerExample int) (*G.Node, error) {
	return apply(&tokensKernel{patches: patchesPerExample}, patches, cls, pos)
}

// ClassToken implements Ops.
func (Fused) ClassToken(x *G.Node, tokens int) (*G.Node, error) {
	return apply(&classTokenKernel{tokens: tokens}, x)
}

// Affine implements Ops.
func (Fused) Affine(x, scale, shift *G.Node) (*G.Node, error) {
	return apply(affineKernel{}, x, scale, shift)
}

// SoftCrossEntropy implements Ops.
func (Fused) SoftCrossEntropy(logits, target *G.Node, temperature, weight float64) (*G.Node, error) {
	if !(temperature > 0) {
		return nil, fmt.Errorf("nn: SoftCrossEntropy: temperature %g must be positive", temperature)
	}
	return apply(&softCrossEntropyKernel{temperature: temperature, weight: weight}, logits, target)
}

// SquaredError implements Ops.
func (Fused) SquaredError(x, target *G.Node, weight float64) (*G.Node, error) {
	return apply(&squaredErrorKernel{weight: weight}, x, target)
}

// Add implements Ops.
func (Fused) Add(a, b *G.Node) (*G.Node, error) { return apply(&addKernel{dims: a.Dims()}, a, b) }

// Gate implements Ops.
func (Fused) Gate(x, g *G.Node, blk int) (*G.Node, error) { return apply(&gateKernel{blk: blk}, x, g) }

// Builder wraps Ops with a sticky error so graph code reads like the maths: after the first
// failure every call returns nil and Err reports the failure with its context.
type Builder struct {
	Ops Ops
	err error
}

// Err returns the first error met while building.
func (b *Builder) Err() error { return b.err }

func (b *Builder) do(what string, f func() (*G.Node, error)) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := f()
	if err != nil {
		b.err = fmt.Errorf("%s: %w", what, err)
		return nil
	}
	return n
}

// Linear is Ops.Linear; what names the layer in errors.
func (b *Builder) Linear(what string, x, w, bias *G.Node, s *LinearSpec) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.Linear(x, w, bias, s) })
}

// LayerNorm is Ops.LayerNorm.
func (b *Builder) LayerNorm(what string, x, gamma, beta *G.Node, eps float64) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.LayerNorm(x, gamma, beta, eps) })
}

// GELU is Ops.GELU.
func (b *Builder) GELU(what string, x *G.Node) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.GELU(x) })
}

// Attention is Ops.Attention.
func (b *Builder) Attention(what string, qkv *G.Node, s *AttentionSpec, mixPre, mixPost *G.Node) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.Attention(qkv, s, mixPre, mixPost) })
}

// Tokens is Ops.Tokens.
func (b *Builder) Tokens(what string, patches, cls, pos *G.Node, p int) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.Tokens(patches, cls, pos, p) })
}

// ClassToken is Ops.ClassToken.
func (b *Builder) ClassToken(what string, x *G.Node, tokens int) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.ClassToken(x, tokens) })
}

// Affine is Ops.Affine.
func (b *Builder) Affine(what string, x, scale, shift *G.Node) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.Affine(x, scale, shift) })
}

// SoftCrossEntropy is Ops.SoftCrossEntropy.
func (b *Builder) SoftCrossEntropy(what string, logits, target *G.Node, temperature, weight float64) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.SoftCrossEntropy(logits, target, temperature, weight) })
}

// SquaredError is Ops.SquaredError.
func (b *Builder) SquaredError(what string, x, target *G.Node, weight float64) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.SquaredError(x, target, weight) })
}

// Gate is Ops.Gate.
func (b *Builder) Gate(what string, x, g *G.Node, blk int) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.Gate(x, g, blk) })
}

// Add is Ops.Add.
func (b *Builder) Add(what string, x, y *G.Node) *G.Node {
	return b.do(what, func() (*G.Node, error) { return b.Ops.Add(x, y) })
}
