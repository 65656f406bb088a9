package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// Metadata keys of a model checkpoint (docs/FORMAT.md documents each).
const (
	KeyFormat     = "format"
	KeyKind       = "kind"
	KeyArch       = "arch"
	KeySpace      = "space"
	KeyPreprocess = "preprocess"
	// FormatModel is the value of KeyFormat in every model file this tool writes.
	FormatModel = "ofa-model/1"
)

// Kinds of model.
const (
	KindSupernet  = "supernet"
	KindExtracted = "extracted"
	KindExpanded  = "expanded"
	KindFinetuned = "finetuned"
)

// ErrNotModel is wrapped when a valid safetensors file is not a model of this tool (or its
// architecture and tensors disagree).
var ErrNotModel = errors.New("not an ofa model")

// Preprocess says how raw inputs become model inputs: x = (pixel/255 - Mean) / Std for
// images (spectrogram front ends record their own settings in Frontend).
type Preprocess struct {
	Mean     float32         `json:"mean"`
	Std      float32         `json:"std"`
	Frontend json.RawMessage `json:"frontend,omitempty"`
}

// Model is a checkpoint's content: the architecture, the search space for supernets, the
// weights and free-form extra metadata.
type Model struct {
	Kind       string
	Arch       arch.Arch
	Space      *arch.Space // nil unless Kind is supernet
	Preprocess Preprocess
	Params     *supernet.Params
	// Extra metadata written and read verbatim (e.g. "manifest" for extracted models).
	Extra map[string]string
}

// File converts the model to a checkpoint File (float32 tensors in parameter order).
func (m *Model) File() (*File, error) {
	if err := m.Arch.Validate(); err != nil {
		return nil, err
	}
	meta := map[string]string{}
	maps.Copy(meta, m.Extra)
	meta[KeyFormat] = FormatModel
	meta[KeyKind] = m.Kind
	meta[KeyArch] = m.Arch.JSON()
	if m.Space != nil {
		b, err := json.Marshal(m.Space)
		if err != nil {
			return nil, err
		}
		meta[KeySpace] = string(b)
	}
	b, err := json.Marshal(m.Preprocess)
	if err != nil {
		return nil, err
	}
	meta[KeyPreprocess] = string(b)
	f := &File{Metadata: meta}
	for _, name := range m.Params.Names() {
		t := m.Params.Get(name)
		f.Tensors = append(f.Tensors, Tensor{Name: name, Shape: append([]int(nil), t.Shape()...), Data: m.Params.Float32(name)})
	}
	return f, nil
}

// SaveModel writes m to path atomically.
func SaveModel(path string, m *Model) error {
	f, err := m.File()
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return WriteFile(path, f)
}

// LoadModel reads and validates a model checkpoint: the format marker, the architecture
// (and space), and that the tensors are exactly the ones the architecture needs.
func LoadModel(path string) (*Model, error) {
	f, err := ReadFile(path, Limits{})
	if err != nil {
		return nil, err
	}
	m, err := ModelFromFile(f)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return m, nil
}

// ModelFromFile interprets a decoded checkpoint as a model.
func ModelFromFile(f *File) (*Model, error) {
	meta := f.Metadata
	if meta[KeyFormat] != FormatModel {
		return nil, fmt.Errorf("%w: metadata %q is %q, want %q", ErrNotModel, KeyFormat, meta[KeyFormat], FormatModel)
	}
	m := &Model{Kind: meta[KeyKind], Extra: map[string]string{}}
	switch m.Kind {
	case KindSupernet, KindExtracted, KindExpanded, KindFinetuned:
	default:
		return nil, fmt.Errorf("%w: metadata %q is %q, want one of supernet, extracted, expanded, finetuned", ErrNotModel, KeyKind, m.Kind)
	}
	a, err := arch.ParseArch(meta[KeyArch])
	if err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %w", ErrNotModel, KeyArch, err)
	}
	m.Arch = a
	if s, ok := meta[KeySpace]; ok {
		var sp arch.Space
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sp); err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %v", ErrNotModel, KeySpace, err)
		}
		if err := sp.Validate(a); err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %w", ErrNotModel, KeySpace, err)
		}
		m.Space = &sp
	}
	if m.Kind == KindSupernet && m.Space == nil {
		return nil, fmt.Errorf("%w: a supernet checkpoint needs metadata %q", ErrNotModel, KeySpace)
	}
	if err := json.Unmarshal([]byte(meta[KeyPreprocess]), &m.Preprocess); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %v", ErrNotModel, KeyPreprocess, err)
	}
	if p := m.Preprocess; !(p.Std > 0) || math.IsInf(float64(p.Std), 0) || math.IsNaN(float64(p.Mean)) || math.IsInf(float64(p.Mean), 0) {
		return nil, fmt.Errorf("%w: metadata %q: mean %v, std %v: want finite values and std > 0", ErrNotModel, KeyPreprocess, p.Mean, p.Std)
	}
	for k, v := range meta {
		switch k {
		case KeyFormat, KeyKind, KeyArch, KeySpace, KeyPreprocess:
		default:
			m.Extra[k] = v
		}
	}
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	p, err := supernet.FromTensors(a, func(name string) ([]int, []float32, bool) {
		t, ok := f.Get(name)
		if !ok {
			return nil, nil, false
		}
		return t.Shape, t.Data, true
	}, names)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotModel, err)
	}
	m.Params = p
	return m, nil
}

// Float32Params returns the model's weights as float32 (a copy if they are float64).
func (m *Model) Float32Params() *supernet.Params {
	if m.Params.Dtype() == tensor.Float32 {
		return m.Params
	}
	return m.Params.Convert(tensor.Float32)
}
