package onnx_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ortEnv names a directory holding node_modules/onnxruntime-node; by default the tests look
// in testdata/ort (ignored by git), where scripts/install-onnx-test-deps.sh installs it.
const ortEnv = "ONNXRUNTIME_NODE_DIR"

// pythonEnv overrides the interpreter that has the onnx package (Debian's python3-onnx).
const pythonEnv = "ONNX_CHECK_PYTHON"

// ortDir returns the directory holding node_modules/onnxruntime-node, or skips the test.
func ortDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(ortEnv)
	if dir == "" {
		dir = filepath.Join("testdata", "ort")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not found (Debian package nodejs); the onnxruntime tests need Node.js and the npm package onnxruntime-node")
	}
	if _, err := os.Stat(filepath.Join(abs, "node_modules", "onnxruntime-node", "package.json")); err != nil {
		t.Skipf("npm package onnxruntime-node not installed: npm install --ignore-scripts --prefix export/onnx/testdata/ort onnxruntime-node "+
			"(or scripts/install-onnx-test-deps.sh), or set %s to a directory holding node_modules/onnxruntime-node", ortEnv)
	}
	return abs
}

// python returns an interpreter that imports onnx, or skips the test.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv(pythonEnv)
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s cannot import onnx (%v): install the Debian package python3-onnx (or set %s)", py, err, pythonEnv)
	}
	return py
}

// ortRun runs model on each input (values, dims) in one onnxruntime session and returns
// each output's values and dims, checking the session's input and output names.
func ortRun(t *testing.T, model []byte, inputs [][]float32, dims [][]int) ([][]float32, [][]int) {
	t.Helper()
	dir := ortDir(t)
	tmp := t.TempDir()
	mp := filepath.Join(tmp, "model.onnx")
	if err := os.WriteFile(mp, model, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join("testdata", "run_ort.js"), mp}
	for i, x := range inputs {
		in, out := filepath.Join(tmp, "in"+strconv.Itoa(i)+".bin"), filepath.Join(tmp, "out"+strconv.Itoa(i)+".bin")
		writeFloats(t, in, x)
		ds := make([]string, len(dims[i]))
		for j, d := range dims[i] {
			ds[j] = strconv.Itoa(d)
		}
		args = append(args, in, strings.Join(ds, ","), out)
	}
	cmd := exec.Command("node", args...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	stdout, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("onnxruntime: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("onnxruntime: %v", err)
	}
	var res struct {
		Inputs, Outputs []string
		Dims            [][]int
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("run_ort.js output %q: %v", stdout, err)
	}
	if len(res.Inputs) != 1 || res.Inputs[0] != "input" || len(res.Outputs) != 1 || res.Outputs[0] != "logits" {
		t.Fatalf("session inputs %v, outputs %v; want [input] and [logits]", res.Inputs, res.Outputs)
	}
	outs := make([][]float32, len(inputs))
	for i := range inputs {
		outs[i] = readFloats(t, filepath.Join(tmp, "out"+strconv.Itoa(i)+".bin"))
	}
	return outs, res.Dims
}

func writeFloats(t *testing.T, path string, x []float32) {
	t.Helper()
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFloats(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// ofaLogits runs subnet s of (a, p) with the tool's own fused graph on n examples x.
func ofaLogits(t *testing.T, a arch.Arch, p *supernet.Params, s arch.Subnet, x []float32, n int) []float32 {
	t.Helper()
	g := G.NewGraph()
	net, err := supernet.Build(g, a, p, s, supernet.NewPatches(a, n, tensor.Float32), nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	if err := supernet.Patchify(a, x, n, net.Patches); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), net.Logits.Value().Data().([]float32)...)
}

// randomize overwrites every weight with seeded random values of unit-scale activations:
// norm and affine scales 1±0.3, head-mixing matrices identity plus noise, everything else
// N(0, 0.3²), so that biases, shifts, gates and transforms all matter (fresh weights have
// zero biases, identity transforms and zero gates on reused positions) and logits are of
// order one.
func randomize(p *supernet.Params, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for _, name := range p.Names() {
		t := p.Get(name)
		n := t.Shape().TotalSize()
		for i := 0; i < n; i++ {
			v := 0.3 * r.NormFloat64()
			switch {
			case strings.HasSuffix(name, "norm1.weight"), strings.HasSuffix(name, "norm2.weight"),
				name == "norm.weight", strings.HasSuffix(name, "_scale"):
				v += 1
			case strings.Contains(name, "headmix."):
				if i/t.Shape()[1] == i%t.Shape()[1] {
					v += 1
				}
			}
			supernet.SetAt(t, i, v)
		}
	}
}

// randomInput is n examples of a's input shape, N(0, 1) (normalised inputs).
func randomInput(a arch.Arch, n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	x := make([]float32, n*a.InChannels*a.InHeight*a.InWidth)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// maxAbsDiff is max |a_i - b_i|, +Inf on a length mismatch or NaN.
func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = math.Max(m, d)
	}
	return m
}

// maxAbs is max |a_i|.
func maxAbs(a []float32) float64 {
	m := 0.0
	for _, v := range a {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}
