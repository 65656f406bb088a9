package nn

import (
	"fmt"
	"unsafe"

	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"gorgonia.org/tensor"
)

// LinearSpec says which part of a (possibly larger, shared) weight a linear layer uses.
// The weight W has shape (Groups*F, InFull), stored like PyTorch's nn.Linear (output rows,
// input columns), split into Groups consecutive blocks of F rows. The layer uses the leading
// Out rows of every group and the leading In columns, so a subnet runs on leading slices of
// the supernet's weights without copying them:
//
//	y[:, g*Out:(g+1)*Out] = x · W[g*F : g*F+Out, :In]ᵀ + b[g*F : g*F+Out]
type LinearSpec struct {
	// Groups is the number of row blocks in W (3 for a fused q/k/v projection); 0 means 1.
	Groups int
	// Out is the number of leading rows used from each group.
	Out int
	// In is the number of leading columns used; x must have exactly In columns.
	In int
	// NoInputGrad skips dLoss/dx (for inputs that are data, such as image patches).
	NoInputGrad bool
}

func (s LinearSpec) groups() int {
	if s.Groups <= 0 {
		return 1
	}
	return s.Groups
}

type linearKernel struct {
	s       *LinearSpec // read at every run: a graph can be resized between runs
	hasBias bool
	par     int // goroutines (see parallelRows)
}

func (k *linearKernel) name() string {
	return fmt.Sprintf("Linear{g%d,out%d,in%d,bias=%t}", k.s.groups(), k.s.Out, k.s.In, k.hasBias)
}

func (k *linearKernel) inputDims() []int {
	if k.hasBias {
		return []int{2, 2, 1}
	}
	return []int{2, 2}
}

func (k *linearKernel) outDims() int { return 2 }

func (k *linearKernel) diffWRT() []bool {
	if k.hasBias {
		return []bool{!k.s.NoInputGrad, true, true}
	}
	return []bool{!k.s.NoInputGrad, true}
}

func (k *linearKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x, w := in[0], in[1]
	g := k.s.groups()
	if x[1] != k.s.In {
		return nil, fmt.Errorf("%w: %s: x has %d columns, want %d", ErrShape, k.name(), x[1], k.s.In)
	}
	if w[0]%g != 0 || w[0]/g < k.s.Out || w[1] < k.s.In || k.s.Out < 0 || k.s.In < 1 {
		return nil, fmt.Errorf("%w: %s: weight %v has no %d groups of %d leading rows and %d columns",
			ErrShape, k.name(), w, g, k.s.Out, k.s.In)
	}
	if k.hasBias && in[2][0] != w[0] {
		return nil, fmt.Errorf("%w: %s: bias %v does not match weight %v", ErrShape, k.name(), in[2], w)
	}
	return tensor.Shape{x[0], g * k.s.Out}, nil
}

func (k *linearKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		linearForward[float32](k, in, out)
	} else {
		linearForward[float64](k, in, out)
	}
	return nil
}

func (k *linearKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		linearBackward[float32](k, in, dOut, grads)
	} else {
		linearBackward[float64](k, in, dOut, grads)
	}
	return nil
}

func linearForward[T Float](k *linearKernel, in []*tensor.Dense, out *tensor.Dense) {
	x, w, y := data[T](in[0]), data[T](in[1]), data[T](out)
	n, inFull := in[0].Shape()[0], in[1].Shape()[1]
	g, f, o, i := k.s.groups(), in[1].Shape()[0]/k.s.groups(), k.s.Out, k.s.In
	ldy := g * o
	var beta T
	if k.hasBias {
		b := data[T](in[2])
		if y32, ok := any(y).([]float32); ok && asm.Available && o%8 == 0 && n > 0 {
			b32 := any(b).([]float32)
			_ = y32[(n-1)*ldy+g*o-1] // bounds check before the kernel writes
			_ = b32[(g-1)*f+o-1]
			for gi := 0; gi < g; gi++ {
				asm.FillRows8(unsafe.Pointer(&b32[gi*f]), unsafe.Pointer(&y32[gi*o]), o, n, ldy)
			}
		} else {
			fillBias(y, b, n, ldy, g, f, o)
		}
		beta = 1
	}
	for gi := 0; gi < g; gi++ {
		// (n, i) x (o, i)ᵀ -> (n, o) block of y with row stride ldy
		gemm(k.par, false, true, n, o, i, 1, x, i, w[gi*f*inFull:], inFull, beta, y[gi*o:], ldy)
	}
}

func linearBackward[T Float](k *linearKernel, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	x, w, dy := data[T](in[0]), data[T](in[1]), data[T](dOut)
	n, inFull := in[0].Shape()[0], in[1].Shape()[1]
	g, f, o, i := k.s.groups(), in[1].Shape()[0]/k.s.groups(), k.s.Out, k.s.In
	ldy := g * o
	if !k.s.NoInputGrad {
		dx := data[T](grads[0])
		for gi := 0; gi < g; gi++ {
			var beta T
			if gi > 0 {
				beta = 1
			}
			// (n, o) x (o, i) -> (n, i)
			gemm(k.par, false, false, n, i, o, 1, dy[gi*o:], ldy, w[gi*f*inFull:], inFull, beta, dx, i)
		}
	}
	dw := data[T](grads[1])
	clear(dw)
	for gi := 0; gi < g; gi++ {
		// (o, n) x (n, i) -> (o, i) block of dW with row stride inFull
		gemm(k.par, true, false, o, i, n, 1, dy[gi*o:], ldy, x, i, 0, dw[gi*f*inFull:], inFull)
	}
	if k.hasBias {
		db := data[T](grads[2])
		clear(db) // sumRows adds; the inactive tail of each group keeps a zero gradient
		for gi := 0; gi < g; gi++ {
			sumRows(db[gi*f:gi*f+o], dy[gi*o:], n, ldy)
		}
	}
}

// sumRows adds Σ_r src[r*ld+j] to dst[j] for the n rows of a strided matrix, four rows
// per pass so that dst is loaded and stored once per four rows (a fixed order: the result
// does not depend on anything but the inputs).
func sumRows[T Float](dst, src []T, n, ld int) {
	o := len(dst)
	if s32, ok := any(src).([]float32); ok && asm.Available && o%8 == 0 && o > 0 && n > 0 {
		_ = s32[(n-1)*ld+o-1] // the kernel reads rows 0..n-1, o values each
		asm.SumRows8(unsafe.Pointer(&s32[0]), unsafe.Pointer(&any(dst).([]float32)[0]), o, n, ld)
		return
	}
	r := 0
	for ; r+4 <= n; r += 4 {
		r0, r1 := src[r*ld:r*ld+o], src[(r+1)*ld:(r+1)*ld+o]
		r2, r3 := src[(r+2)*ld:(r+2)*ld+o], src[(r+3)*ld:(r+3)*ld+o]
		r0, r1, r2, r3 = r0[:len(dst)], r1[:len(dst)], r2[:len(dst)], r3[:len(dst)] // bounds hints for the loop
		for j := range dst {
			dst[j] += (r0[j] + r1[j]) + (r2[j] + r3[j])
		}
	}
	for ; r < n; r++ {
		row := src[r*ld : r*ld+o]
		for j, v := range row {
			dst[j] += v
		}
	}
}

// fillBias copies the bias of each of g groups (f rows apart in b, o used) into every row
// of y (row stride ldy), which the matrix product then adds to.
func fillBias[T Float](y, b []T, n, ldy, g, f, o int) {
	for r := 0; r < n; r++ {
		row := y[r*ldy : (r+1)*ldy]
		for gi := 0; gi < g; gi++ {
			copy(row[gi*o:(gi+1)*o], b[gi*f:gi*f+o])
		}
	}
}
