package supernet

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ofa-go/ofa/arch"
	"gorgonia.org/tensor"
)

// ErrParams is wrapped by errors about missing or mis-shaped weights.
var ErrParams = errors.New("weights do not match the architecture")

// Params is a model's weights: named tensors in a fixed order (the order of Spec), named
// exactly as in the checkpoint. Every graph built for a subnet wraps these tensors, so all
// subnets read and train the same memory.
type Params struct {
	names  []string
	byName map[string]*tensor.Dense
}

// Names returns the parameter names in their fixed order.
func (p *Params) Names() []string { return p.names }

// Get returns the named tensor, or nil.
func (p *Params) Get(name string) *tensor.Dense { return p.byName[name] }

// Len is the number of tensors.
func (p *Params) Len() int { return len(p.names) }

// Count is the number of scalar parameters.
func (p *Params) Count() int64 {
	var n int64
	for _, name := range p.names {
		n += int64(p.byName[name].Shape().TotalSize())
	}
	return n
}

// Dtype is the element type of the weights.
func (p *Params) Dtype() tensor.Dtype { return p.byName[p.names[0]].Dtype() }

// Float32 returns the named tensor's values as float32 (a copy for float64 weights).
func (p *Params) Float32(name string) []float32 {
	t := p.byName[name]
	switch d := t.Data().(type) {
	case []float32:
		return d
	case []float64:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out
	}
	panic("supernet: unsupported weight type")
}

// Clone returns a deep copy.
func (p *Params) Clone() *Params {
	q := &Params{names: append([]string(nil), p.names...), byName: make(map[string]*tensor.Dense, len(p.names))}
	for _, n := range p.names {
		q.byName[n] = p.byName[n].Clone().(*tensor.Dense)
	}
	return q
}

// Convert returns a copy of p with elements of type dt (float32 or float64).
func (p *Params) Convert(dt tensor.Dtype) *Params {
	q := &Params{names: append([]string(nil), p.names...), byName: make(map[string]*tensor.Dense, len(p.names))}
	for _, n := range p.names {
		src := p.byName[n]
		dst := tensor.New(tensor.WithShape(src.Shape().Clone()...), tensor.Of(dt))
		for i := 0; i < src.Shape().TotalSize(); i++ {
			setAt(dst, i, at(src, i))
		}
		q.byName[n] = dst
	}
	return q
}

// At reads element i (row-major) of a float32 or float64 tensor as float64.
func At(t *tensor.Dense, i int) float64 { return at(t, i) }

// SetAt writes element i (row-major) of a float32 or float64 tensor.
func SetAt(t *tensor.Dense, i int, v float64) { setAt(t, i, v) }

func at(t *tensor.Dense, i int) float64 {
	switch d := t.Data().(type) {
	case []float32:
		return float64(d[i])
	case []float64:
		return d[i]
	}
	panic("supernet: unsupported weight type")
}

func setAt(t *tensor.Dense, i int, v float64) {
	switch d := t.Data().(type) {
	case []float32:
		d[i] = float32(v)
	case []float64:
		d[i] = v
	default:
		panic("supernet: unsupported weight type")
	}
}

// Init says how a tensor starts.
type Init int

// Initialisations, following timm's ViT: weights from a truncated normal (std 0.02),
// biases and shifts at zero, norm scales at one; transforms start at identity.
const (
	InitNormal   Init = iota // truncated normal, std 0.02
	InitZeros                // 0
	InitOnes                 // 1
	InitIdentity             // square identity matrix
)

// TensorSpec is one stored tensor of an architecture.
type TensorSpec struct {
	Name  string
	Shape []int
	Init  Init
	// Decay says whether AdamW's weight decay applies (matrices yes; norms, biases, the
	// class token, positions and transforms no).
	Decay bool
}

// NewParams allocates and initialises the weights of a, deterministically from seed.
func NewParams(a arch.Arch, dt tensor.Dtype, seed uint64) (*Params, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("supernet: weights must be float32 or float64, not %v", dt)
	}
	p := &Params{byName: map[string]*tensor.Dense{}}
	for i, s := range Spec(a) {
		t := tensor.New(tensor.WithShape(s.Shape...), tensor.Of(dt))
		// one generator per tensor, so adding a tensor does not change the others
		r := rand.New(rand.NewPCG(seed, uint64(i)+1))
		n := t.Shape().TotalSize()
		for j := 0; j < n; j++ {
			var v float64
			switch s.Init {
			case InitNormal:
				v = truncNormal(r) * 0.02
			case InitOnes:
				v = 1
			case InitIdentity:
				if j/s.Shape[1] == j%s.Shape[1] {
					v = 1
				}
			}
			setAt(t, j, v)
		}
		p.names = append(p.names, s.Name)
		p.byName[s.Name] = t
	}
	return p, nil
}

// truncNormal draws a standard normal truncated to [-2, 2].
func truncNormal(r *rand.Rand) float64 {
	for {
		v := r.NormFloat64()
		if math.Abs(v) <= 2 {
			return v
		}
	}
}

// FromTensors builds Params for architecture a from named float32 data (a checkpoint's
// tensors), checking that exactly the expected tensors are present with the expected shapes.
func FromTensors(a arch.Arch, get func(name string) (shape []int, values []float32, ok bool), names []string) (*Params, error) {
	spec := Spec(a)
	want := make(map[string]bool, len(spec))
	p := &Params{byName: map[string]*tensor.Dense{}}
	for _, s := range spec {
		want[s.Name] = true
		shape, values, ok := get(s.Name)
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q is missing", ErrParams, s.Name)
		}
		if !slices.Equal(shape, s.Shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, the architecture needs %v", ErrParams, s.Name, shape, s.Shape)
		}
		t := tensor.New(tensor.WithShape(s.Shape...), tensor.WithBacking(append([]float32(nil), values...)))
		p.names = append(p.names, s.Name)
		p.byName[s.Name] = t
	}
	for _, n := range names {
		if !want[n] {
			return nil, fmt.Errorf("%w: unexpected tensor %q", ErrParams, n)
		}
	}
	return p, nil
}
