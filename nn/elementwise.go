package nn

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"gorgonia.org/tensor"
)

// GELU constants for the tanh approximation: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
const (
	geluC = asm.GeluC // sqrt(2/pi)
	geluA = asm.GeluA
)

type geluKernel struct{ par int }

func (geluKernel) name() string     { return "GELU{tanh}" }
func (geluKernel) inputDims() []int { return []int{2} }
func (geluKernel) outDims() int     { return 2 }
func (geluKernel) diffWRT() []bool  { return []bool{true} }
func (geluKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}

func (k geluKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		geluForward32(k.par, data[float32](in[0]), data[float32](out))
	} else {
		geluForward(k.par, data[float64](in[0]), data[float64](out))
	}
	return nil
}

func (k geluKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		geluBackward32(k.par, data[float32](in[0]), data[float32](dOut), data[float32](grads[0]))
	} else {
		geluBackward(k.par, data[float64](in[0]), data[float64](dOut), data[float64](grads[0]))
	}
	return nil
}

func geluForward[T Float](par int, x, y []T) {
	parallelRows(par, len(x), 30, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			y[i] = 0.5 * v * (1 + tanh(T(geluC)*(v+T(geluA)*v*v*v)))
		}
	})
}

func geluBackward[T Float](par int, x, dy, dx []T) {
	parallelRows(par, len(x), 40, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			t := tanh(T(geluC) * (v + T(geluA)*v*v*v))
			d := 0.5*(1+t) + 0.5*v*(1-t*t)*T(geluC)*(1+3*T(geluA)*v*v)
			dx[i] = dy[i] * d
		}
	})
}

// geluTable holds GELU and its derivative at geluTableSteps points per unit over
// [-geluTableEnd, geluTableEnd]; float32 kernels interpolate linearly between them (absolute
// error below 2e-6, far under float32 training noise) instead of evaluating tanh per element.
type geluTable struct{ f, df []float32 }

const (
	geluTableSteps = 256
	geluTableEnd   = 10
)

var geluTab = sync.OnceValue(func() geluTable {
	n := 2*geluTableEnd*geluTableSteps + 2
	t := geluTable{f: make([]float32, n), df: make([]float32, n)}
	for i := range t.f {
		v := float64(i)/geluTableSteps - geluTableEnd
		th := math.Tanh(geluC * (v + geluA*v*v*v))
		t.f[i] = float32(0.5 * v * (1 + th))
		t.df[i] = float32(0.5*(1+th) + 0.5*v*(1-th*th)*geluC*(1+3*geluA*v*v))
	}
	return t
})

// lookup interpolates table y at x, for x inside the table's range.
func lookup(y []float32, x float32) float32 {
	u := (x + geluTableEnd) * geluTableSteps
	i := int(u)
	f := u - float32(i)
	return y[i] + f*(y[i+1]-y[i])
}

// geluForward32 is geluForward for float32: the AVX2 kernel where the CPU has it, else
// table interpolation.
func geluForward32(par int, x, y []float32) {
	if asm.Available {
		parallelRows(par, len(x), 4, func(lo, hi int) { gelu8(x[lo:hi], nil, y[lo:hi]) })
		return
	}
	geluTableForward(par, x, y)
}

// geluTableForward is geluForward for float32 by table interpolation.
func geluTableForward(par int, x, y []float32) {
	tab := geluTab()
	parallelRows(par, len(x), 8, func(lo, hi int) {
		xs, ys := x[lo:hi], y[lo:hi]
		ys = ys[:len(xs)]
		for i, v := range xs {
			switch {
			case v >= geluTableEnd:
				ys[i] = v
			case v <= -geluTableEnd:
				ys[i] = 0
			case v != v: // NaN propagates, so the loss check sees it
				ys[i] = v
			default:
				ys[i] = lookup(tab.f, v)
			}
		}
	})
}

// geluBackward32 is geluBackward for float32: the AVX2 kernel where the CPU has it, else
// table interpolation.
func geluBackward32(par int, x, dy, dx []float32) {
	if asm.Available {
		parallelRows(par, len(x), 5, func(lo, hi int) { gelu8(x[lo:hi], dy[lo:hi], dx[lo:hi]) })
		return
	}
	geluTableBackward(par, x, dy, dx)
}

// geluTableBackward is geluBackward for float32 by table interpolation.
func geluTableBackward(par int, x, dy, dx []float32) {
	tab := geluTab()
	parallelRows(par, len(x), 8, func(lo, hi int) {
		xs, gs, ds := x[lo:hi], dy[lo:hi], dx[lo:hi]
		gs, ds = gs[:len(xs)], ds[:len(xs)]
		for i, v := range xs {
			switch {
			case v >= geluTableEnd:
				ds[i] = gs[i]
			case v <= -geluTableEnd:
				ds[i] = 0
			case v != v:
				ds[i] = v
			default:
				ds[i] = gs[i] * lookup(tab.df, v)
			}
		}
	})
}

// gelu8 runs the assembly GELU on x: the forward pass into out when dy is nil, else the
// backward pass (dy·GELU'(x)) into out. The last len(x)%8 values go through the kernel
// in a padded buffer, so every value is computed by the same instructions wherever the
// parallel split falls.
func gelu8(x, dy, out []float32) {
	k := unsafe.Pointer(&asm.GeluConsts)
	n := len(x) &^ 7
	if n > 0 {
		if dy == nil {
			asm.GeluForward8(unsafe.Pointer(&x[0]), unsafe.Pointer(&out[0]), n, k)
		} else {
			asm.GeluBackward8(unsafe.Pointer(&x[0]), unsafe.Pointer(&dy[0]), unsafe.Pointer(&out[0]), n, k)
		}
	}
	if n == len(x) {
		return
	}
	var bx, bd, bo [8]float32
	copy(bx[:], x[n:])
	if dy == nil {
		asm.GeluForward8(unsafe.Pointer(&bx[0]), unsafe.Pointer(&bo[0]), 8, k)
	} else {
		copy(bd[:], dy[n:])
		asm.GeluBackward8(unsafe.Pointer(&bx[0]), unsafe.Pointer(&bd[0]), unsafe.Pointer(&bo[0]), 8, k)
	}
	copy(out[n:], bo[:])
}

// tanh32 is a rational approximation of tanh (Eigen's), accurate to a few float32 ulps.
func tanh32(x float32) float32 {
	const clampF = 7.90531110763549805
	x = min(max(x, -clampF), clampF)
	const (
		a1  = 4.89352455891786e-03
		a3  = 6.37261928875436e-04
		a5  = 1.48572235717979e-05
		a7  = 5.12229709037114e-08
		a9  = -8.60467152213735e-11
		a11 = 2.00018790482477e-13
		a13 = -2.76076847742355e-16
		b0  = 4.89352518554385e-03
		b2  = 2.26843463243900e-03
		b4  = 1.18534705686654e-04
		b6  = 1.19825839466702e-06
	)
	x2 := x * x
	p := x * (a1 + x2*(a3+x2*(a5+x2*(a7+x2*(a9+x2*(a11+x2*a13))))))
	q := b0 + x2*(b2+x2*(b4+x2*b6))
	return p / q
}

// tanh is math.Tanh in float64 and a rational approximation in float32 (Eigen's, accurate
// to a few float32 ulps), which is several times faster than converting to float64.
func tanh[T Float](x T) T {
	if unsafe.Sizeof(x) == 8 {
		return T(math.Tanh(float64(x)))
	}
	return T(tanh32(float32(x)))
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
