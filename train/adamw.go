package train

import (
	"fmt"
	"math"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's
// torch.optim.AdamW computes it:
//
//	p ← p − lr·wd·p            (only for tensors with decay)
//	m ← β1·m + (1−β1)·g
//	v ← β2·v + (1−β2)·g²
//	p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
//
// The parameters are a fixed list; moments are kept by index in that list for the whole run
// (gorgonia's own AdamW neither updates weights in v0.9.18 nor tolerates a changing list).
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Decay says, per parameter, whether weight decay applies.
	Decay []bool
	// LRScale, if set, multiplies the learning rate of each parameter (nil: 1 for all).
	LRScale []float64
	// M and V are the first and second moments, one slice per parameter.
	M, V [][]float32
	// T is the number of updates done so far.
	T int
}

// NewAdamW makes an optimizer for parameters of the given sizes.
func NewAdamW(sizes []int, decay []bool, beta1, beta2, eps, wd float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: wd, Decay: decay}
	for _, n := range sizes {
		o.M = append(o.M, make([]float32, n))
		o.V = append(o.V, make([]float32, n))
	}
	return o
}

// Step applies one update with learning rate lr. params[i] and grads[i] are parameter i's
// values and gradient.
func (o *AdamW) Step(params, grads [][]float32, lr float64) error {
	if len(params) != len(o.M) || len(grads) != len(o.M) {
		return fmt.Errorf("train: AdamW has %d parameters, got %d values and %d gradients", len(o.M), len(params), len(grads))
	}
	if o.LRScale != nil && len(o.LRScale) != len(o.M) {
		return fmt.Errorf("train: AdamW has %d parameters and %d learning-rate scales", len(o.M), len(o.LRScale))
	}
	o.T++
	c1 := 1 - math.Pow(o.Beta1, float64(o.T))
	c2 := 1 - math.Pow(o.Beta2, float64(o.T))
	b1, b2 := o.Beta1, o.Beta2
	for i, p := range params {
		g, m, v := grads[i], o.M[i], o.V[i]
		if len(p) != len(m) || len(g) != len(m) {
			return fmt.Errorf("train: AdamW parameter %d has %d values, gradient %d, moments %d", i, len(p), len(g), len(m))
		}
		lr := lr
		if o.LRScale != nil {
			lr *= o.LRScale[i]
		}
		shrink := 1.0
		if o.Decay[i] {
			shrink = 1 - lr*o.WeightDecay
		}
		for j := range p {
			gj := float64(g[j])
			mj := b1*float64(m[j]) + (1-b1)*gj
			vj := b2*float64(v[j]) + (1-b2)*gj*gj
			m[j], v[j] = float32(mj), float32(vj)
			pj := float64(p[j]) * shrink
			p[j] = float32(pj - lr*(mj/c1)/(math.Sqrt(vj/c2)+o.Eps))
		}
	}
	return nil
}

// ClipGlobalNorm scales all gradients together so that their joint L2 norm is at most max
// (max <= 0 disables clipping) and returns the norm before clipping.
func ClipGlobalNorm(grads [][]float32, max float64) float64 {
	var ss float64
	for _, g := range grads {
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(ss)
	if max > 0 && norm > max {
		s := float32(max / norm)
		for _, g := range grads {
			for j := range g {
				g[j] *= s
			}
		}
	}
	return norm
}
