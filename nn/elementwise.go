package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// GELU constants for the tanh approximation: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
const (
	geluC = 0.7978845608028654 // sqrt(2/pi)
	geluA = 0.044715
)

type geluKernel struct{}

func (geluKernel) name() string     { return "GELU{tanh}" }
func (geluKernel) inputDims() []int { return []int{2} }
func (geluKernel) outDims() int     { return 2 }
func (geluKernel) diffWRT() []bool  { return []bool{true} }
func (geluKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}

func (geluKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		geluForward(data[float32](in[0]), data[float32](out))
	} else {
		geluForward(data[float64](in[0]), data[float64](out))
	}
	return nil
}

func (geluKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		geluBackward(data[float32](in[0]), data[float32](dOut), data[float32](grads[0]))
	} else {
		geluBackward(data[float64](in[0]), data[float64](dOut), data[float64](grads[0]))
	}
	return nil
}

func geluForward[T Float](x, y []T) {
	parallelRows(len(x), 30, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			y[i] = T(0.5 * v * (1 + math.Tanh(geluC*(v+geluA*v*v*v))))
		}
	})
}

func geluBackward[T Float](x, dy, dx []T) {
	parallelRows(len(x), 40, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			t := math.Tanh(geluC * (v + geluA*v*v*v))
			d := 0.5*(1+t) + 0.5*v*(1-t*t)*geluC*(1+3*geluA*v*v)
			dx[i] = T(float64(dy[i]) * d)
		}
	})
}

// affineKernel computes y = x*scale + shift with per-column scale and shift.
type affineKernel struct{}

func (affineKernel) name() string     { return "Affine" }
func (affineKernel) inputDims() []int { return []int{2, 1, 1} }
func (affineKernel) outDims() int     { return 2 }
func (affineKernel) diffWRT() []bool  { return []bool{true, true, true} }
func (affineKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if in[1][0] != in[0][1] || in[2][0] != in[0][1] {
		return nil, fmt.Errorf("%w: Affine: x %v, scale %v, shift %v", ErrShape, in[0], in[1], in[2])
	}
	return in[0].Clone(), nil
}

func (affineKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		affineForward[float32](in, out)
	} else {
		affineForward[float64](in, out)
	}
	return nil
}

func (affineKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		affineBackward[float32](in, dOut, grads)
	} else {
		affineBackward[float64](in, dOut, grads)
	}
	return nil
}

func affineForward[T Float](in []*tensor.Dense, out *tensor.Dense) {
	x, s, b, y := data[T](in[0]), data[T](in[1]), data[T](in[2]), data[T](out)
	d := len(s)
	for r := 0; r < len(x)/d; r++ {
		xr, yr := x[r*d:(r+1)*d], y[r*d:(r+1)*d]
		for j := range xr {
			yr[j] = xr[j]*s[j] + b[j]
		}
	}
}

func affineBackward[T Float](in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	x, s, dy := data[T](in[0]), data[T](in[1]), data[T](dOut)
	dx, ds, db := data[T](grads[0]), data[T](grads[1]), data[T](grads[2])
	d := len(s)
	clear(ds)
	clear(db)
	for r := 0; r < len(x)/d; r++ {
		xr, dyr, dxr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
		for j := range xr {
			dxr[j] = dyr[j] * s[j]
			ds[j] += dyr[j] * xr[j]
			db[j] += dyr[j]
		}
	}
}
