package onnx_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/expand"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/export/onnx/onnxpb"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/supernet"
	"google.golang.org/protobuf/proto"
	"gorgonia.org/tensor"
)

// tolerance bounds |onnxruntime logit - ofa logit| (both float32, different kernels).
const tolerance = 1e-4

// model is one exported model and the tool's own logits for its test batch.
type model struct {
	name string
	kind string
	a    arch.Arch
	p    *supernet.Params
	s    arch.Subnet
	x    []float32 // n normalised examples
	n    int
	want []float32 // (n, classes), from supernet.Build with fused ops
}

// imageArch is a tiny 3-channel image supernet: 8x8 input, 4x4 patches (T = 5).
func imageArch() arch.Arch {
	return arch.Arch{Task: arch.TaskImage, InChannels: 3, InHeight: 8, InWidth: 8, PatchHeight: 4, PatchWidth: 4,
		Dim: 16, HeadDim: 4, Classes: 5, NormEps: 1e-6, Activation: arch.ActivationGELUTanh,
		Layers: arch.Uniform(3, arch.Layer{Heads: 4, MLP: 32})}
}

// speechArch is a tiny spectrogram model: 8 mel bins x 12 frames, 4x3 patches (a 2x4 grid).
func speechArch() arch.Arch {
	return arch.Arch{Task: arch.TaskSpeech, InChannels: 1, InHeight: 8, InWidth: 12, PatchHeight: 4, PatchWidth: 3,
		Dim: 12, HeadDim: 4, Classes: 4, NormEps: 1e-5, Activation: arch.ActivationGELUTanh,
		Layers: arch.Uniform(2, arch.Layer{Heads: 3, MLP: 24})}
}

func newParams(t *testing.T, a arch.Arch, seed uint64) *supernet.Params {
	t.Helper()
	p, err := supernet.NewParams(a, tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	randomize(p, seed)
	return p
}

// models builds every kind of model the tool writes, with random weights.
func models(t *testing.T) []model {
	t.Helper()
	const n = 3
	var ms []model
	add := func(name, kind string, a arch.Arch, p *supernet.Params, s arch.Subnet, x []float32, n int, want []float32) {
		if want == nil {
			want = ofaLogits(t, a, p, s, x, n)
		}
		ms = append(ms, model{name: name, kind: kind, a: a, p: p, s: s, x: x, n: n, want: want})
	}

	a := imageArch()
	p := newParams(t, a, 1)
	x := randomInput(a, n, 1)
	add("supernet_largest", "supernet", a, p, arch.Largest(a), x, n, nil)

	// a proper subnet: layer 1 skipped, fewer heads and neurons in the others
	sub := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 2, MLP: 16}, {Layer: 2, Heads: 3, MLP: 8}}}
	add("supernet_subnet", "supernet", a, p, sub, x, n, nil)
	subWant := ms[len(ms)-1].want

	ea, ep, err := extract.Export(a, p, sub)
	if err != nil {
		t.Fatal(err)
	}
	add("extracted", "extracted", ea, ep, arch.Largest(ea), x, n, subWant)

	// expanded from the extracted model: positions 0,1,0,1, the reused ones with every
	// transform; random weights so the gates (zero when fresh) and transforms all act
	xa, xp, err := expand.Expand(ea, ep, expand.Plan{0, 1, 0, 1}, expand.Transforms{LowRank: 2, HeadMix: true})
	if err != nil {
		t.Fatal(err)
	}
	randomize(xp, 2)
	add("expanded", "expanded", xa, xp, arch.Largest(xa), x, n, nil)

	// every transform on every position, three positions per layer
	ya, yp, err := expand.Expand(a, p, expand.Plan{0, 0, 0, 1, 1, 1, 2, 2, 2}, expand.Transforms{LowRank: 3, HeadMix: true, All: true})
	if err != nil {
		t.Fatal(err)
	}
	randomize(yp, 3)
	add("expanded_all", "expanded", ya, yp, arch.Largest(ya), x, n, nil)

	sa := speechArch()
	sp := newParams(t, sa, 4)
	add("speech", "finetuned", sa, sp, arch.Largest(sa), randomInput(sa, n, 4), n, nil)

	// the reference image shape on a real normalised Fashion-MNIST batch
	fa := arch.Default()
	fa.Dim, fa.Layers = 32, arch.Uniform(2, arch.Layer{Heads: 2, MLP: 64})
	train, _, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	l, err := data.NewLoader(train, data.LoaderConfig{BatchSize: 4, Mean: data.FashionMNISTMean, Std: data.FashionMNISTStd})
	if err != nil {
		t.Fatal(err)
	}
	var b data.Batch
	l.Batch(0, 0, &b)
	add("fashion_mnist", "supernet", fa, newParams(t, fa, 5), arch.Largest(fa), append([]float32(nil), b.X...), b.Size, nil)
	return ms
}

func export(t *testing.T, m model) []byte {
	t.Helper()
	b, err := onnx.Export(m.a, m.p, m.s, onnx.Options{Kind: m.kind, Preprocess: `{"mean":0.286,"std":0.353}`, ProducerVersion: "test"})
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	return b
}

// TestOnnxRuntimeMatchesOfa runs every exported kind in onnxruntime and compares its logits
// with the tool's own forward pass on the same batch.
func TestOnnxRuntimeMatchesOfa(t *testing.T) {
	ortDir(t)
	for _, m := range models(t) {
		t.Run(m.name, func(t *testing.T) {
			if maxAbs(m.want) < 0.1 {
				t.Fatalf("reference logits are all below 0.1 (%v): the comparison would prove little", m.want)
			}
			c, h, w := m.a.InChannels, m.a.InHeight, m.a.InWidth
			one := m.x[:c*h*w]
			outs, dims := ortRun(t, export(t, m), [][]float32{m.x, one}, [][]int{{m.n, c, h, w}, {1, c, h, w}})
			if !slices.Equal(dims[0], []int{m.n, m.a.Classes}) || !slices.Equal(dims[1], []int{1, m.a.Classes}) {
				t.Fatalf("output dims %v, want [[%d %d] [1 %d]]", dims, m.n, m.a.Classes, m.a.Classes)
			}
			d := maxAbsDiff(outs[0], m.want)
			t.Logf("%s: max |onnxruntime - ofa| = %.3g over %d logits (max |logit| %.3g)", m.name, d, len(m.want), maxAbs(m.want))
			if d > tolerance {
				t.Errorf("max |onnxruntime - ofa| = %.3g > %g\n got %v\nwant %v", d, tolerance, outs[0], m.want)
			}
			if d1 := maxAbsDiff(outs[1], m.want[:m.a.Classes]); d1 > tolerance {
				t.Errorf("batch of one: max |onnxruntime - ofa| = %.3g > %g", d1, tolerance)
			}
		})
	}
}

// TestExtractedEqualsSubnet checks that exporting a supernet's subnet and exporting the
// model extract.Export cut out of it give the same weights (the graphs name the supernet's
// and the extracted model's layers differently) and the same logits in onnxruntime.
func TestExtractedEqualsSubnet(t *testing.T) {
	ms := models(t)
	sub, ext := find(t, ms, "supernet_subnet"), find(t, ms, "extracted")
	sm, em := decode(t, export(t, sub)), decode(t, export(t, ext))
	rename := map[string]string{"blocks.0.": "blocks.0.", "blocks.2.": "blocks.1."} // subnet layer -> extracted layer
	si, ei := initializers(sm), initializers(em)
	if len(si) != len(ei) {
		t.Fatalf("%d initializers for the subnet, %d for the extracted model", len(si), len(ei))
	}
	for name, st := range si {
		en := name
		for from, to := range rename {
			if strings.HasPrefix(name, from) {
				en = to + strings.TrimPrefix(name, from)
			}
		}
		et, ok := ei[en]
		if !ok {
			t.Fatalf("subnet initializer %s has no counterpart %s in the extracted model", name, en)
		}
		if !proto.Equal(withName(st, en), et) {
			t.Errorf("initializer %s of the subnet differs from %s of the extracted model", name, en)
		}
	}
	// the extracted model's tensors are its parameters, unchanged
	for _, name := range ext.p.Names() {
		if !slices.Equal(floats(t, ei[name]), ext.p.Float32(name)) {
			t.Errorf("initializer %s differs from the parameter", name)
		}
	}
	ortDir(t)
	c, h, w := sub.a.InChannels, sub.a.InHeight, sub.a.InWidth
	so, _ := ortRun(t, export(t, sub), [][]float32{sub.x}, [][]int{{sub.n, c, h, w}})
	eo, _ := ortRun(t, export(t, ext), [][]float32{ext.x}, [][]int{{ext.n, c, h, w}})
	if d := maxAbsDiff(so[0], eo[0]); d > 1e-6 {
		t.Errorf("subnet and extracted model differ in onnxruntime by %.3g", d)
	}
}

// TestONNXChecker validates every exported graph with the onnx package's full checker and
// strict shape inference.
func TestONNXChecker(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	args := []string{filepath.Join("testdata", "check_model.py")}
	for _, m := range models(t) {
		path := filepath.Join(dir, m.name+".onnx")
		if err := onnx.WriteFile(path, export(t, m)); err != nil {
			t.Fatal(err)
		}
		args = append(args, path)
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(args)-1 {
		t.Fatalf("checker printed %d lines for %d files:\n%s", len(lines), len(args)-1, out)
	}
	for _, l := range lines {
		if !strings.Contains(l, ": ok, opset 17,") || !strings.HasSuffix(l, "logits [batch, "+lastDim(l)+"]") {
			t.Errorf("checker: %s", l)
		}
		t.Log(l)
	}
}

// lastDim is the class count printed at the end of a checker line.
func lastDim(l string) string {
	i := strings.LastIndex(l, ", ")
	return strings.TrimSuffix(l[i+2:], "]")
}

// TestGraphInterface checks the file's interface without any runtime: versions, input and
// output names and shapes, metadata, and a graph whose nodes read only defined values.
func TestGraphInterface(t *testing.T) {
	for _, m := range models(t) {
		t.Run(m.name, func(t *testing.T) {
			mp := decode(t, export(t, m))
			if mp.GetIrVersion() != 8 || len(mp.GetOpsetImport()) != 1 || mp.GetOpsetImport()[0].GetVersion() != 17 ||
				mp.GetOpsetImport()[0].GetDomain() != "" || mp.GetProducerName() != "ofa" || mp.GetProducerVersion() != "test" {
				t.Errorf("IR %d, opsets %v, producer %q %q", mp.GetIrVersion(), mp.GetOpsetImport(), mp.GetProducerName(), mp.GetProducerVersion())
			}
			g := mp.GetGraph()
			checkValue(t, g.GetInput(), "input", "batch", m.a.InChannels, m.a.InHeight, m.a.InWidth)
			checkValue(t, g.GetOutput(), "logits", "batch", m.a.Classes)
			meta := map[string]string{}
			for _, e := range mp.GetMetadataProps() {
				meta[e.GetKey()] = e.GetValue()
			}
			if meta["kind"] != m.kind || meta["preprocess"] != `{"mean":0.286,"std":0.353}` {
				t.Errorf("metadata kind %q, preprocess %q", meta["kind"], meta["preprocess"])
			}
			own, err := arch.ParseArch(meta["arch"])
			if err != nil {
				t.Fatalf("metadata arch: %v", err)
			}
			proper := !m.a.Expanded() && !m.s.Equal(arch.Largest(m.a))
			if proper {
				if meta["source_arch"] != m.a.JSON() {
					t.Errorf("source_arch %s, want %s", meta["source_arch"], m.a.JSON())
				}
				s, err := arch.ParseSubnet([]byte(meta["subnet"]), m.a)
				if err != nil || !s.Equal(m.s) {
					t.Errorf("subnet %s (%v), want %s", meta["subnet"], err, m.s)
				}
				if len(own.Layers) != m.s.Depth() || own.Layers[1] != (arch.Layer{Heads: m.s.Layers[1].Heads, MLP: m.s.Layers[1].MLP}) {
					t.Errorf("arch layers %v for subnet %s", own.Layers, m.s)
				}
			} else {
				if own.JSON() != m.a.JSON() {
					t.Errorf("arch %s, want %s", own.JSON(), m.a.JSON())
				}
				if _, ok := meta["subnet"]; ok {
					t.Errorf("subnet metadata on a whole model: %s", meta["subnet"])
				}
			}
			defined := map[string]bool{"input": true}
			for _, in := range g.GetInitializer() {
				if defined[in.GetName()] {
					t.Fatalf("initializer %s defined twice", in.GetName())
				}
				defined[in.GetName()] = true
			}
			for _, nd := range g.GetNode() {
				for _, in := range nd.GetInput() {
					if !defined[in] {
						t.Fatalf("node %s reads %s before it is defined", nd.GetName(), in)
					}
				}
				for _, out := range nd.GetOutput() {
					if defined[out] {
						t.Fatalf("node %s redefines %s", nd.GetName(), out)
					}
					defined[out] = true
				}
			}
			if !defined["logits"] {
				t.Fatal("no node computes logits")
			}
		})
	}
}

// TestWholeModelsStoreEveryWeightOnce checks that a whole model's initializers are exactly
// its parameters (plus small constants), each stored once with its values, and that an
// expanded model's shared layers are read by every position that runs them.
func TestWholeModelsStoreEveryWeightOnce(t *testing.T) {
	for _, m := range models(t) {
		if !m.s.Equal(arch.Largest(m.a)) {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			g := decode(t, export(t, m)).GetGraph()
			inits := initializers(&onnxpb.ModelProto{Graph: g})
			var floatsStored int
			for name, in := range inits {
				if strings.HasPrefix(name, "const.") {
					if n := len(floats(t, in)) + len(in.GetInt64Data()); n > 8 {
						t.Errorf("constant %s has %d values", name, n)
					}
					continue
				}
				if m.p.Get(name) == nil {
					t.Errorf("initializer %s is not a parameter", name)
					continue
				}
				if !slices.Equal(floats(t, in), m.p.Float32(name)) {
					t.Errorf("initializer %s differs from the parameter", name)
				}
				floatsStored += len(floats(t, in))
			}
			if int64(floatsStored) != m.p.Count() {
				t.Errorf("initializers hold %d weights, the model has %d", floatsStored, m.p.Count())
			}
			readers := map[string]int{}
			for _, nd := range g.GetNode() {
				for _, in := range nd.GetInput() {
					readers[in]++
				}
			}
			for _, name := range m.p.Names() {
				if readers[name] == 0 {
					t.Errorf("parameter %s is read by no node", name)
				}
			}
			if m.a.Expanded() {
				uses := map[int]int{}
				for _, pos := range m.a.Positions {
					uses[pos.Layer]++
				}
				for l, u := range uses {
					for _, w := range []string{"attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.bias"} {
						name := "blocks." + strconv.Itoa(l) + "." + w
						if readers[name] != u || u < 2 {
							t.Errorf("%s is read by %d nodes; %d positions run layer %d", name, readers[name], u, l)
						}
					}
				}
			}
		})
	}
}

// TestExportDeterministic checks that the same model gives the same bytes.
func TestExportDeterministic(t *testing.T) {
	m := find(t, models(t), "expanded")
	if a, b := export(t, m), export(t, m); !slices.Equal(a, b) {
		t.Error("two exports of one model differ")
	}
}

// TestExportFloat64Weights checks that float64 weights export as the float32 file of the
// same values.
func TestExportFloat64Weights(t *testing.T) {
	m := find(t, models(t), "supernet_subnet")
	want := export(t, m)
	m.p = m.p.Convert(tensor.Float64)
	if !slices.Equal(export(t, m), want) {
		t.Error("float64 weights export differently from their float32 values")
	}
}

// TestExportErrors checks that unexportable inputs are refused with wrapped sentinels.
func TestExportErrors(t *testing.T) {
	a := imageArch()
	p := newParams(t, a, 1)
	other := newParams(t, speechArch(), 1)
	opts := onnx.Options{Kind: "supernet"}
	bad := a
	bad.Dim = 0
	for _, tc := range []struct {
		name string
		a    arch.Arch
		p    *supernet.Params
		s    arch.Subnet
		opts onnx.Options
		want error
	}{
		{"invalid arch", bad, p, arch.Largest(a), opts, arch.ErrArch},
		{"subnet too wide", a, p, arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 5, MLP: 8}}}, opts, arch.ErrArch},
		{"empty subnet", a, p, arch.Subnet{}, opts, arch.ErrArch},
		{"weights of another arch", a, other, arch.Largest(a), opts, supernet.ErrParams},
		{"no weights", a, nil, arch.Largest(a), opts, onnx.ErrExport},
		{"no kind", a, p, arch.Largest(a), onnx.Options{}, onnx.ErrExport},
		{"preprocess not JSON", a, p, arch.Largest(a), onnx.Options{Kind: "supernet", Preprocess: "{mean"}, onnx.ErrExport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := onnx.Export(tc.a, tc.p, tc.s, tc.opts)
			if !errors.Is(err, tc.want) || !errors.Is(err, onnx.ErrExport) || b != nil {
				t.Errorf("got %d bytes, error %v; want %v wrapped in %v", len(b), err, tc.want, onnx.ErrExport)
			}
		})
	}
}

// TestWriteFile checks the atomic write: contents, kept permissions, no temporary files,
// and an error naming the path when the directory is missing.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := onnx.WriteFile(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("new file: %v, %v", fi, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := onnx.WriteFile(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "second" {
		t.Fatalf("read %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file has mode %v, want 0600 kept", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only model.onnx", len(entries))
	}
	missing := filepath.Join(dir, "no", "model.onnx")
	if err := onnx.WriteFile(missing, []byte("x")); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory: %v", err)
	}
}

func find(t *testing.T, ms []model, name string) model {
	t.Helper()
	for _, m := range ms {
		if m.name == name {
			return m
		}
	}
	t.Fatalf("no model %s", name)
	return model{}
}

func decode(t *testing.T, b []byte) *onnxpb.ModelProto {
	t.Helper()
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func initializers(m *onnxpb.ModelProto) map[string]*onnxpb.TensorProto {
	out := map[string]*onnxpb.TensorProto{}
	for _, in := range m.GetGraph().GetInitializer() {
		out[in.GetName()] = in
	}
	return out
}

func withName(tp *onnxpb.TensorProto, name string) *onnxpb.TensorProto {
	c := proto.Clone(tp).(*onnxpb.TensorProto)
	c.Name = proto.String(name)
	return c
}

// floats decodes a float32 initializer's raw little-endian data (nil for other types).
func floats(t *testing.T, tp *onnxpb.TensorProto) []float32 {
	t.Helper()
	if tp.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil
	}
	raw := tp.GetRawData()
	if len(raw)%4 != 0 {
		t.Fatalf("initializer %s: %d raw bytes", tp.GetName(), len(raw))
	}
	x := make([]float32, len(raw)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return x
}

func checkValue(t *testing.T, vs []*onnxpb.ValueInfoProto, name, batch string, dims ...int) {
	t.Helper()
	if len(vs) != 1 || vs[0].GetName() != name {
		t.Fatalf("graph values %v, want one named %s", vs, name)
	}
	tt := vs[0].GetType().GetTensorType()
	d := tt.GetShape().GetDim()
	if tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) || len(d) != len(dims)+1 || d[0].GetDimParam() != batch {
		t.Fatalf("%s: type %v", name, tt)
	}
	for i, want := range dims {
		if d[i+1].GetDimValue() != int64(want) {
			t.Errorf("%s: dim %d is %d, want %d", name, i+1, d[i+1].GetDimValue(), want)
		}
	}
}
