package supernet

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

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

// Initialisation schemes, as written in InitOptions.Scheme (and the model.init key).
const (
	// SchemeTruncNormal is timm's ViT initialisation: every matrix, the class token and the
	// positions from a normal of std 0.02 truncated to ±2 std; biases at zero.
	SchemeTruncNormal = "trunc_normal"
	// SchemePyTorch is PyTorch's default for nn.Linear (kaiming_uniform with a = sqrt(5)):
	// each matrix and its bias uniform in ±1/sqrt(fan_in), fan_in being the matrix's number
	// of columns at the supernet's full size. The class token and the positions stay
	// truncated-normal (std 0.02), as PyTorch ViTs initialise them by hand.
	SchemePyTorch = "pytorch"
)

// InitOptions chooses how NewParamsWith initialises the weights; the zero value is
// NewParams' initialisation.
type InitOptions struct {
	// Scheme is SchemeTruncNormal or SchemePyTorch; empty means SchemeTruncNormal.
	Scheme string
	// ZeroInitResidual starts each block's attn.proj and mlp.fc2 (weights and biases) at
	// zero, so every residual branch first adds nothing and the network starts as its
	// embedding followed by the head (BigNAS zero-initialises the last norm of each
	// residual block for the same reason: every subnet then starts out equal).
	ZeroInitResidual bool
}

// Validate checks the scheme name.
func (o InitOptions) Validate() error {
	switch o.Scheme {
	case "", SchemeTruncNormal, SchemePyTorch:
		return nil
	}
	return fmt.Errorf("supernet: unknown initialisation %q, want %q or %q", o.Scheme, SchemeTruncNormal, SchemePyTorch)
}

// NewParams allocates and initialises the weights of a, deterministically from seed, with
// the default initialisation (InitOptions{}).
func NewParams(a arch.Arch, dt tensor.Dtype, seed uint64) (*Params, error) {
	return NewParamsWith(a, dt, seed, InitOptions{})
}

// NewParamsWith allocates and initialises the weights of a, deterministically from seed and
// the options. Each tensor draws from its own generator, so an option changes only the
// tensors it is about.
func NewParamsWith(a arch.Arch, dt tensor.Dtype, seed uint64, o InitOptions) (*Params, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("supernet: weights must be float32 or float64, not %v", dt)
	}
	spec := Spec(a)
	var fanIn map[string]int
	if o.Scheme == SchemePyTorch {
		fanIn = linearFanIn(spec)
	}
	p := &Params{byName: map[string]*tensor.Dense{}}
	for i, s := range spec {
		t := tensor.New(tensor.WithShape(s.Shape...), tensor.Of(dt))
		// one generator per tensor, so adding a tensor does not change the others
		r := rand.New(rand.NewPCG(seed, uint64(i)+1))
		n := t.Shape().TotalSize()
		bound := 0.0
		if f, ok := fanIn[s.Name]; ok {
			bound = 1 / math.Sqrt(float64(f))
		}
		zero := o.ZeroInitResidual && isResidualOutput(s.Name)
		for j := 0; j < n && !zero; j++ {
			var v float64
			switch {
			case bound > 0:
				v = bound * (2*r.Float64() - 1)
			case s.Init == InitNormal:
				v = truncNormal(r) * 0.02
			case s.Init == InitOnes:
				v = 1
			case s.Init == InitIdentity:
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

// linearFanIn maps the weight and bias of every linear map of spec (the decayed matrices:
// patch embedding, qkv, proj, fc1, fc2, head) to the map's fan-in, its number of columns.
func linearFanIn(spec []TensorSpec) map[string]int {
	out := map[string]int{}
	for _, s := range spec {
		if s.Decay && len(s.Shape) == 2 && strings.HasSuffix(s.Name, ".weight") {
			out[s.Name] = s.Shape[1]
			out[strings.TrimSuffix(s.Name, ".weight")+".bias"] = s.Shape[1]
		}
	}
	return out
}

// isResidualOutput reports whether a tensor is the last map of a block's residual branch.
func isResidualOutput(name string) bool {
	if !strings.HasPrefix(name, "blocks.") {
		return false
	}
	for _, suffix := range []string{".attn.proj.weight", ".attn.proj.bias", ".mlp.fc2.weight", ".mlp.fc2.bias"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
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
