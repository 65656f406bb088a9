package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// softCrossEntropyKernel is the mean over the batch of the KL divergence from a target
// distribution to softmax(logits/τ), times weight*τ²:
//
//	loss = weight * τ² / B * Σ_b Σ_c t[b,c] (log t[b,c] - log softmax(z[b]/τ)_c)
//
// With one-hot targets and τ = 1 this is the usual cross-entropy with labels; with a
// teacher's softmax(z_T/τ) as target it is Hinton's distillation loss (the τ² keeps its
// gradient scale independent of τ). The target receives no gradient.
type softCrossEntropyKernel struct {
	temperature float64
	weight      float64
	q           []float64 // softmax(z/τ), saved for backward
}

func (k *softCrossEntropyKernel) name() string {
	return fmt.Sprintf("SoftCrossEntropy{τ=%g,w=%g}", k.temperature, k.weight)
}
func (k *softCrossEntropyKernel) inputDims() []int { return []int{2, 2} }
func (k *softCrossEntropyKernel) outDims() int     { return 0 }
func (k *softCrossEntropyKernel) diffWRT() []bool  { return []bool{true, false} }
func (k *softCrossEntropyKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("%w: %s: logits %v, targets %v", ErrShape, k.name(), in[0], in[1])
	}
	return tensor.ScalarShape(), nil
}

func (k *softCrossEntropyKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		return softCEForward[float32](k, in, out)
	}
	return softCEForward[float64](k, in, out)
}

func (k *softCrossEntropyKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		softCEBackward[float32](k, in, dOut, grads)
	} else {
		softCEBackward[float64](k, in, dOut, grads)
	}
	return nil
}

func softCEForward[T Float](k *softCrossEntropyKernel, in []*tensor.Dense, out *tensor.Dense) error {
	z, tg := data[T](in[0]), data[T](in[1])
	b, c := in[0].Shape()[0], in[0].Shape()[1]
	k.q = growT(k.q, b*c)
	tau := k.temperature
	var total float64
	for r := 0; r < b; r++ {
		zr, tr, q := z[r*c:(r+1)*c], tg[r*c:(r+1)*c], k.q[r*c:(r+1)*c]
		m := math.Inf(-1)
		for _, v := range zr {
			m = math.Max(m, float64(v)/tau)
		}
		var s float64
		for j, v := range zr {
			q[j] = math.Exp(float64(v)/tau - m)
			s += q[j]
		}
		logS := math.Log(s)
		for j := range q {
			q[j] /= s
			t := float64(tr[j])
			if t < 0 {
				return fmt.Errorf("target[%d][%d] = %g is negative", r, j, t)
			}
			if t > 0 {
				// log softmax = z/τ - m - log s
				total += t * (math.Log(t) - (float64(zr[j])/tau - m - logS))
			}
		}
	}
	data[T](out)[0] = T(k.weight * tau * tau * total / float64(b))
	return nil
}

func softCEBackward[T Float](k *softCrossEntropyKernel, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	tg, dz := data[T](in[1]), data[T](grads[0])
	b := in[0].Shape()[0]
	f := float64(data[T](dOut)[0]) * k.weight * k.temperature / float64(b)
	for i, q := range k.q {
		dz[i] = T(f * (q - float64(tg[i])))
	}
}

// squaredErrorKernel is weight times the mean squared difference between x and a target of
// the same shape (hidden-state distillation: a student's residual stream against its
// teacher's):
//
//	loss = weight / (N·D) · Σ_i (x_i − t_i)²
//
// The target receives no gradient.
type squaredErrorKernel struct {
	weight float64
}

func (k *squaredErrorKernel) name() string     { return fmt.Sprintf("SquaredError{w=%g}", k.weight) }
func (k *squaredErrorKernel) inputDims() []int { return []int{2, 2} }
func (k *squaredErrorKernel) outDims() int     { return 0 }
func (k *squaredErrorKernel) diffWRT() []bool  { return []bool{true, false} }
func (k *squaredErrorKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("%w: %s: input %v, target %v", ErrShape, k.name(), in[0], in[1])
	}
	return tensor.ScalarShape(), nil
}

func (k *squaredErrorKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		squaredErrorForward[float32](k, in, out)
	} else {
		squaredErrorForward[float64](k, in, out)
	}
	return nil
}

func (k *squaredErrorKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		squaredErrorBackward[float32](k, in, dOut, grads)
	} else {
		squaredErrorBackward[float64](k, in, dOut, grads)
	}
	return nil
}

func squaredErrorForward[T Float](k *squaredErrorKernel, in []*tensor.Dense, out *tensor.Dense) {
	x, t := data[T](in[0]), data[T](in[1])
	var s float64
	for i, v := range x {
		d := float64(v) - float64(t[i])
		s += d * d
	}
	data[T](out)[0] = T(k.weight * s / float64(len(x)))
}

func squaredErrorBackward[T Float](k *squaredErrorKernel, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	x, t, dx := data[T](in[0]), data[T](in[1]), data[T](grads[0])
	f := float64(data[T](dOut)[0]) * 2 * k.weight / float64(len(x))
	for i, v := range x {
		dx[i] = T(f * (float64(v) - float64(t[i])))
	}
}
