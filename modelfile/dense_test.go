package modelfile

import (
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// timmArch is the architecture of the ViT that testdata/timm_vit.py writes.
func timmArch() arch.Arch {
	return arch.Arch{
		Task: arch.TaskImage, InChannels: 3, InHeight: 8, InWidth: 12, PatchHeight: 4, PatchWidth: 4,
		Dim: 16, HeadDim: 4, Classes: 5, NormEps: 1e-6, Activation: arch.ActivationGELUTanh,
		Layers: arch.Uniform(2, arch.Layer{Heads: 4, MLP: 24}),
	}
}

// torchPython returns a Python interpreter that can import torch, or skips the test.
// Debian's python3-torch installs torch for the system interpreter, which may not be the
// first python3 on PATH.
func torchPython(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	for _, py := range candidates {
		if exec.Command(py, "-c", "import torch").Run() == nil {
			return py
		}
	}
	t.Skip("needs PyTorch for python3 (Debian package python3-torch)")
	return ""
}

// writeTimmViT runs testdata/timm_vit.py and returns the paths of the model and the batch.
func writeTimmViT(t *testing.T) (model, batch string) {
	t.Helper()
	py := torchPython(t)
	dir := t.TempDir()
	if out, err := exec.Command(py, filepath.Join("testdata", "timm_vit.py"), dir).CombinedOutput(); err != nil {
		t.Fatalf("testdata/timm_vit.py: %v\n%s", err, out)
	}
	return filepath.Join(dir, "vit.safetensors"), filepath.Join(dir, "batch.safetensors")
}

// largestLogits runs the largest subnet of (a, p) on images (B, C, H, W).
func largestLogits(t *testing.T, a arch.Arch, p *supernet.Params, images []float32, n int) []float32 {
	t.Helper()
	g := G.NewGraph()
	net, err := supernet.Build(g, a, p, arch.Largest(a), supernet.NewPatches(a, n, tensor.Float32), nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	if err := supernet.Patchify(a, images, n, net.Patches); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(net.Logits.Value().Data().([]float32))
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func batchTensor(t *testing.T, f *checkpoint.File, name string) *checkpoint.Tensor {
	t.Helper()
	x, ok := f.Get(name)
	if !ok {
		t.Fatalf("batch file has no tensor %q", name)
	}
	return x
}

// TestDenseTimmMatchesPyTorch: a timm-style ViT trained in PyTorch, loaded as the supernet's
// weights, gives PyTorch's logits at the largest subnet before any training.
func TestDenseTimmMatchesPyTorch(t *testing.T) {
	modelPath, batchPath := writeTimmViT(t)
	a := timmArch()
	d, err := LoadDenseFile(modelPath, a)
	if err != nil {
		t.Fatal(err)
	}
	if d.Naming != supernet.NamingTimm || d.Kind != "" || d.Preprocess != nil {
		t.Errorf("naming %q, kind %q, preprocess %v; want timm, none, nil", d.Naming, d.Kind, d.Preprocess)
	}
	bf, err := checkpoint.ReadFile(batchPath, checkpoint.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	images, want := batchTensor(t, bf, "images"), batchTensor(t, bf, "logits")
	n := images.Shape[0]
	if !slices.Equal(images.Shape, []int{n, a.InChannels, a.InHeight, a.InWidth}) || !slices.Equal(want.Shape, []int{n, a.Classes}) {
		t.Fatalf("batch: images %v, logits %v do not fit the architecture", images.Shape, want.Shape)
	}
	got := largestLogits(t, a, d.Params, images.Data, n)
	diff := maxAbsDiff(got, want.Data)
	t.Logf("%d examples: max |ofa - PyTorch| logit difference %.3g (logits up to %.3g)", n, diff, maxAbsDiff(want.Data, make([]float32, len(want.Data))))
	if diff > 1e-4 {
		t.Fatalf("logits %v, PyTorch's %v: max difference %g, want <= 1e-4", got, want.Data, diff)
	}

	// The tensors cannot tell 4 heads of 4 from 2 heads of 8; the head count is the
	// caller's to match, and it matters.
	b := a.Clone()
	b.HeadDim = 8
	b.Layers = arch.Uniform(2, arch.Layer{Heads: 2, MLP: 24})
	d2, err := LoadDenseFile(modelPath, b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := maxAbsDiff(largestLogits(t, b, d2.Params, images.Data, n), want.Data); diff < 1e-2 {
		t.Errorf("2 heads of 8 give PyTorch's logits (4 heads of 4) within %g: the test cannot see the head layout", diff)
	}

	// the same weights under ofa's names, in a file without metadata, load to the same Params
	var of checkpoint.File
	for _, name := range d.Params.Names() {
		of.Tensors = append(of.Tensors, checkpoint.Tensor{Name: name, Shape: slices.Clone(d.Params.Get(name).Shape()), Data: d.Params.Float32(name)})
	}
	ofaPath := filepath.Join(t.TempDir(), "ofa-names.safetensors")
	if err := checkpoint.WriteFile(ofaPath, &of); err != nil {
		t.Fatal(err)
	}
	d3, err := LoadDenseFile(ofaPath, a)
	if err != nil {
		t.Fatal(err)
	}
	if d3.Naming != supernet.NamingOFA {
		t.Errorf("naming %q, want ofa", d3.Naming)
	}
	sameBits(t, "ofa-named copy", d3.Params, d.Params)
}

func TestDenseOFAModelFile(t *testing.T) {
	a := timmArch()
	p, err := supernet.NewParams(a, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	space := arch.Space{HeadChoices: []int{2, 4}, MLPChoices: []int{12, 24}, DepthChoices: []int{1, 2}}
	pre := Preprocess{Mean: 0.25, Std: 0.5}
	dir := t.TempDir()
	save := func(name string, m *Model) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := Save(path, m); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, kind := range []string{KindSupernet, KindExtracted, KindFinetuned} {
		m := &Model{Kind: kind, Arch: a, Params: p, Preprocess: pre}
		if kind == KindSupernet {
			m.Space = &space
		}
		d, err := LoadDenseFile(save(kind+".safetensors", m), a)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if d.Naming != supernet.NamingOFA || d.Kind != kind || d.Preprocess == nil || d.Preprocess.Mean != pre.Mean || d.Preprocess.Std != pre.Std {
			t.Errorf("%s: naming %q, kind %q, preprocess %+v", kind, d.Naming, d.Kind, d.Preprocess)
		}
		sameBits(t, kind, d.Params, p)
	}

	// models whose tensors have the supernet's shapes but whose architecture differs, and
	// files that are no dense model
	heads := a.Clone()
	heads.HeadDim, heads.Layers = 8, arch.Uniform(2, arch.Layer{Heads: 2, MLP: 24})
	eps := a.Clone()
	eps.NormEps = 1e-5
	expanded := a.Clone()
	expanded.Positions = []arch.Position{{Layer: 0}, {Layer: 1}, {Layer: 1, Affine: true}}
	ep, err := supernet.NewParams(expanded, tensor.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	small := a.Clone()
	small.Layers[1].MLP = 12
	sp, err := supernet.NewParams(small, tensor.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := supernet.NewParams(heads, tensor.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	resume := save("resume.safetensors", &Model{Kind: KindSupernet, Arch: a, Space: &space, Params: p, Preprocess: pre})
	f, err := checkpoint.ReadFile(resume, checkpoint.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata[KeyFormat] = FormatResume
	if err := checkpoint.WriteFile(resume, f); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		sentinel   error
		want       []string
	}{
		{"head size", save("heads.safetensors", &Model{Kind: KindFinetuned, Arch: heads, Params: hp, Preprocess: pre}),
			supernet.ErrParams, []string{"head_dim is 8", "supernet's 4"}},
		{"norm eps", save("eps.safetensors", &Model{Kind: KindFinetuned, Arch: eps, Params: p, Preprocess: pre}),
			supernet.ErrParams, []string{"norm_eps"}},
		{"extracted smaller", save("small.safetensors", &Model{Kind: KindExtracted, Arch: small, Params: sp, Preprocess: pre}),
			supernet.ErrParams, []string{"layer 1 has 4 heads and MLP 12", "4 heads and MLP 24"}},
		{"expanded", save("expanded.safetensors", &Model{Kind: KindExpanded, Arch: expanded, Params: ep, Preprocess: pre}),
			supernet.ErrParams, []string{"expanded"}},
		{"resume file", resume, ErrNotModel, []string{"resume file"}},
		{"not a checkpoint", filepath.Join("testdata", "timm_vit.py"), checkpoint.ErrBadCheckpoint, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadDenseFile(tc.path, a)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v, want %v", err, tc.sentinel)
			}
			for _, w := range append(tc.want, tc.path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func sameBits(t *testing.T, what string, a, b *supernet.Params) {
	t.Helper()
	for _, name := range a.Names() {
		x, y := a.Get(name).Data().([]float32), b.Get(name).Data().([]float32)
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				t.Fatalf("%s: %s[%d] differs: %v vs %v", what, name, i, x[i], y[i])
			}
		}
	}
}
