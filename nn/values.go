package nn

import (
	"errors"
	"fmt"
	"hash/fnv"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrShape is wrapped by errors about inputs whose shapes do not fit an operation.
var ErrShape = errors.New("shape mismatch")

func hashOf(op G.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// buffer is an op's reusable output memory: a graph resized to a smaller subnet gets a view
// of the same memory, and growing back reuses it too (no allocation once the largest size
// has been seen).
type buffer struct {
	f32 []float32
	f64 []float64
	t   *tensor.Dense
}

// get returns a tensor of the given shape (a scalar shape gives one element) and dtype.
func (b *buffer) get(shape tensor.Shape, dt tensor.Dtype) *tensor.Dense {
	s := shape.Clone()
	if len(s) == 0 {
		s = tensor.Shape{1}
	}
	if b.t != nil && b.t.Dtype() == dt && b.t.Shape().Eq(s) {
		return b.t
	}
	n := s.TotalSize()
	switch dt {
	case tensor.Float32:
		if cap(b.f32) < n {
			b.f32 = make([]float32, n)
		}
		b.t = tensor.New(tensor.WithShape(s...), tensor.WithBacking(b.f32[:n]))
	case tensor.Float64:
		if cap(b.f64) < n {
			b.f64 = make([]float64, n)
		}
		b.t = tensor.New(tensor.WithShape(s...), tensor.WithBacking(b.f64[:n]))
	default:
		panic("nn: unsupported dtype " + dt.String())
	}
	return b.t
}

// reuse returns a new tensor of the given shape (for tests and one-off use).
func reuse(_ *tensor.Dense, shape tensor.Shape, dt tensor.Dtype) *tensor.Dense {
	var b buffer
	return b.get(shape, dt)
}

// denses converts gorgonia values to contiguous dense tensors; scalars become one-element
// tensors.
func denses(vals []G.Value) ([]*tensor.Dense, error) {
	out := make([]*tensor.Dense, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case *tensor.Dense:
			if v.IsView() {
				m := v.Materialize()
				d, ok := m.(*tensor.Dense)
				if !ok {
					return nil, fmt.Errorf("input %d: cannot materialise %T", i, m)
				}
				out[i] = d
			} else {
				out[i] = v
			}
		case *G.F32:
			out[i] = tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{float32(*v)}))
		case *G.F64:
			out[i] = tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{float64(*v)}))
		default:
			return nil, fmt.Errorf("input %d: unsupported value %T", i, v)
		}
	}
	return out, nil
}

func shapesOf(ts []*tensor.Dense) []tensor.Shape {
	out := make([]tensor.Shape, len(ts))
	for i, t := range ts {
		out[i] = t.Shape()
	}
	return out
}

func scalarValue(t *tensor.Dense) G.Value {
	switch d := t.Data().(type) {
	case []float32:
		return G.NewF32(d[0])
	case []float64:
		return G.NewF64(d[0])
	}
	panic("nn: scalar of unsupported type")
}

// data returns the backing slice of t as []T without allocating (Dense.Data builds its
// result through reflection and allocates on every call).
func data[T Float](t *tensor.Dense) []T {
	if t == nil {
		return nil
	}
	var z T
	if unsafe.Sizeof(z) == 4 {
		s := t.Float32s()
		return *(*[]T)(unsafe.Pointer(&s))
	}
	s := t.Float64s()
	return *(*[]T)(unsafe.Pointer(&s))
}

// isF32 reports whether the tensors hold float32 (else float64).
func isF32(t *tensor.Dense) bool { return t.Dtype() == tensor.Float32 }
