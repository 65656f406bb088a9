package supernet

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"gorgonia.org/tensor"
)

// Naming says which tensor names a dense model uses.
type Naming string

// The namings LoadDense accepts.
const (
	// NamingOFA is this tool's naming (docs/FORMAT.md): the names and shapes of Spec.
	NamingOFA Naming = "ofa"
	// NamingTimm is the state_dict of timm's VisionTransformer (class token, no LayerScale,
	// no register tokens, head on the class token): ofa's names except
	// patch_embed.proj.weight (D, C, ph, pw) and patch_embed.proj.bias, with cls_token
	// (1, 1, D) and pos_embed (1, T, D).
	NamingTimm Naming = "timm"
)

// timmName maps ofa's names to timm's where they differ; every other name is shared.
var timmName = map[string]string{
	"patch_embed.weight": "patch_embed.proj.weight",
	"patch_embed.bias":   "patch_embed.proj.bias",
}

// timmShape returns the shape timm stores the tensor of spec s in. The values are in the
// same row-major order, so a timm tensor becomes ofa's by a reshape alone.
func timmShape(a arch.Arch, s TensorSpec) []int {
	switch s.Name {
	case "patch_embed.weight":
		return []int{a.Dim, a.InChannels, a.PatchHeight, a.PatchWidth}
	case "cls_token":
		return []int{1, 1, a.Dim}
	case "pos_embed":
		return []int{1, a.Tokens(), a.Dim}
	}
	return s.Shape
}

// denseExtras explains tensors of other ViT variants, which ofa's models do not have.
var denseExtras = []struct{ part, why string }{
	{".ls1.", "timm's LayerScale (init_values), which ofa's blocks do not have"},
	{".ls2.", "timm's LayerScale (init_values), which ofa's blocks do not have"},
	{"reg_token", "register tokens, which ofa's models do not have"},
	{"fc_norm.", "a norm for average pooling (global_pool=\"avg\"); ofa's head reads the class token"},
	{"norm_pre.", "a norm before the blocks, which ofa's models do not have"},
	{".q_norm.", "query/key normalisation (qk_norm), which ofa's attention does not have"},
	{".k_norm.", "query/key normalisation (qk_norm), which ofa's attention does not have"},
	{"attn_pool.", "attention pooling; ofa's head reads the class token"},
	{"positions.", "a position of an expanded model (layer reuse), which cannot seed a supernet"},
}

// DetectNaming says whether names are ofa's or timm's, from the patch embedding's name:
// patch_embed.weight (ofa) or patch_embed.proj.weight (timm). A mix of both, or neither,
// is an error wrapping ErrParams.
func DetectNaming(names []string) (Naming, error) {
	ofa, timm := slices.Contains(names, "patch_embed.weight"), slices.Contains(names, "patch_embed.proj.weight")
	switch {
	case ofa && timm:
		return "", fmt.Errorf("%w: both patch_embed.weight (ofa's name) and patch_embed.proj.weight (timm's) are present", ErrParams)
	case ofa:
		return NamingOFA, nil
	case timm:
		return NamingTimm, nil
	}
	return "", fmt.Errorf("%w: no patch embedding: want patch_embed.weight (ofa's name) or patch_embed.proj.weight (timm's)", ErrParams)
}

// LoadDense returns the weights of a supernet with architecture a (its largest size) taken
// from a trained dense model, so that supernet training starts from it. The dense model's
// tensors are read through tensors (shape and row-major float32 values by name); names
// lists every tensor it has. Either naming is accepted (see Naming; the patch embedding's
// name decides): timm tensors are reshaped to ofa's layout, which stores the same values in
// the same order (q, k, v row blocks with each head's rows contiguous; the class token
// first in pos_embed; patches in (channel, row, column) order).
//
// The dense model must be a's largest subnet exactly: same depth, width, attention width,
// MLP widths, patch size, number of tokens and classes. Every shape is checked before any
// tensor is copied; a missing, unexpected or mis-shaped tensor is an error wrapping
// ErrParams that names the tensor and, for shapes, the shape found and the shape wanted.
//
// The tensors do not record everything: the head count (timm's num_heads must equal the
// heads of a's layers, and timm's head_dim is dim/num_heads, so each layer of a needs
// heads*head_dim = dim), LayerNorm's epsilon (timm's ViT uses 1e-6) and the activation
// (ofa's GELU is the tanh approximation; timm's default nn.GELU is the exact one, which
// differs from it by at most 5e-4 per activation) are the caller's to match.
func LoadDense(a arch.Arch, tensors func(name string) (shape []int, data []float32, ok bool), names []string) (*Params, Naming, error) {
	if err := a.Validate(); err != nil {
		return nil, "", err
	}
	if a.Expanded() {
		return nil, "", fmt.Errorf("%w: a dense model seeds a supernet, not an expanded model", ErrParams)
	}
	naming, err := DetectNaming(names)
	if err != nil {
		return nil, "", err
	}
	if naming == NamingTimm {
		for i, l := range a.Layers {
			if l.Heads*a.HeadDim != a.Dim {
				return nil, "", fmt.Errorf("%w: a timm ViT's attention is as wide as its dim %d (head_dim = dim/num_heads), but layer %d of the architecture has %d heads of %d",
					ErrParams, a.Dim, i, l.Heads, a.HeadDim)
			}
		}
	}
	if err := checkDenseNames(a, naming, names); err != nil {
		return nil, "", err
	}
	// source name for each of a's tensors; every shape is checked before anything is copied
	spec := Spec(a)
	source := make(map[string]string, len(spec))
	shapes := make(map[string][]int, len(spec))
	for _, s := range spec {
		src, want := s.Name, s.Shape
		if naming == NamingTimm {
			if n, ok := timmName[s.Name]; ok {
				src = n
			}
			want = timmShape(a, s)
		}
		shape, data, ok := tensors(src)
		if !ok {
			return nil, "", fmt.Errorf("%w: tensor %q is missing (%s naming)", ErrParams, src, naming)
		}
		if !slices.Equal(shape, want) {
			return nil, "", fmt.Errorf("%w: tensor %q has shape %v, the supernet's largest subnet needs %v", ErrParams, src, shape, want)
		}
		if len(data) != tensor.Shape(want).TotalSize() {
			return nil, "", fmt.Errorf("%w: tensor %q has %d values for shape %v", ErrParams, src, len(data), shape)
		}
		source[s.Name], shapes[s.Name] = src, s.Shape
	}
	p, err := FromTensors(a, func(name string) ([]int, []float32, bool) {
		_, data, ok := tensors(source[name])
		// the values were checked above; the shape is ofa's by construction
		return shapes[name], data, ok
	}, nil)
	if err != nil {
		panic("supernet: LoadDense passed tensors FromTensors refused: " + err.Error())
	}
	return p, naming, nil
}

// checkDenseNames rejects duplicate and unexpected names and a depth other than a's.
func checkDenseNames(a arch.Arch, naming Naming, names []string) error {
	want := map[string]bool{}
	for _, s := range Spec(a) {
		n := s.Name
		if naming == NamingTimm {
			if t, ok := timmName[n]; ok {
				n = t
			}
		}
		want[n] = true
	}
	seen := make(map[string]bool, len(names))
	depth := 0
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("%w: tensor %q appears twice", ErrParams, n)
		}
		seen[n] = true
		if rest, ok := strings.CutPrefix(n, "blocks."); ok {
			i, _, _ := strings.Cut(rest, ".")
			if b, err := strconv.Atoi(i); err == nil && b >= 0 && b < 1<<20 {
				depth = max(depth, b+1)
			}
		}
	}
	if depth != len(a.Layers) {
		return fmt.Errorf("%w: the dense model has %d blocks, the supernet %d", ErrParams, depth, len(a.Layers))
	}
	for _, n := range names {
		if want[n] {
			continue
		}
		for _, e := range denseExtras {
			if strings.Contains(n, e.part) {
				return fmt.Errorf("%w: unexpected tensor %q: %s", ErrParams, n, e.why)
			}
		}
		return fmt.Errorf("%w: unexpected tensor %q (%s naming)", ErrParams, n, naming)
	}
	return nil
}
