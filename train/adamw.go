package train

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
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

	run *stepRun // the parallel update's state, kept across steps (no allocation per step)
}

// stepRun is one Step shared out among goroutines: each takes the next parameter index.
type stepRun struct {
	o             *AdamW
	params, grads [][]float32
	lr, c1, c2    float64
	next          atomic.Int64
	wg            sync.WaitGroup
}

// work updates parameters until none is left.
func (r *stepRun) work() {
	for i := int(r.next.Add(1) - 1); i < len(r.params); i = int(r.next.Add(1) - 1) {
		r.o.update(i, r.params[i], r.grads[i], r.lr, r.c1, r.c2)
	}
}

// helper is work in a goroutine of its own.
func (r *stepRun) helper() {
	defer r.wg.Done()
	r.work()
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
	for i, p := range params {
		if len(p) != len(o.M[i]) || len(grads[i]) != len(o.M[i]) || len(o.V[i]) != len(o.M[i]) {
			return fmt.Errorf("train: AdamW parameter %d has %d values, gradient %d, moments %d", i, len(p), len(grads[i]), len(o.M[i]))
		}
	}
	o.T++
	c1 := 1 - math.Pow(o.Beta1, float64(o.T))
	c2 := 1 - math.Pow(o.Beta2, float64(o.T))
	// Every value's update depends on its own value, gradient and moments only, so the
	// parameters are shared out among goroutines (one per CPU, at most 4) without changing
	// a bit of the result.
	if o.run == nil {
		o.run = &stepRun{o: o}
	}
	r := o.run
	r.params, r.grads, r.lr, r.c1, r.c2 = params, grads, lr, c1, c2
	r.next.Store(0)
	for w := 1; w < min(runtime.GOMAXPROCS(0), 4, len(params)); w++ {
		r.wg.Add(1)
		go r.helper()
	}
	r.work()
	r.wg.Wait()
	r.params, r.grads = nil, nil
	return nil
}

// update is the step of parameter i (values p, gradient g) at learning rate lr, with the
// bias corrections c1 and c2.
func (o *AdamW) update(i int, p, g []float32, lr, c1, c2 float64) {
	m, v := o.M[i], o.V[i]
	b1, b2 := o.Beta1, o.Beta2
	if o.LRScale != nil {
		lr *= o.LRScale[i]
	}
	shrink := 1.0
	if o.Decay[i] {
		shrink = 1 - lr*o.WeightDecay
	}
	j0 := 0
	if n := len(p) &^ 3; adamwAsm && n > 0 {
		g, m, v := g[:len(p)], m[:len(p)], v[:len(p)]
		k := adamwConsts{b1, 1 - b1, b2, 1 - b2, shrink, lr, c1, c2, o.Eps}
		adamw4(unsafe.Pointer(&p[0]), unsafe.Pointer(&g[0]), unsafe.Pointer(&m[0]), unsafe.Pointer(&v[0]), n, &k)
		j0 = n
	}
	for j := j0; j < len(p); j++ {
		gj := float64(g[j])
		mj := b1*float64(m[j]) + (1-b1)*gj
		vj := b2*float64(v[j]) + (1-b2)*gj*gj
		m[j], v[j] = float32(mj), float32(vj)
		pj := float64(p[j]) * shrink
		p[j] = float32(pj - lr*(mj/c1)/(math.Sqrt(vj/c2)+o.Eps))
	}
}

// adamwConsts are adamw4's constants, in the order the assembly reads them.
type adamwConsts struct {
	b1, omb1, b2, omb2, shrink, lr, c1, c2, eps float64
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
