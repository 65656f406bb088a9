package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/data"
)

// modelDataConfig is tinyConfig with augmentation off and one budget without the
// baselines: settings that differ from the defaults, so that a command which ignored the
// model's configuration would measure something else.
var modelDataConfig = strings.Replace(tinyConfig, "  val_size: 88\n", "  val_size: 88\n  augment:\n    crop_pad: 0\n    hflip: false\n", 1) +
	tinyExtract + `run:
  budgets: [2x]
  latency_repeats: 3
  expand: false
  scratch: false
  scratch_equal_steps: false
  dense_prune: false
  baselines: false
`

// writeOtherIDX writes an IDX dataset of the same shape as the embedded subset but other
// examples (from its 1000th training and 100th test example on), into a new directory.
func writeOtherIDX(t *testing.T) string {
	t.Helper()
	tr, te, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	_, tr = tr.Split(1000)
	_, te = te.Split(100)
	dir := t.TempDir()
	for _, s := range []struct {
		prefix string
		set    *data.Images
	}{{"train", tr}, {"t10k", te}} {
		for _, f := range []struct {
			kind string
			dims []int
			b    []uint8
		}{{"images-idx3-ubyte", []int{s.set.N, s.set.Height, s.set.Width}, s.set.Pixels}, {"labels-idx1-ubyte", []int{s.set.N}, s.set.Labels}} {
			var buf bytes.Buffer
			if err := data.WriteIDX(&buf, f.dims, f.b); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, s.prefix+"-"+f.kind), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// firstLine is the first line a command printed for people (standard error with --json).
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestCommandsUseTheModelsData: on the models of a lifecycle (the README demo's shape at
// test scale), eval, extract and fine-tune given no --config and no data flag use the
// data and settings the models were made with, reproduce the report's numbers exactly,
// and say in their first line that the data is the model's; given other data they say
// that it is not, naming both. inspect shows the record.
func TestCommandsUseTheModelsData(t *testing.T) {
	cfg := writeConfig(t, modelDataConfig)
	run := filepath.Join(t.TempDir(), "demo")
	code, stdout, stderr := ofa(t, "run", "--config", cfg, "--out", run, "--json")
	if code != 0 {
		t.Fatalf("run: %s", stderr)
	}
	report := map[string]float64{}
	for _, r := range lastJSON(t, stdout)["rows"].([]any) {
		row := r.(map[string]any)
		report[row["variant"].(string)] = row["test_accuracy"].(float64)
	}
	supernet := filepath.Join(run, "supernet", "supernet.safetensors")
	finetuned := filepath.Join(run, "budgets", "2x", "finetuned", "model.safetensors")

	// eval of the report's fine-tuned model
	code, stdout, stderr = ofa(t, "eval", "--model", finetuned, "--json")
	if code != 0 {
		t.Fatalf("eval: %s", stderr)
	}
	if l := firstLine(stderr); !strings.Contains(l, "the data "+finetuned+" was trained on") || !strings.Contains(l, "100 test") {
		t.Errorf("eval's first line: %q", l)
	}
	got := lastJSON(t, stdout)["results"].([]any)[0].(map[string]any)["accuracy"].(float64)
	if want := report["extracted+finetune"]; got != want {
		t.Errorf("eval: accuracy %v, the report says %v", got, want)
	}

	// extraction for the report's budget
	x := filepath.Join(t.TempDir(), "x2")
	code, stdout, stderr = ofa(t, "extract", "--supernet", supernet, "--target", "2x", "--out", x, "--json")
	if code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	if l := firstLine(stderr); !strings.Contains(l, "the data "+supernet+" was trained on") {
		t.Errorf("extract's first line: %q", l)
	}
	if got, want := lastJSON(t, stdout)["test_accuracy"].(float64), report["extracted"]; got != want {
		t.Errorf("extract: test accuracy %v, the report says %v", got, want)
	}

	// fine-tuning it, distilled from the supernet as the lifecycle does
	f := filepath.Join(t.TempDir(), "ft")
	code, stdout, stderr = ofa(t, "finetune", "--model", filepath.Join(x, "model.safetensors"), "--teacher", supernet, "--out", f, "--json")
	if code != 0 {
		t.Fatalf("finetune: %s", stderr)
	}
	if l := firstLine(stderr); !strings.Contains(l, "was trained on") || strings.Contains(l, "NOT") {
		t.Errorf("finetune's first line: %q", l)
	}
	if got, want := lastJSON(t, stdout)["test_accuracy"].(float64), report["extracted+finetune"]; got != want {
		t.Errorf("finetune: test accuracy %v, the report says %v", got, want)
	}

	// other data, asked for: the first line names both
	other := writeOtherIDX(t)
	code, _, stderr = ofa(t, "eval", "--model", finetuned, "--data", other, "--json")
	if code != 0 {
		t.Fatalf("eval on other data: %s", stderr)
	}
	if l := firstLine(stderr); !strings.Contains(l, other) || !strings.Contains(l, "NOT the data "+finetuned+" was trained on (Fashion-MNIST") ||
		!strings.Contains(l, "embedded") {
		t.Errorf("eval on other data, first line: %q", l)
	}

	// inspect shows the record; every model of the run records the same data
	code, stdout, stderr = ofa(t, "inspect", finetuned, "--json")
	if code != 0 {
		t.Fatalf("inspect: %s", stderr)
	}
	rec := lastJSON(t, stdout)["data"].(map[string]any)
	_, stdout, _ = ofa(t, "inspect", supernet, "--json")
	snRec := lastJSON(t, stdout)["data"].(map[string]any)
	if rec["kind"] != "fashion-mnist-embedded" || rec["test"].(float64) != 100 || rec["fingerprint"] != snRec["fingerprint"] || !strings.Contains(stderr, "fingerprint sha256:") {
		t.Errorf("inspect: record %v, supernet's %v\n%s", rec, snRec, stderr)
	}
}
