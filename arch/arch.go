// Package arch describes the shapes of the Transformers this tool trains and derives:
// the architecture stored in a checkpoint (Arch), the elastic search space of a supernet
// (Space) and one subnet inside it (Subnet). It is plain Go with no numeric code, so that
// the sampler, the cost model and the checkpoint reader can share it without gorgonia.
package arch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Task names what a model's input is.
const (
	// TaskImage: input is an image of InChannels x InHeight x InWidth pixels.
	TaskImage = "image"
	// TaskSpeech: input is a log-mel spectrogram of 1 x mel bins (InHeight) x frames (InWidth).
	TaskSpeech = "speech"
)

// ActivationGELUTanh is the only MLP activation: GELU in its tanh approximation
// (PyTorch's nn.GELU(approximate="tanh")).
const ActivationGELUTanh = "gelu_tanh"

// ErrArch is wrapped by every error about an invalid architecture or subnet.
var ErrArch = errors.New("invalid architecture")

// Layer is the stored size of one Transformer block: its number of attention heads and
// its MLP hidden width.
type Layer struct {
	Heads int `json:"heads"`
	MLP   int `json:"mlp"`
}

// Arch is a concrete pre-LayerNorm Vision-Transformer-style model: the shapes of every
// tensor in its checkpoint follow from it (see docs/FORMAT.md). A supernet's Arch has every
// layer at its maximum size; an extracted model's layers may all differ.
type Arch struct {
	Task        string  `json:"task"`
	InChannels  int     `json:"in_channels"`
	InHeight    int     `json:"in_height"`
	InWidth     int     `json:"in_width"`
	PatchHeight int     `json:"patch_height"`
	PatchWidth  int     `json:"patch_width"`
	Dim         int     `json:"dim"`
	HeadDim     int     `json:"head_dim"`
	Classes     int     `json:"classes"`
	NormEps     float64 `json:"norm_eps"`
	Activation  string  `json:"activation"`
	Layers      []Layer `json:"layers"`
	// Positions, when set, makes this an expanded model: the blocks run in the order of
	// Positions, several positions may share one layer's weights, and each position has its
	// own norms and feature transforms (see Position).
	Positions []Position `json:"positions,omitempty"`
}

// limits on sizes accepted from files, so that a hostile header cannot ask for huge tensors.
const (
	maxSide     = 4096
	maxDim      = 8192
	maxLayers   = 256
	maxHeads    = 256
	maxMLP      = 65536
	maxClasses  = 100000
	maxChannels = 64
	// whole-model limits: the fields' limits alone allow models whose parameter and MAC
	// counts overflow int64
	maxParams = 1 << 36 // 2^36 weights, 256 GiB of float32
	maxMACs   = 1 << 50 // per example
)

// Patches is the number of patch tokens (without the class token).
func (a Arch) Patches() int {
	if a.PatchHeight <= 0 || a.PatchWidth <= 0 {
		return 0
	}
	return (a.InHeight / a.PatchHeight) * (a.InWidth / a.PatchWidth)
}

// Tokens is the sequence length: patches plus the class token.
func (a Arch) Tokens() int { return a.Patches() + 1 }

// PatchSize is the length of one flattened patch: channels x patch height x patch width.
func (a Arch) PatchSize() int { return a.InChannels * a.PatchHeight * a.PatchWidth }

// Expanded reports whether the model has a position map (layer reuse).
func (a Arch) Expanded() bool { return len(a.Positions) > 0 }

// Depth is the number of blocks the model runs: its positions if expanded, else its layers.
func (a Arch) Depth() int {
	if a.Expanded() {
		return len(a.Positions)
	}
	return len(a.Layers)
}

// Validate checks every field and names the first bad one.
func (a Arch) Validate() error {
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrArch, field, fmt.Sprintf(format, args...))
	}
	switch a.Task {
	case TaskImage, TaskSpeech:
	default:
		return bad("task", "got %q, want %q or %q", a.Task, TaskImage, TaskSpeech)
	}
	if a.InChannels < 1 || a.InChannels > maxChannels {
		return bad("in_channels", "got %d, want 1..%d", a.InChannels, maxChannels)
	}
	if a.InHeight < 1 || a.InHeight > maxSide || a.InWidth < 1 || a.InWidth > maxSide {
		return bad("in_height/in_width", "got %dx%d, want 1..%d each", a.InHeight, a.InWidth, maxSide)
	}
	if a.PatchHeight < 1 || a.PatchWidth < 1 || a.InHeight%a.PatchHeight != 0 || a.InWidth%a.PatchWidth != 0 {
		return bad("patch_height/patch_width", "patch %dx%d must be positive and divide the input %dx%d",
			a.PatchHeight, a.PatchWidth, a.InHeight, a.InWidth)
	}
	if a.Dim < 1 || a.Dim > maxDim {
		return bad("dim", "got %d, want 1..%d", a.Dim, maxDim)
	}
	if a.HeadDim < 1 || a.HeadDim > maxDim {
		return bad("head_dim", "got %d, want 1..%d", a.HeadDim, maxDim)
	}
	if a.Classes < 2 || a.Classes > maxClasses {
		return bad("classes", "got %d, want 2..%d", a.Classes, maxClasses)
	}
	if !(a.NormEps > 0 && a.NormEps < 1) {
		return bad("norm_eps", "got %g, want a small positive number", a.NormEps)
	}
	if a.Activation != ActivationGELUTanh {
		return bad("activation", "got %q, want %q", a.Activation, ActivationGELUTanh)
	}
	if len(a.Layers) < 1 || len(a.Layers) > maxLayers {
		return bad("layers", "got %d layers, want 1..%d", len(a.Layers), maxLayers)
	}
	for i, l := range a.Layers {
		if l.Heads < 1 || l.Heads > maxHeads {
			return bad(fmt.Sprintf("layers[%d].heads", i), "got %d, want 1..%d", l.Heads, maxHeads)
		}
		if l.MLP < 1 || l.MLP > maxMLP {
			return bad(fmt.Sprintf("layers[%d].mlp", i), "got %d, want 1..%d", l.MLP, maxMLP)
		}
	}
	if a.Expanded() {
		if err := validatePositions(a); err != nil {
			return err
		}
	}
	if params, macs := a.sizeBound(); params > maxParams || macs > maxMACs {
		return bad("layers", "the model has about %.3g parameters and %.3g MACs per example, at most %d and %d allowed",
			params, macs, int64(maxParams), int64(maxMACs))
	}
	return nil
}

// sizeBound over-estimates the parameters and per-example MACs of a (valid in every field)
// in float64, which does not overflow: below the limits, the exact int64 counts of
// ModelCost and SubnetCost cannot overflow either.
func (a Arch) sizeBound() (params, macs float64) {
	d, t, ps, c := float64(a.Dim), float64(a.Tokens()), float64(a.PatchSize()), float64(a.Classes)
	params = ps*d + t*d + 4*d + c*d + c
	macs = t*ps*d + c*d
	block := func(l Layer) (float64, float64) {
		hd, m := float64(l.Heads)*float64(a.HeadDim), float64(l.MLP)
		return 4*hd*d + 3*hd + 2*m*d + m + 6*d, 4*t*hd*d + 2*t*t*hd + 2*t*d*m
	}
	for _, l := range a.Layers {
		p, m := block(l)
		params += p
		if !a.Expanded() {
			macs += m
		}
	}
	for _, p := range a.Positions {
		l := a.Layers[p.Layer]
		_, m := block(l)
		r, h := float64(p.LowRank), float64(l.Heads)
		params += 10*d + 2*r*d + 2*h*h
		macs += m + 2*t*d*r + 2*h*h*t*t
	}
	return params, macs
}

// Default returns the reference image model: a 4-layer ViT on 28x28 grey images with
// 7x7 patches (16 patches + class token), width 64, 4 heads of 16, MLP 256, 10 classes.
func Default() Arch {
	return Arch{
		Task: TaskImage, InChannels: 1, InHeight: 28, InWidth: 28, PatchHeight: 7, PatchWidth: 7,
		Dim: 64, HeadDim: 16, Classes: 10, NormEps: 1e-6, Activation: ActivationGELUTanh,
		Layers: Uniform(4, Layer{Heads: 4, MLP: 256}),
	}
}

// Uniform returns n copies of l.
func Uniform(n int, l Layer) []Layer {
	out := make([]Layer, n)
	for i := range out {
		out[i] = l
	}
	return out
}

// Clone returns a deep copy.
func (a Arch) Clone() Arch {
	b := a
	b.Layers = append([]Layer(nil), a.Layers...)
	if a.Positions != nil {
		b.Positions = make([]Position, len(a.Positions))
		for i, p := range a.Positions {
			b.Positions[i] = p.clone()
		}
	}
	return b
}

// JSON returns the canonical JSON encoding (used in checkpoint metadata).
func (a Arch) JSON() string {
	b, err := json.Marshal(a)
	if err != nil {
		panic("arch: " + err.Error())
	}
	return string(b)
}

// ParseArch decodes and validates an architecture, rejecting unknown fields and anything
// after the JSON object.
func ParseArch(s string) (Arch, error) {
	var a Arch
	if err := decodeStrict(s, &a); err != nil {
		return Arch{}, fmt.Errorf("%w: %w", ErrArch, err)
	}
	return a, a.Validate()
}

// decodeStrict decodes exactly one JSON value from s into v, refusing unknown fields and
// trailing data (a second value would otherwise be silently ignored).
func decodeStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
