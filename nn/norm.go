package nn

import (
	"fmt"
	"math"
	"unsafe"

	asm "github.com/ofa-go/ofa/nn/internal/kernel"

	"gorgonia.org/tensor"
)

// layerNormKernel normalises each row of x (N, D) to zero mean and unit variance (biased
// variance, as PyTorch's nn.LayerNorm) and applies a per-column scale and shift.
type layerNormKernel struct {
	eps  float64
	par  int       // goroutines (see parallelRows)
	mean []float64 // per row, saved by forward for backward
	rstd []float64
	// the assembly kernel's float32 mean and rstd, copied to mean and rstd
	mean32, rstd32 []float32
}

func (k *layerNormKernel) name() string     { return fmt.Sprintf("LayerNorm{eps=%g}", k.eps) }
func (k *layerNormKernel) inputDims() []int { return []int{2, 1, 1} }
func (k *layerNormKernel) outDims() int     { return 2 }
func (k *layerNormKernel) diffWRT() []bool  { return []bool{true, true, true} }

func (k *layerNormKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if in[1][0] != in[0][1] || in[2][0] != in[0][1] {
		return nil, fmt.Errorf("%w: LayerNorm: x %v, gamma %v, beta %v", ErrShape, in[0], in[1], in[2])
	}
	return in[0].Clone(), nil
}

func (k *layerNormKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		layerNormForward[float32](k, in, out)
	} else {
		layerNormForward[float64](k, in, out)
	}
	return nil
}

func (k *layerNormKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		layerNormBackward[float32](k, in, dOut, grads)
	} else {
		layerNormBackward[float64](k, in, dOut, grads)
	}
	return nil
}

func layerNormForward[T Float](k *layerNormKernel, in []*tensor.Dense, out *tensor.Dense) {
	x, gamma, beta, y := data[T](in[0]), data[T](in[1]), data[T](in[2]), data[T](out)
	n, d := in[0].Shape()[0], in[0].Shape()[1]
	if cap(k.mean) < n {
		k.mean, k.rstd = make([]float64, n), make([]float64, n)
	}
	k.mean, k.rstd = k.mean[:n], k.rstd[:n]
	if x32, ok := any(x).([]float32); ok && asm.Available && d%8 == 0 {
		if cap(k.mean32) < n {
			k.mean32, k.rstd32 = make([]float32, n), make([]float32, n)
		}
		k.mean32, k.rstd32 = k.mean32[:n], k.rstd32[:n]
		g32, b32, y32 := any(gamma).([]float32), any(beta).([]float32), any(y).([]float32)
		parallelRows(k.par, n, d*3, func(lo, hi int) {
			layerNormRows32(x32[lo*d:hi*d], y32[lo*d:hi*d], g32, b32, d, k.eps, k.mean32[lo:hi], k.rstd32[lo:hi])
			for r := lo; r < hi; r++ {
				k.mean[r], k.rstd[r] = float64(k.mean32[r]), float64(k.rstd32[r])
			}
		})
		return
	}
	parallelRows(k.par, n, d*8, func(lo, hi int) {
		layerNormRows(x[lo*d:hi*d], y[lo*d:hi*d], gamma, beta, d, k.eps, k.mean[lo:hi], k.rstd[lo:hi])
	})
}

// layerNormRows is the portable forward pass over the rows of x (d columns each): sums in
// float64, the row's mean and 1/std saved in mean and rstd.
func layerNormRows[T Float](x, y, gamma, beta []T, d int, eps float64, mean, rstd []float64) {
	for r := range mean {
		row := x[r*d : (r+1)*d]
		m := sum4(row) / float64(d)
		ss := sqDev4(row, m)
		rs := 1 / math.Sqrt(ss/float64(d)+eps)
		mean[r], rstd[r] = m, rs
		yr := y[r*d : (r+1)*d]
		g, bt := gamma[:len(row)], beta[:len(row)] // bounds hints
		yr = yr[:len(row)]
		mt, rt := T(m), T(rs)
		for j, v := range row {
			yr[j] = (v-mt)*rt*g[j] + bt[j]
		}
	}
}

// layerNormRows32 is the forward pass of the AVX2 kernel (asm.LayerNormRows8: float32
// sums, 8 lanes in a fixed order) over the rows of x, d a multiple of 8; call it only when
// asm.Available.
func layerNormRows32(x, y, gamma, beta []float32, d int, eps float64, mean, rstd []float32) {
	if len(mean) == 0 {
		return
	}
	_, _, _ = x[len(mean)*d-1], y[len(mean)*d-1], gamma[d-1]+beta[d-1] // bounds checks before the kernel reads
	asm.LayerNormRows8(unsafe.Pointer(&x[0]), unsafe.Pointer(&y[0]), unsafe.Pointer(&gamma[0]), unsafe.Pointer(&beta[0]),
		len(mean), d, 1/float32(d), float32(eps), 1, unsafe.Pointer(&mean[0]), unsafe.Pointer(&rstd[0]))
}

func layerNormBackward[T Float](k *layerNormKernel, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	x, gamma, dy := data[T](in[0]), data[T](in[1]), data[T](dOut)
	dx, dgamma, dbeta := data[T](grads[0]), data[T](grads[1]), data[T](grads[2])
	n, d := in[0].Shape()[0], in[0].Shape()[1]
	if x32, ok := any(x).([]float32); ok && asm.Available && d%8 == 0 && len(k.mean32) == n {
		// the forward pass took the AVX2 kernel and saved float32 statistics
		layerNormBackward32(k, x32, any(gamma).([]float32), any(dy).([]float32), any(dx).([]float32),
			any(dgamma).([]float32), any(dbeta).([]float32), n, d)
		return
	}
	parallelRows(k.par, n, d*16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
			m, rs := T(k.mean[r]), T(k.rstd[r])
			// dxhat = dy*gamma; dx = rstd*(dxhat - mean(dxhat) - xhat*mean(dxhat*xhat))
			// two accumulators each (even and odd columns): the sums are not one long chain
			// of dependent additions
			var s1a, s1b, s2a, s2b T
			j := 0
			for ; j+2 <= len(xr); j += 2 {
				g0, g1 := dyr[j]*gamma[j], dyr[j+1]*gamma[j+1]
				s1a += g0
				s1b += g1
				s2a += g0 * (xr[j] - m) * rs
				s2b += g1 * (xr[j+1] - m) * rs
			}
			for ; j < len(xr); j++ {
				g := dyr[j] * gamma[j]
				s1a += g
				s2a += g * (xr[j] - m) * rs
			}
			s1 := (s1a + s1b) / T(d)
			s2 := (s2a + s2b) / T(d)
			for j := range xr {
				xhat := (xr[j] - m) * rs
				dxr[j] = rs * (dyr[j]*gamma[j] - s1 - xhat*s2)
			}
		}
	})
	clear(dgamma)
	clear(dbeta)
	for r := 0; r < n; r++ {
		xr, dyr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d]
		m, rs := T(k.mean[r]), T(k.rstd[r])
		for j := range xr {
			dgamma[j] += dyr[j] * (xr[j] - m) * rs
			dbeta[j] += dyr[j]
		}
	}
}

// layerNormBackward32 is the backward pass of the AVX2 kernels (asm.LayerNormBackRows8,
// asm.LayerNormParamGrads8) over x (n, d), d a multiple of 8, with the statistics the
// AVX2 forward pass saved; call it only when asm.Available.
func layerNormBackward32(k *layerNormKernel, x, gamma, dy, dx, dgamma, dbeta []float32, n, d int) {
	if n == 0 {
		clear(dgamma)
		clear(dbeta)
		return
	}
	_, _, _, _ = x[n*d-1], dy[n*d-1], dx[n*d-1], gamma[d-1]+dgamma[d-1]+dbeta[d-1] // bounds checks before the kernels
	parallelRows(k.par, n, d*6, func(lo, hi int) {
		asm.LayerNormBackRows8(unsafe.Pointer(&x[lo*d]), unsafe.Pointer(&dy[lo*d]), unsafe.Pointer(&gamma[0]), unsafe.Pointer(&dx[lo*d]),
			hi-lo, d, 1/float32(d), unsafe.Pointer(&k.mean32[lo]), unsafe.Pointer(&k.rstd32[lo]))
	})
	clear(dgamma)
	clear(dbeta)
	asm.LayerNormParamGrads8(unsafe.Pointer(&x[0]), unsafe.Pointer(&dy[0]), unsafe.Pointer(&dgamma[0]), unsafe.Pointer(&dbeta[0]),
		n, d, unsafe.Pointer(&k.mean32[0]), unsafe.Pointer(&k.rstd32[0]))
}

// sum4 returns Σ x in float64 with four independent accumulators (a fixed order).
func sum4[T Float](x []T) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a += float64(x[i])
		b += float64(x[i+1])
		c += float64(x[i+2])
		d += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		a += float64(x[i])
	}
	return (a + b) + (c + d)
}

// sqDev4 returns Σ (x-m)² in float64 with four independent accumulators (a fixed order).
func sqDev4[T Float](x []T, m float64) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		e0, e1 := float64(x[i])-m, float64(x[i+1])-m
		e2, e3 := float64(x[i+2])-m, float64(x[i+3])-m
		a += e0 * e0
		b += e1 * e1
		c += e2 * e2
		d += e3 * e3
	}
	for ; i < len(x); i++ {
		e := float64(x[i]) - m
		a += e * e
	}
	return (a + b) + (c + d)
}
