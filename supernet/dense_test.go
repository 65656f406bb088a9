package supernet

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"gorgonia.org/tensor"
)

type denseTensor struct {
	shape []int
	data  []float32
}

// denseFile is an in-memory dense model: tensors by name plus the file's name order.
type denseFile struct {
	names   []string
	tensors map[string]denseTensor
}

func (f *denseFile) get(name string) ([]int, []float32, bool) {
	t, ok := f.tensors[name]
	return t.shape, t.data, ok
}

func (f *denseFile) set(name string, shape []int, data []float32) {
	if _, ok := f.tensors[name]; !ok {
		f.names = append(f.names, name)
	}
	f.tensors[name] = denseTensor{shape, data}
}

func (f *denseFile) remove(name string) {
	delete(f.tensors, name)
	f.names = slices.DeleteFunc(f.names, func(n string) bool { return n == name })
}

func (f *denseFile) rename(from, to string) {
	t := f.tensors[from]
	f.remove(from)
	f.set(to, t.shape, t.data)
}

func (f *denseFile) load(a arch.Arch) (*Params, Naming, error) { return LoadDense(a, f.get, f.names) }

// ofaFile holds p's tensors under ofa's names and shapes.
func ofaFile(p *Params) *denseFile {
	f := &denseFile{tensors: map[string]denseTensor{}}
	for _, n := range p.Names() {
		f.set(n, slices.Clone(p.Get(n).Shape()), slices.Clone(p.Float32(n)))
	}
	return f
}

// timmFile holds p's tensors as timm's VisionTransformer names and shapes them, written
// independently of dense.go's tables.
func timmFile(a arch.Arch, p *Params) *denseFile {
	f := ofaFile(p)
	f.rename("patch_embed.weight", "patch_embed.proj.weight")
	f.rename("patch_embed.bias", "patch_embed.proj.bias")
	f.tensors["patch_embed.proj.weight"] = denseTensor{[]int{a.Dim, a.InChannels, a.PatchHeight, a.PatchWidth}, f.tensors["patch_embed.proj.weight"].data}
	f.tensors["cls_token"] = denseTensor{[]int{1, 1, a.Dim}, f.tensors["cls_token"].data}
	f.tensors["pos_embed"] = denseTensor{[]int{1, a.Tokens(), a.Dim}, f.tensors["pos_embed"].data}
	return f
}

// denseArch is tinyArch with 2 heads of 4 on a width of 8, the attention width timm has.
func denseArch() arch.Arch {
	a := tinyArch()
	a.InChannels = 2
	a.Layers = arch.Uniform(3, arch.Layer{Heads: 2, MLP: 12})
	return a
}

func sameParams(t *testing.T, got, want *Params) {
	t.Helper()
	if !slices.Equal(got.Names(), want.Names()) {
		t.Fatalf("names %v, want %v", got.Names(), want.Names())
	}
	for _, n := range want.Names() {
		if !slices.Equal(got.Get(n).Shape(), want.Get(n).Shape()) || !slices.Equal(got.Float32(n), want.Float32(n)) {
			t.Fatalf("tensor %s: shape %v, want %v; values differ or not", n, got.Get(n).Shape(), want.Get(n).Shape())
		}
	}
}

func TestLoadDenseBothNamings(t *testing.T) {
	a := denseArch()
	want := randomParams(t, a, tensor.Float32, 7)
	for _, tc := range []struct {
		naming Naming
		file   *denseFile
	}{
		{NamingOFA, ofaFile(want)},
		{NamingTimm, timmFile(a, want)},
	} {
		t.Run(string(tc.naming), func(t *testing.T) {
			// a shuffled file order must not matter
			slices.Reverse(tc.file.names)
			got, naming, err := tc.file.load(a)
			if err != nil {
				t.Fatal(err)
			}
			if naming != tc.naming {
				t.Errorf("naming %q, want %q", naming, tc.naming)
			}
			sameParams(t, got, want)
			// the result owns its memory: changing the source changes nothing
			tc.file.tensors["head.bias"].data[0] += 1
			if got.Float32("head.bias")[0] != want.Float32("head.bias")[0] {
				t.Error("LoadDense's weights share memory with its input")
			}
		})
	}
}

// TestLoadDenseLogits checks the loaded weights compute what the model computes: the
// supernet's largest subnet on timm-named weights equals the reference model on the
// originals.
func TestLoadDenseLogits(t *testing.T) {
	a := denseArch()
	p := randomParams(t, a, tensor.Float32, 8)
	q, _, err := timmFile(a, p).load(a)
	if err != nil {
		t.Fatal(err)
	}
	images := randomImages(a, 2, 5)
	got := forward(t, a, q, arch.Largest(a), images, 2, nn.Fused{})
	want := reference(a, p.Convert(tensor.Float64)).forward(images, 2, arch.Largest(a))
	assertClose(t, "timm-named weights", got, want, 1e-4)
}

func TestLoadDenseErrors(t *testing.T) {
	a := denseArch()
	p := randomParams(t, a, tensor.Float32, 9)
	for _, tc := range []struct {
		name   string
		naming Naming
		arch   func(*arch.Arch)
		mess   func(*denseFile)
		want   []string // substrings of the error
	}{
		{"wrong shape", NamingTimm, nil, func(f *denseFile) {
			f.set("blocks.1.mlp.fc1.weight", []int{10, 8}, make([]float32, 80))
		}, []string{`"blocks.1.mlp.fc1.weight"`, "[10 8]", "[12 8]"}},
		{"ofa shape under timm names", NamingTimm, nil, func(f *denseFile) {
			f.set("pos_embed", []int{5, 8}, make([]float32, 40))
		}, []string{`"pos_embed"`, "[5 8]", "[1 5 8]"}},
		{"timm shape under ofa names", NamingOFA, nil, func(f *denseFile) {
			f.set("cls_token", []int{1, 1, 8}, make([]float32, 8))
		}, []string{`"cls_token"`, "[1 1 8]", "[8]"}},
		{"conv weight flattened", NamingTimm, nil, func(f *denseFile) {
			f.set("patch_embed.proj.weight", []int{8, 32}, make([]float32, 256))
		}, []string{`"patch_embed.proj.weight"`, "[8 32]", "[8 2 4 4]"}},
		{"more classes", NamingOFA, nil, func(f *denseFile) {
			f.set("head.weight", []int{5, 8}, make([]float32, 40))
		}, []string{`"head.weight"`, "[5 8]", "[4 8]"}},
		{"short data", NamingOFA, nil, func(f *denseFile) {
			f.set("norm.bias", []int{8}, make([]float32, 7))
		}, []string{`"norm.bias"`, "7 values"}},
		{"missing", NamingTimm, nil, func(f *denseFile) { f.remove("blocks.2.attn.proj.bias") },
			[]string{`"blocks.2.attn.proj.bias"`, "missing"}},
		{"missing head", NamingOFA, nil, func(f *denseFile) { f.remove("head.weight"); f.remove("head.bias") },
			[]string{`"head.weight"`, "missing"}},
		{"extra", NamingOFA, nil, func(f *denseFile) { f.set("blocks.0.attn.extra", []int{1}, []float32{1}) },
			[]string{`unexpected tensor "blocks.0.attn.extra"`}},
		{"layer scale", NamingTimm, nil, func(f *denseFile) { f.set("blocks.1.ls1.gamma", []int{8}, make([]float32, 8)) },
			[]string{`"blocks.1.ls1.gamma"`, "LayerScale"}},
		{"expanded model", NamingOFA, nil, func(f *denseFile) { f.set("positions.0.norm1.weight", []int{8}, make([]float32, 8)) },
			[]string{`"positions.0.norm1.weight"`, "expanded"}},
		{"deeper model", NamingTimm, nil, func(f *denseFile) { f.set("blocks.3.norm1.weight", []int{8}, make([]float32, 8)) },
			[]string{"4 blocks", "supernet 3"}},
		{"shallower model", NamingTimm, func(a *arch.Arch) { a.Layers = append(a.Layers, a.Layers[0]) }, nil,
			[]string{"3 blocks", "supernet 4"}},
		{"duplicate", NamingOFA, nil, func(f *denseFile) { f.names = append(f.names, "norm.weight") },
			[]string{`"norm.weight"`, "twice"}},
		{"both namings", NamingOFA, nil, func(f *denseFile) {
			f.set("patch_embed.proj.weight", []int{8, 2, 4, 4}, make([]float32, 256))
		}, []string{"patch_embed.weight", "patch_embed.proj.weight", "both"}},
		{"no patch embedding", NamingOFA, nil, func(f *denseFile) { f.remove("patch_embed.weight") },
			[]string{"no patch embedding"}},
		{"timm attention narrower than dim", NamingTimm, func(a *arch.Arch) { a.Layers[1].Heads = 1 }, nil,
			[]string{"layer 1", "1 heads of 4", "dim 8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ofaFile(p)
			if tc.naming == NamingTimm {
				f = timmFile(a, p)
			}
			if tc.mess != nil {
				tc.mess(f)
			}
			b := a.Clone()
			if tc.arch != nil {
				tc.arch(&b)
			}
			got, _, err := f.load(b)
			if err == nil {
				t.Fatalf("loaded %d tensors, want an error", got.Len())
			}
			if !errors.Is(err, ErrParams) {
				t.Errorf("error %q does not wrap ErrParams", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoadDenseRefusesExpandedArch(t *testing.T) {
	a := denseArch()
	p := randomParams(t, a, tensor.Float32, 10)
	e := a.Clone()
	e.Positions = []arch.Position{{Layer: 0}, {Layer: 1}, {Layer: 2}}
	if _, _, err := ofaFile(p).load(e); !errors.Is(err, ErrParams) {
		t.Errorf("expanded architecture: error %v, want ErrParams", err)
	}
}

func TestDetectNaming(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  Naming
	}{
		{[]string{"cls_token", "patch_embed.weight"}, NamingOFA},
		{[]string{"patch_embed.proj.bias", "patch_embed.proj.weight", "cls_token"}, NamingTimm},
	} {
		got, err := DetectNaming(tc.names)
		if err != nil || got != tc.want {
			t.Errorf("DetectNaming(%v) = %q, %v; want %q", tc.names, got, err, tc.want)
		}
	}
}
