package nn

import (
	"fmt"

	"gorgonia.org/tensor"
)

// gateKernel multiplies column blocks of x (N, G*blk) by per-block gates g (G): column j is
// scaled by g[j/blk]. With gates fixed at 1 it changes nothing, and dLoss/dg[i] is the
// first-order (Taylor) estimate of the loss change from removing block i: a head (blk =
// head dim) or an MLP neuron (blk = 1). Extraction uses it to score units.
type gateKernel struct{ blk int }

func (k *gateKernel) name() string     { return fmt.Sprintf("Gate{blk=%d}", k.blk) }
func (k *gateKernel) inputDims() []int { return []int{2, 1} }
func (k *gateKernel) outDims() int     { return 2 }
func (k *gateKernel) diffWRT() []bool  { return []bool{true, true} }
func (k *gateKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if k.blk < 1 || in[0][1] != in[1][0]*k.blk {
		return nil, fmt.Errorf("%w: %s: x %v, gates %v", ErrShape, k.name(), in[0], in[1])
	}
	return in[0].Clone(), nil
}

func (k *gateKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		gateForward[float32](k.blk, in, out)
	} else {
		gateForward[float64](k.blk, in, out)
	}
	return nil
}

func (k *gateKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		gateBackward[float32](k.blk, in, dOut, grads)
	} else {
		gateBackward[float64](k.blk, in, dOut, grads)
	}
	return nil
}

func gateForward[T Float](blk int, in []*tensor.Dense, out *tensor.Dense) {
	x, g, y := data[T](in[0]), data[T](in[1]), data[T](out)
	c := len(g) * blk
	for r := 0; r < len(x)/c; r++ {
		for j, v := range x[r*c : (r+1)*c] {
			y[r*c+j] = v * g[j/blk]
		}
	}
}

func gateBackward[T Float](blk int, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	x, g, dy := data[T](in[0]), data[T](in[1]), data[T](dOut)
	dx, dg := data[T](grads[0]), data[T](grads[1])
	c := len(g) * blk
	acc := make([]float64, len(g))
	for r := 0; r < len(x)/c; r++ {
		for j, v := range x[r*c : (r+1)*c] {
			d := dy[r*c+j]
			dx[r*c+j] = d * g[j/blk]
			acc[j/blk] += float64(d * v)
		}
	}
	for i, v := range acc {
		dg[i] = T(v)
	}
}
