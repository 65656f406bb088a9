package modelfile

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

func testModel(t testing.TB) *Model {
	a := arch.Default()
	a.Layers = arch.Uniform(2, arch.Layer{Heads: 2, MLP: 16})
	p, err := supernet.NewParams(a, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	sp := arch.Space{HeadChoices: []int{1, 2}, MLPChoices: []int{8, 16}, DepthChoices: []int{1, 2}}
	return &Model{Kind: KindSupernet, Arch: a, Space: &sp, Params: p, Preprocess: Preprocess{Mean: 0.3, Std: 0.4},
		Extra: map[string]string{"note": "x"}}
}

func TestModelRoundTrip(t *testing.T) {
	m := testModel(t)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != m.Kind || got.Arch.JSON() != m.Arch.JSON() || got.Extra["note"] != "x" || got.Preprocess.Std != 0.4 {
		t.Fatalf("round trip: %+v", got)
	}
	for _, n := range m.Params.Names() {
		a, b := m.Params.Float32(n), got.Params.Float32(n)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] changed", n, i)
			}
		}
	}
}

// TestModelMismatch: tensors that do not fit the architecture, and broken metadata, are
// rejected with the tensor or key named.
func TestModelMismatch(t *testing.T) {
	for _, c := range []struct {
		name string
		mut  func(f *checkpoint.File)
		want string
	}{
		{"wrong shape", func(f *checkpoint.File) {
			tt, _ := f.Get("blocks.1.mlp.fc1.weight")
			tt.Shape = []int{8, 128}
		}, `"blocks.1.mlp.fc1.weight" has shape [8 128], the architecture needs [16 64]`},
		{"missing tensor", func(f *checkpoint.File) {
			f.Tensors = f.Tensors[:len(f.Tensors)-1]
		}, `"head.bias" is missing`},
		{"extra tensor", func(f *checkpoint.File) {
			f.Tensors = append(f.Tensors, checkpoint.Tensor{Name: "blocks.9.attn.qkv.weight", Shape: []int{1}, Data: []float32{0}})
		}, `unexpected tensor "blocks.9.attn.qkv.weight"`},
		{"not a model", func(f *checkpoint.File) { f.Metadata[KeyFormat] = "pt" }, `metadata "format" is "pt"`},
		{"bad arch", func(f *checkpoint.File) {
			f.Metadata[KeyArch] = strings.Replace(f.Metadata[KeyArch], `"dim":64`, `"dim":-1`, 1)
		}, "dim"},
		{"unknown arch field", func(f *checkpoint.File) {
			f.Metadata[KeyArch] = strings.Replace(f.Metadata[KeyArch], `"dim"`, `"width"`, 1)
		}, "width"},
		{"space beyond arch", func(f *checkpoint.File) {
			f.Metadata[KeySpace] = `{"head_choices":[1,3],"mlp_choices":[8,16],"depth_choices":[1,2]}`
		}, "head_choices"},
		{"bad preprocess", func(f *checkpoint.File) { f.Metadata[KeyPreprocess] = `{"mean":0,"std":0}` }, "std"},
		{"expanded without positions", func(f *checkpoint.File) {
			f.Metadata[KeyKind] = KindExpanded
			delete(f.Metadata, KeySpace)
		}, "has no positions"},
		{"space on a fine-tuned model", func(f *checkpoint.File) { f.Metadata[KeyKind] = KindFinetuned }, "only for supernets"},
		{"speech task on image inputs", func(f *checkpoint.File) {
			f.Metadata[KeyArch] = strings.Replace(f.Metadata[KeyArch], `"task":"image"`, `"task":"speech"`, 1)
		}, "front end"},
		{"speech front end that does not fit", func(f *checkpoint.File) {
			f.Metadata[KeyArch] = strings.Replace(f.Metadata[KeyArch], `"task":"image"`, `"task":"speech"`, 1)
			f.Metadata[KeyPreprocess] = `{"mean":0,"std":1,"frontend":{"mels":40,"frames":100}}`
		}, "40 mel bins x 100 frames"},
		{"image task with a front end", func(f *checkpoint.File) {
			f.Metadata[KeyPreprocess] = `{"mean":0,"std":1,"frontend":{"mels":40,"frames":100}}`
		}, "spectrogram front end"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := testModel(t).File()
			if err != nil {
				t.Fatal(err)
			}
			c.mut(f)
			_, err = FromFile(f)
			if !errors.Is(err, ErrNotModel) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrNotModel mentioning %q", err, c.want)
			}
		})
	}
}
