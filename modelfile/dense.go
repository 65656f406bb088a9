package modelfile

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/supernet"
)

// DenseModel is a trained dense model read to start supernet training from.
type DenseModel struct {
	// Params are the supernet's weights at full size, ready for NewTrainer.
	Params *supernet.Params
	// Naming is the naming the file used.
	Naming supernet.Naming
	// Kind is the model kind of an ofa model file (supernet, extracted or finetuned); empty
	// for other files.
	Kind string
	// Preprocess is an ofa model file's input normalisation, which the new run must use for
	// the weights to see the inputs they were trained on; nil for other files.
	Preprocess *Preprocess
}

// LoadDenseFile reads the dense model at path to start training a supernet of architecture a
// (a at its largest size). The file is either an ofa model file (kind supernet, extracted or
// finetuned; docs/FORMAT.md) whose architecture equals a (layer sizes, width, head count and
// size, patches, input size, classes, LayerNorm epsilon), or a safetensors file with a timm
// VisionTransformer's state_dict; supernet.LoadDense says what a timm model must match,
// including what its tensors cannot show (its head count and activation). The file is decoded
// under checkpoint's default Limits, so a hostile header is refused before tensors are
// allocated. Errors name path; mismatched weights wrap supernet.ErrParams.
func LoadDenseFile(path string, a arch.Arch) (*DenseModel, error) {
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		return nil, err
	}
	d, err := denseFromFile(f, a)
	if err != nil {
		return nil, fmt.Errorf("modelfile: dense model %s: %w", path, err)
	}
	return d, nil
}

func denseFromFile(f *checkpoint.File, a arch.Arch) (*DenseModel, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.Expanded() {
		return nil, fmt.Errorf("%w: a dense model seeds a supernet, not an expanded model", supernet.ErrParams)
	}
	switch f.Metadata[KeyFormat] {
	case FormatResume:
		return nil, fmt.Errorf("%w: this is a resume file; start from the run's model file (supernet.safetensors) instead", ErrNotModel)
	case FormatModel:
		m, err := FromFile(f)
		if err != nil {
			return nil, err
		}
		if m.Arch.Expanded() {
			return nil, fmt.Errorf("%w: an expanded model (layer reuse) cannot seed a supernet", supernet.ErrParams)
		}
		if err := sameDense(m.Arch, a); err != nil {
			return nil, err
		}
		pre := m.Preprocess
		return &DenseModel{Params: m.Float32Params(), Naming: supernet.NamingOFA, Kind: m.Kind, Preprocess: &pre}, nil
	}
	names := make([]string, len(f.Tensors))
	byName := make(map[string]*checkpoint.Tensor, len(f.Tensors))
	for i := range f.Tensors {
		names[i] = f.Tensors[i].Name
		byName[names[i]] = &f.Tensors[i]
	}
	p, naming, err := supernet.LoadDense(a, func(name string) ([]int, []float32, bool) {
		t, ok := byName[name]
		if !ok {
			return nil, nil, false
		}
		return t.Shape, t.Data, true
	}, names)
	if err != nil {
		return nil, err
	}
	return &DenseModel{Params: p, Naming: naming}, nil
}

// sameDense checks that an ofa model's architecture m is the supernet architecture a, field
// by field, so that an error says which size differs.
func sameDense(m, a arch.Arch) error {
	type field struct {
		name      string
		got, want any
	}
	for _, f := range []field{
		{"task", m.Task, a.Task},
		{"in_channels", m.InChannels, a.InChannels},
		{"in_height", m.InHeight, a.InHeight},
		{"in_width", m.InWidth, a.InWidth},
		{"patch_height", m.PatchHeight, a.PatchHeight},
		{"patch_width", m.PatchWidth, a.PatchWidth},
		{"dim", m.Dim, a.Dim},
		{"head_dim", m.HeadDim, a.HeadDim},
		{"classes", m.Classes, a.Classes},
		{"norm_eps", m.NormEps, a.NormEps},
		{"activation", m.Activation, a.Activation},
		{"depth", len(m.Layers), len(a.Layers)},
	} {
		if f.got != f.want {
			return fmt.Errorf("%w: the model's %s is %v, the supernet's %v", supernet.ErrParams, f.name, f.got, f.want)
		}
	}
	for i := range a.Layers {
		if m.Layers[i] != a.Layers[i] {
			return fmt.Errorf("%w: the model's layer %d has %d heads and MLP %d, the supernet's %d heads and MLP %d",
				supernet.ErrParams, i, m.Layers[i].Heads, m.Layers[i].MLP, a.Layers[i].Heads, a.Layers[i].MLP)
		}
	}
	return nil
}
