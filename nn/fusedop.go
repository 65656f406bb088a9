package nn

import (
	"fmt"
	"hash"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel is one fused operation: its shapes and its forward and backward computations on
// contiguous tensors. A kernel value belongs to one graph node, so it may keep state from
// forward for backward (saved statistics) and reuse its buffers across steps.
type kernel interface {
	// name identifies the operation and its parameters (for printing and hashing).
	name() string
	// inputDims gives the number of dimensions of each input.
	inputDims() []int
	// outDims is the number of output dimensions (0: a scalar).
	outDims() int
	// outShape checks the input shapes and returns the output shape (empty: a scalar).
	outShape(in []tensor.Shape) (tensor.Shape, error)
	// diffWRT says which inputs receive gradients.
	diffWRT() []bool
	// forward writes the result into out (allocated by the caller with outShape).
	forward(in []*tensor.Dense, out *tensor.Dense) error
	// backward writes dLoss/dInput[i] into grads[i] for every i with diffWRT()[i]; grads[i]
	// has the input's shape and arbitrary contents on entry (the kernel overwrites it).
	// out is the forward result and dOut the gradient flowing into it.
	backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error
}

var opSerial atomic.Uint64

// fusedOp adapts a kernel to gorgonia's Op and SDOp interfaces. Its gradient is one
// backward node computing every input gradient in a single pass, from which small pick
// nodes hand each gradient to gorgonia's backpropagation.
type fusedOp struct {
	k      kernel
	serial uint64 // makes every instance hash differently: kernels are stateful
	out    buffer
}

func newFusedOp(k kernel) *fusedOp { return &fusedOp{k: k, serial: opSerial.Add(1)} }

// apply builds the node for kernel k applied to the inputs.
func apply(k kernel, inputs ...*G.Node) (*G.Node, error) {
	if len(inputs) != len(k.inputDims()) {
		return nil, fmt.Errorf("nn: %s takes %d inputs, got %d", k.name(), len(k.inputDims()), len(inputs))
	}
	for i, n := range inputs {
		if n.Dims() != k.inputDims()[i] {
			return nil, fmt.Errorf("%w: %s input %d (%s) has shape %v, want %d dimensions",
				ErrShape, k.name(), i, n.Name(), n.Shape(), k.inputDims()[i])
		}
	}
	return G.ApplyOp(newFusedOp(k), inputs...)
}

func tensorType(dims int, of hm.Type) hm.Type {
	if dims == 0 {
		return of
	}
	return G.TensorType{Dims: dims, Of: of}
}

func (op *fusedOp) Arity() int { return len(op.k.inputDims()) }

func (op *fusedOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	var ts []hm.Type
	for _, d := range op.k.inputDims() {
		ts = append(ts, tensorType(d, a))
	}
	ts = append(ts, tensorType(op.k.outDims(), a))
	return hm.NewFnType(ts...)
}

func (op *fusedOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	shapes, err := toShapes(ds)
	if err != nil {
		return nil, err
	}
	return op.k.outShape(shapes)
}

func toShapes(ds []G.DimSizer) ([]tensor.Shape, error) {
	shapes := make([]tensor.Shape, len(ds))
	for i, d := range ds {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("nn: input %d has no shape", i)
		}
		shapes[i] = s
	}
	return shapes, nil
}

func (op *fusedOp) Do(vals ...G.Value) (G.Value, error) {
	in, err := denses(vals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.k.name(), err)
	}
	shape, err := op.k.outShape(shapesOf(in))
	if err != nil {
		return nil, err
	}
	out := op.out.get(shape, in[0].Dtype())
	if err := op.k.forward(in, out); err != nil {
		return nil, fmt.Errorf("%s: %w", op.k.name(), err)
	}
	if op.k.outDims() == 0 {
		return scalarValue(out), nil
	}
	return out, nil
}

func (op *fusedOp) ReturnsPtr() bool     { return false }
func (op *fusedOp) CallsExtern() bool    { return false }
func (op *fusedOp) OverwritesInput() int { return -1 }
func (op *fusedOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.%s#%d", op.k.name(), op.serial)
}
func (op *fusedOp) Hashcode() uint32 { return hashOf(op) }
func (op *fusedOp) String() string   { return op.k.name() }

func (op *fusedOp) DiffWRT(inputs int) []bool { return op.k.diffWRT() }

func (op *fusedOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &backwardOp{fwd: op, serial: opSerial.Add(1)}
	args := append(append(G.Nodes{}, inputs...), output, grad)
	bwNode, err := G.ApplyOp(bw, args...)
	if err != nil {
		return nil, fmt.Errorf("nn: %s backward: %w", op.k.name(), err)
	}
	out := make(G.Nodes, len(inputs))
	for i, d := range op.k.diffWRT() {
		if !d {
			continue
		}
		p := &pickOp{bw: bw, i: i, dims: inputs[i].Dims(), shape: inputs[i].Shape().Clone()}
		if out[i], err = G.ApplyOp(p, bwNode); err != nil {
			return nil, fmt.Errorf("nn: %s gradient %d: %w", op.k.name(), i, err)
		}
	}
	return out, nil
}

// backwardOp computes every input gradient of its forward op into its own buffers and
// returns a one-element placeholder; pickOps hand the buffers on.
type backwardOp struct {
	fwd    *fusedOp
	serial uint64
	bufs   []buffer
	grads  []*tensor.Dense
	dummy  buffer
}

func (op *backwardOp) Arity() int { return len(op.fwd.k.inputDims()) + 2 }
func (op *backwardOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	var ts []hm.Type
	for _, d := range op.fwd.k.inputDims() {
		ts = append(ts, tensorType(d, a))
	}
	od := op.fwd.k.outDims()
	ts = append(ts, tensorType(od, a), tensorType(od, a), tensorType(1, a))
	return hm.NewFnType(ts...)
}
func (op *backwardOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) { return tensor.Shape{1}, nil }
func (op *backwardOp) Do(vals ...G.Value) (G.Value, error) {
	n := len(op.fwd.k.inputDims())
	all, err := denses(vals)
	if err != nil {
		return nil, fmt.Errorf("%s backward: %w", op.fwd.k.name(), err)
	}
	in, out, dOut := all[:n], all[n], all[n+1]
	if op.grads == nil {
		op.grads = make([]*tensor.Dense, n)
		op.bufs = make([]buffer, n)
	}
	for i, d := range op.fwd.k.diffWRT() {
		if d {
			op.grads[i] = op.bufs[i].get(in[i].Shape(), in[i].Dtype())
		}
	}
	if err := op.fwd.k.backward(in, out, dOut, op.grads); err != nil {
		return nil, fmt.Errorf("%s backward: %w", op.fwd.k.name(), err)
	}
	return op.dummy.get(tensor.Shape{1}, in[0].Dtype()), nil
}
func (op *backwardOp) ReturnsPtr() bool     { return false }
func (op *backwardOp) CallsExtern() bool    { return false }
func (op *backwardOp) OverwritesInput() int { return -1 }
func (op *backwardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.%s.backward#%d", op.fwd.k.name(), op.serial)
}
func (op *backwardOp) Hashcode() uint32 { return hashOf(op) }
func (op *backwardOp) String() string   { return op.fwd.k.name() + "'" }

// pickOp returns gradient i computed by a backwardOp.
type pickOp struct {
	bw    *backwardOp
	i     int
	dims  int
	shape tensor.Shape
}

func (op *pickOp) Arity() int { return 1 }
func (op *pickOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(1, a), tensorType(op.dims, a))
}
func (op *pickOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *pickOp) Do(vals ...G.Value) (G.Value, error) {
	g := op.bw.grads[op.i]
	if g == nil {
		return nil, fmt.Errorf("nn: gradient %d of %s was not computed", op.i, op.bw.fwd.k.name())
	}
	return g, nil
}
func (op *pickOp) ReturnsPtr() bool     { return false }
func (op *pickOp) CallsExtern() bool    { return false }
func (op *pickOp) OverwritesInput() int { return -1 }
func (op *pickOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.%s.grad%d#%d", op.bw.fwd.k.name(), op.i, op.bw.serial)
}
func (op *pickOp) Hashcode() uint32 { return hashOf(op) }
func (op *pickOp) String() string   { return fmt.Sprintf("%s'[%d]", op.bw.fwd.k.name(), op.i) }
