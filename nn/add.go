package nn

import (
	"fmt"
	"unsafe"

	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"gorgonia.org/tensor"
)

// addKernel is a + b for tensors of one shape (residual connections, summed losses). Unlike
// gorgonia's Add it writes into a reused buffer instead of allocating every run.
type addKernel struct{ dims int }

func (k *addKernel) name() string     { return "Add" }
func (k *addKernel) inputDims() []int { return []int{k.dims, k.dims} }
func (k *addKernel) outDims() int     { return k.dims }
func (k *addKernel) diffWRT() []bool  { return []bool{true, true} }
func (k *addKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("%w: Add: %v and %v", ErrShape, in[0], in[1])
	}
	if k.dims == 0 {
		return tensor.ScalarShape(), nil
	}
	return in[0].Clone(), nil
}

func (k *addKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		addInto(data[float32](out), data[float32](in[0]), data[float32](in[1]))
	} else {
		addInto(data[float64](out), data[float64](in[0]), data[float64](in[1]))
	}
	return nil
}

func (k *addKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		copy(data[float32](grads[0]), data[float32](dOut))
		copy(data[float32](grads[1]), data[float32](dOut))
	} else {
		copy(data[float64](grads[0]), data[float64](dOut))
		copy(data[float64](grads[1]), data[float64](dOut))
	}
	return nil
}

// addInto writes a + b to dst (float32 with the AVX2 kernel; serial: the sum is bound by
// memory, and a parallel split would cost allocations in every step).
func addInto[T Float](dst, a, b []T) {
	if a32, ok := any(a).([]float32); ok && asm.Available && len(a) >= 8 {
		b32, d32 := any(b).([]float32)[:len(a)], any(dst).([]float32)[:len(a)]
		asm.Add8(unsafe.Pointer(&a32[0]), unsafe.Pointer(&b32[0]), unsafe.Pointer(&d32[0]), len(a)&^7)
		for i := len(a) &^ 7; i < len(a); i++ {
			d32[i] = a32[i] + b32[i]
		}
		return
	}
	b = b[:len(a)]
	dst = dst[:len(a)]
	for i, v := range a {
		dst[i] = v + b[i]
	}
}

// AddTo adds src to dst element by element (dst[i] += src[i], i < len(dst); src at least as
// long), with the AVX2 kernel where the CPU has it: the same bits as the plain loop. The
// trainer sums the shards' gradients with it.
func AddTo(dst, src []float32) {
	addInto(dst, dst, src[:len(dst)])
}
