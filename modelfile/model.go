// Package modelfile is the tool's model file: a safetensors file (package checkpoint is
// the codec) whose metadata says what the tensors are. It owns the kinds of model, the
// metadata keys (architecture, search space, preprocessing, class names, extraction
// manifest, expansion plan and transforms, provenance, the training data's record), the resume files of training runs,
// and the checks that a file's parts agree with each other before anything uses it.
package modelfile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
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
	// KeyProvenance holds the Provenance JSON: where the model came from.
	KeyProvenance = "provenance"
	// KeyManifest holds an extracted model's manifest (which units were kept and why).
	KeyManifest = "manifest"
	// KeyPlan and KeyTransforms describe an expansion: the position -> layer list and the
	// transforms' settings.
	KeyPlan       = "plan"
	KeyTransforms = "transforms"
	// KeyNote is a free-form remark (e.g. "trained from scratch").
	KeyNote = "note"
	// KeyClasses holds the class names in label order, a JSON list of strings, one per
	// class (kept in Extra and copied to every model derived from the supernet). Files
	// written before it existed lack it; readers then name classes by their labels.
	KeyClasses = "classes"
	// FormatModel is the value of KeyFormat in every model file this tool writes.
	FormatModel = "ofa-model/1"
)

// Kinds of model.
const (
	KindSupernet  = "supernet"
	KindExtracted = "extracted"
	KindExpanded  = "expanded"
	KindFinetuned = "finetuned"
	// KindDense is a model trained alone from random weights, not derived from a supernet:
	// the dense baseline (the supernet's architecture) and the baselines of a budget's size
	// trained from scratch.
	KindDense = "dense"
)

// ErrNotModel is wrapped when a valid safetensors file is not a model of this tool (or its
// architecture and tensors disagree).
var ErrNotModel = errors.New("not an ofa model")

// Preprocess says how raw inputs become model inputs: x = (pixel/255 - Mean[c]) / Std[c]
// for images (spectrogram front ends record their own settings in Frontend).
//
// Files written before per-channel statistics existed carry only the scalars Mean and Std,
// which then apply to every channel; they stay valid. A model whose channels differ carries
// ChannelMean and ChannelStd (one entry per input channel) and, in Mean and Std, their
// averages for readers that know only the scalars.
type Preprocess struct {
	Mean     float32         `json:"mean"`
	Std      float32         `json:"std"`
	Frontend json.RawMessage `json:"frontend,omitempty"`
	// ChannelMean and ChannelStd are empty (the scalars apply) or hold one value per channel.
	ChannelMean []float32 `json:"channel_mean,omitempty"`
	ChannelStd  []float32 `json:"channel_std,omitempty"`
	// Resize names how raw images of another size become the model's input (see
	// data.ResizeShorterCentreCrop); empty for models whose data needed no resize.
	Resize string `json:"resize,omitempty"`
}

// ImagePreprocess returns the preprocessing for per-channel statistics: the scalar form
// alone when every channel has the same mean and std (so that one-channel models keep the
// file layout they always had), the per-channel form with averaged scalars otherwise.
func ImagePreprocess(mean, std []float32) Preprocess {
	if len(mean) == 0 || len(mean) != len(std) {
		panic(fmt.Sprintf("modelfile: ImagePreprocess: %d means, %d stds", len(mean), len(std)))
	}
	same := true
	var m, s float64
	for c := range mean {
		same = same && mean[c] == mean[0] && std[c] == std[0]
		m += float64(mean[c])
		s += float64(std[c])
	}
	if same {
		return Preprocess{Mean: mean[0], Std: std[0]}
	}
	n := float64(len(mean))
	return Preprocess{Mean: float32(m / n), Std: float32(s / n),
		ChannelMean: append([]float32(nil), mean...), ChannelStd: append([]float32(nil), std...)}
}

// PerChannel returns the mean and std of each of c channels: ChannelMean and ChannelStd
// if set, else the scalars repeated.
func (p Preprocess) PerChannel(c int) (mean, std []float32) {
	if len(p.ChannelMean) > 0 {
		return append([]float32(nil), p.ChannelMean...), append([]float32(nil), p.ChannelStd...)
	}
	mean, std = make([]float32, c), make([]float32, c)
	for i := range c {
		mean[i], std[i] = p.Mean, p.Std
	}
	return mean, std
}

// Validate checks that every statistic is finite with std > 0 and that per-channel values,
// if present, number channels.
func (p Preprocess) Validate(channels int) error {
	ok := func(m, s float32) bool {
		return s > 0 && !math.IsInf(float64(s), 0) && !math.IsNaN(float64(m)) && !math.IsInf(float64(m), 0)
	}
	if !ok(p.Mean, p.Std) {
		return fmt.Errorf("mean %v, std %v: want finite values and std > 0", p.Mean, p.Std)
	}
	if len(p.ChannelMean) == 0 && len(p.ChannelStd) == 0 {
		return nil
	}
	if len(p.ChannelMean) != channels || len(p.ChannelStd) != channels {
		return fmt.Errorf("%d channel means and %d channel stds for a %d-channel input, want %d of each",
			len(p.ChannelMean), len(p.ChannelStd), channels, channels)
	}
	for c := range channels {
		if !ok(p.ChannelMean[c], p.ChannelStd[c]) {
			return fmt.Errorf("channel %d: mean %v, std %v: want finite values and std > 0", c, p.ChannelMean[c], p.ChannelStd[c])
		}
	}
	return nil
}

// Model is a checkpoint's content: the architecture, the search space for supernets, the
// weights and free-form extra metadata.
type Model struct {
	Kind       string
	Arch       arch.Arch
	Space      *arch.Space // nil unless Kind is supernet
	Preprocess Preprocess
	Params     *supernet.Params
	// Provenance says where the model came from (nil for files written before it existed).
	Provenance *Provenance
	// Data is the dataset the model was trained on (nil for files written before it existed).
	Data *DataRecord
	// Extra metadata written and read verbatim (e.g. KeyManifest for extracted models).
	Extra map[string]string
}

// Provenance records what a model was made from, so a file alone says which supernet and
// which configuration produced it.
type Provenance struct {
	// Supernet is the path of the supernet file the model derives from, as given, and
	// SupernetSHA256 its content hash (empty for a supernet itself).
	Supernet       string `json:"supernet,omitempty"`
	SupernetSHA256 string `json:"supernet_sha256,omitempty"`
	// Step says which lifecycle step wrote the model (train, extract, expand, finetune, ...).
	Step string `json:"step"`
	// Config is the configuration that made the model, as the tool stores it (YAML with
	// every key, loadable as a configuration file).
	Config string `json:"config,omitempty"`
}

// FileSHA256 returns the hex SHA-256 of a file's content (for Provenance.SupernetSHA256).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("modelfile: %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// File converts the model to a checkpoint File (float32 tensors in parameter order).
func (m *Model) File() (*checkpoint.File, error) {
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
	if m.Provenance != nil {
		b, err := json.Marshal(m.Provenance)
		if err != nil {
			return nil, err
		}
		meta[KeyProvenance] = string(b)
	}
	if m.Data != nil {
		b, err := json.Marshal(m.Data)
		if err != nil {
			return nil, err
		}
		meta[KeyData] = string(b)
	}
	f := &checkpoint.File{Metadata: meta}
	for _, name := range m.Params.Names() {
		t := m.Params.Get(name)
		f.Tensors = append(f.Tensors, checkpoint.Tensor{Name: name, Shape: append([]int(nil), t.Shape()...), Data: m.Params.Float32(name)})
	}
	return f, nil
}

// Save writes m to path atomically.
func Save(path string, m *Model) error {
	f, err := m.File()
	if err != nil {
		return fmt.Errorf("modelfile: %s: %w", path, err)
	}
	return checkpoint.WriteFile(path, f)
}

// Load reads and validates a model file: the format marker, the architecture (and space),
// and that the tensors are exactly the ones the architecture needs.
func Load(path string) (*Model, error) {
	if err := CheckComplete(path); err != nil {
		return nil, err
	}
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		return nil, err
	}
	m, err := FromFile(f)
	if err != nil {
		return nil, fmt.Errorf("modelfile: %s: %w", path, err)
	}
	return m, nil
}

// FromFile interprets a decoded safetensors file as a model.
func FromFile(f *checkpoint.File) (*Model, error) {
	meta := f.Metadata
	if meta[KeyFormat] != FormatModel {
		return nil, fmt.Errorf("%w: metadata %q is %q, want %q", ErrNotModel, KeyFormat, meta[KeyFormat], FormatModel)
	}
	m := &Model{Kind: meta[KeyKind], Extra: map[string]string{}}
	switch m.Kind {
	case KindSupernet, KindExtracted, KindExpanded, KindFinetuned, KindDense:
	default:
		return nil, fmt.Errorf("%w: metadata %q is %q, want one of supernet, extracted, expanded, finetuned, dense", ErrNotModel, KeyKind, m.Kind)
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
	if err := m.Preprocess.Validate(a.InChannels); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %v", ErrNotModel, KeyPreprocess, err)
	}
	if err := checkConsistent(m); err != nil {
		return nil, err
	}
	if s, ok := meta[KeyProvenance]; ok {
		var pv Provenance
		if err := json.Unmarshal([]byte(s), &pv); err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %v", ErrNotModel, KeyProvenance, err)
		}
		m.Provenance = &pv
	}
	if s, ok := meta[KeyData]; ok {
		if m.Data, err = parseDataRecord(s); err != nil {
			return nil, err
		}
		if d := m.Data; d.Task != a.Task || d.Channels != a.InChannels || d.Height != a.InHeight || d.Width != a.InWidth || len(d.Classes) != a.Classes {
			return nil, fmt.Errorf("%w: metadata %q describes %s data of %dx%dx%d with %d classes, but the model is %s with %dx%dx%d inputs and %d classes",
				ErrNotModel, KeyData, d.Task, d.Channels, d.Height, d.Width, len(d.Classes), a.Task, a.InChannels, a.InHeight, a.InWidth, a.Classes)
		}
	}
	for k, v := range meta {
		switch k {
		case KeyFormat, KeyKind, KeyArch, KeySpace, KeyPreprocess, KeyProvenance, KeyData:
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

// checkConsistent refuses files whose parts contradict each other: an expanded model
// without positions (or a supernet or extracted model with them), a space on a model that
// is not a supernet, and a task whose preprocessing does not describe its input.
func checkConsistent(m *Model) error {
	a := m.Arch
	switch {
	case m.Kind == KindExpanded && !a.Expanded():
		return fmt.Errorf("%w: kind %q but the architecture has no positions", ErrNotModel, m.Kind)
	case (m.Kind == KindSupernet || m.Kind == KindExtracted) && a.Expanded():
		return fmt.Errorf("%w: kind %q but the architecture has positions (only expanded and fine-tuned expanded models do)", ErrNotModel, m.Kind)
	case m.Kind != KindSupernet && m.Space != nil:
		return fmt.Errorf("%w: metadata %q is only for supernets, this is kind %q", ErrNotModel, KeySpace, m.Kind)
	}
	fe := m.Preprocess.Frontend
	switch a.Task {
	case arch.TaskSpeech:
		var f struct {
			Mels   int `json:"mels"`
			Frames int `json:"frames"`
		}
		if len(fe) == 0 {
			return fmt.Errorf("%w: task speech needs the spectrogram front end in metadata %q", ErrNotModel, KeyPreprocess)
		}
		if err := json.Unmarshal(fe, &f); err != nil {
			return fmt.Errorf("%w: metadata %q: frontend: %v", ErrNotModel, KeyPreprocess, err)
		}
		if a.InChannels != 1 || f.Mels != a.InHeight || f.Frames != a.InWidth {
			return fmt.Errorf("%w: task speech with a front end of %d mel bins x %d frames, but the input is %dx%dx%d (want 1x%dx%d)",
				ErrNotModel, f.Mels, f.Frames, a.InChannels, a.InHeight, a.InWidth, f.Mels, f.Frames)
		}
	case arch.TaskImage:
		if len(fe) != 0 {
			return fmt.Errorf("%w: task image, but metadata %q carries a spectrogram front end", ErrNotModel, KeyPreprocess)
		}
	}
	return nil
}

// ReadHeader reads a model file's metadata without its weights: the architecture, the
// provenance and the data record (Params stays nil), so that commands can check their
// arguments and choose their configuration before loading the weights.
func ReadHeader(path string) (*Model, error) {
	meta, err := checkpoint.ReadMetadata(path, checkpoint.Limits{})
	if err != nil {
		return nil, err
	}
	a, err := arch.ParseArch(meta[KeyArch])
	if err != nil {
		return nil, fmt.Errorf("modelfile: %s: %w: metadata %q: %w", path, ErrNotModel, KeyArch, err)
	}
	m := &Model{Kind: meta[KeyKind], Arch: a}
	if s, ok := meta[KeyProvenance]; ok {
		var pv Provenance
		if err := json.Unmarshal([]byte(s), &pv); err != nil {
			return nil, fmt.Errorf("modelfile: %s: %w: metadata %q: %v", path, ErrNotModel, KeyProvenance, err)
		}
		m.Provenance = &pv
	}
	if s, ok := meta[KeyData]; ok {
		if m.Data, err = parseDataRecord(s); err != nil {
			return nil, fmt.Errorf("modelfile: %s: %w", path, err)
		}
	}
	return m, nil
}
