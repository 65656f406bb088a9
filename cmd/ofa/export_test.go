package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/infer"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
)

// predictOutput is the JSON object of `ofa predict --json`.
type predictOutput struct {
	Classes     []string           `json:"classes"`
	Predictions []infer.Prediction `json:"predictions"`
}

func predictJSON(t *testing.T, args ...string) predictOutput {
	t.Helper()
	code, stdout, stderr := ofa(t, append([]string{"predict", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("predict %v: %s", args, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	var out predictOutput
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Fatalf("predict output %q: %v", lines[len(lines)-1], err)
	}
	return out
}

// testImages writes embedded test images 0..3 as an IDX file and image 4 as a PNG.
func testImages(t *testing.T) (idxPath, pngPath string) {
	t.Helper()
	_, te, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{4, 28, 28}, te.Head(4).Pixels); err != nil {
		t.Fatal(err)
	}
	idxPath = filepath.Join(dir, "four.idx")
	if err := os.WriteFile(idxPath, idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i, v := range te.Image(4) {
		img.SetGray(i%28, i/28, color.Gray{Y: v})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	pngPath = filepath.Join(dir, "five.png")
	if err := os.WriteFile(pngPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return idxPath, pngPath
}

// TestExportPredict: a trained supernet records its class names; `ofa predict` classifies
// IDX and PNG files with them; `ofa export` writes an ONNX file whose logits in
// onnxruntime equal predict's; other kinds export whole.
func TestExportPredict(t *testing.T) {
	ortEnv := os.Getenv(ortEnvName)
	sn, cfg := trainTiny(t, tinyExtract)
	m, err := modelfile.Load(sn)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Extra[modelfile.KeyClasses]; !strings.HasPrefix(got, `["T-shirt/top","Trouser",`) {
		t.Fatalf("the supernet's %q metadata is %q", modelfile.KeyClasses, got)
	}
	idxPath, pngPath := testImages(t)

	pred := predictJSON(t, "--model", sn, "--subnet", "smallest", idxPath, pngPath)
	if len(pred.Predictions) != 5 || len(pred.Classes) != 10 || pred.Classes[9] != "Ankle boot" {
		t.Fatalf("%d predictions, classes %v", len(pred.Predictions), pred.Classes)
	}
	for i, p := range pred.Predictions {
		want := idxPath + "[" + strconv.Itoa(i) + "]"
		if i == 4 {
			want = pngPath
		}
		if p.Input != want || len(p.Logits) != 10 || len(p.Top) != 3 || p.Top[0].Class != pred.Classes[p.Top[0].Label] {
			t.Fatalf("prediction %d: %+v", i, p)
		}
	}
	code, stdout, stderr := ofa(t, "predict", "--model", sn, pngPath)
	if code != 0 || !strings.HasPrefix(stdout, pngPath+": "+pred.Predictions[4].Top[0].Class+" ") {
		t.Fatalf("predict without --json: code %d, %q, %s", code, stdout, stderr)
	}

	onnxPath := filepath.Join(t.TempDir(), "smallest.onnx")
	code, stdout, stderr = ofa(t, "export", "--model", sn, "--subnet", "smallest", "--out", onnxPath, "--json")
	if code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	res := lastJSON(t, stdout)
	fi, err := os.Stat(onnxPath)
	if err != nil || res["bytes"].(float64) != float64(fi.Size()) || res["kind"] != "supernet" {
		t.Fatalf("export result %v, file %v (%v)", res, fi, err)
	}
	if b, _ := os.ReadFile(onnxPath); !bytes.Contains(b, []byte(m.Extra[modelfile.KeyClasses])) {
		t.Error("the ONNX file does not carry the model's class names")
	}
	compareOnnxRuntime(t, m, ortEnv, onnxPath, []string{idxPath, pngPath}, pred)

	// usage errors name the flag
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--model", sn, "--out", onnxPath, "--format", "safetensors"}, "--format"},
		{[]string{"export", "--model", sn}, "--out"},
		{[]string{"export", "--model", sn, "--out", onnxPath, "--subnet", "all"}, "--subnet all"},
		{[]string{"predict", "--model", sn, "--top", "0", pngPath}, "--top"},
		{[]string{"predict", "--model", sn}, "requires at least 1 arg"},
	} {
		if code, _, stderr := ofa(t, c.args...); code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: code %d, %s; want an error naming %s", c.args, code, stderr, c.want)
		}
	}

	// an extracted model keeps the class names and exports whole
	x := filepath.Join(t.TempDir(), "x")
	if code, _, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--ratios", "0.5,1", "--out", x); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	xm := filepath.Join(x, pipeline.FileModel)
	if p := predictJSON(t, "--model", xm, pngPath); p.Classes[0] != "T-shirt/top" || len(p.Predictions) != 1 {
		t.Fatalf("extracted model's prediction %+v", p)
	}
	if code, _, stderr := ofa(t, "export", "--model", xm, "--out", filepath.Join(t.TempDir(), "x.onnx")); code != 0 {
		t.Fatalf("export extracted: %s", stderr)
	}
	if code, _, stderr := ofa(t, "export", "--model", xm, "--subnet", "smallest", "--out", onnxPath); code != exitUsage || !strings.Contains(stderr, "--subnet") {
		t.Fatalf("subnet of an extracted model: code %d, %s", code, stderr)
	}
}

// ortEnvName names a directory holding node_modules/onnxruntime-node, as in the tests of
// package export/onnx; by default they look in export/onnx/testdata/ort.
const ortEnvName = "ONNXRUNTIME_NODE_DIR"

// ortModules returns the node_modules directory holding onnxruntime-node under dir (or
// the default directory), or "" and the reason when Node.js or the package is missing.
func ortModules(dir string) (string, string) {
	if dir == "" {
		dir = filepath.Join("..", "..", "export", "onnx", "testdata", "ort")
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", "node not found (Debian package nodejs)"
	}
	mods, err := filepath.Abs(filepath.Join(dir, "node_modules"))
	if err == nil {
		_, err = os.Stat(filepath.Join(mods, "onnxruntime-node", "package.json"))
	}
	if err != nil {
		return "", "npm package onnxruntime-node not installed (scripts/install-onnx-test-deps.sh, or set " + ortEnvName + ")"
	}
	return mods, ""
}

// compareOnnxRuntime runs the exported file in onnxruntime on the inputs predict read from
// files and checks its logits against predict's within 1e-4.
func compareOnnxRuntime(t *testing.T, m *modelfile.Model, ortDir, onnxPath string, files []string, pred predictOutput) {
	t.Helper()
	mods, why := ortModules(ortDir)
	if mods == "" {
		t.Logf("skipping the onnxruntime comparison: %s", why)
		return
	}
	var x []float32
	for _, f := range files {
		in, err := infer.ReadInputs(m, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range in {
			x = append(x, e.X...)
		}
	}
	n := len(pred.Predictions)
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "in.bin"), filepath.Join(tmp, "out.bin")
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	a := m.Arch
	dims := strings.Join([]string{strconv.Itoa(n), strconv.Itoa(a.InChannels), strconv.Itoa(a.InHeight), strconv.Itoa(a.InWidth)}, ",")
	cmd := exec.Command("node", filepath.Join("..", "..", "export", "onnx", "testdata", "run_ort.js"), onnxPath, in, dims, out)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	if _, err := cmd.Output(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("onnxruntime: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("onnxruntime: %v", err)
	}
	ob, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ob) != 4*n*a.Classes {
		t.Fatalf("onnxruntime wrote %d bytes, want %d logits", len(ob), n*a.Classes)
	}
	worst := 0.0
	for i, p := range pred.Predictions {
		for j, want := range p.Logits {
			got := math.Float32frombits(binary.LittleEndian.Uint32(ob[4*(i*a.Classes+j):]))
			worst = math.Max(worst, math.Abs(float64(got)-float64(want)))
		}
	}
	if !(worst <= 1e-4) {
		t.Fatalf("onnxruntime logits differ from ofa predict's by up to %.3g (tolerance 1e-4)", worst)
	}
	t.Logf("onnxruntime vs ofa predict, %d inputs: max |logit difference| %.3g", n, worst)
}
