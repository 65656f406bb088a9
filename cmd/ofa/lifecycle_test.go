package main

import (
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/pipeline"
)

// trainTiny trains the tiny supernet once per test and returns its path and config file.
func trainTiny(t *testing.T, extra string) (string, string) {
	t.Helper()
	cfg := writeConfig(t, tinyConfig+extra)
	out := filepath.Join(t.TempDir(), "run")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", out); code != 0 {
		t.Fatalf("train: %s", stderr)
	}
	return filepath.Join(out, "supernet.safetensors"), cfg
}

const tinyExtract = `
extract:
  calibration_batches: 2
  val_examples: 50
  search:
    population: 4
    generations: 1
finetune:
  steps: 4
  batch_size: 32
  warmup_steps: 1
  eval_batch: 50
`

// TestExtractExpandFinetune drives the extraction commands end to end, with a target from
// an HTTP server, ratios and thresholds.
func TestExtractExpandFinetune(t *testing.T) {
	sn, cfg := trainTiny(t, tinyExtract)
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/broken" {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(`{"params_multiple": 2}`))
	}))
	defer srv.Close()

	x := filepath.Join(t.TempDir(), "x2")
	code, stdout, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target-url", srv.URL+"/budget", "--out", x, "--baselines", "--json")
	if code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	res := lastJSON(t, stdout)
	man := res["manifest"].(map[string]any)
	if man["target_from"] != srv.URL+"/budget" || man["params_reduction"].(float64) < 2 {
		t.Fatalf("manifest %v", man)
	}
	if len(res["baselines"].(map[string]any)) != 2 {
		t.Fatalf("baselines %v", res["baselines"])
	}
	if _, err := os.Stat(filepath.Join(x, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	// a failing server is an error, not a different budget
	code, _, stderr = ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target-url", srv.URL+"/broken", "--out", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "HTTP 500") {
		t.Fatalf("broken server: code %d, %s", code, stderr)
	}
	// ratios and thresholds
	for _, args := range [][]string{{"--ratios", "0.5,1", "--mlp-ratios", "0.25"}, {"--thresholds", "0.2"}} {
		out := filepath.Join(t.TempDir(), "r")
		code, _, stderr := ofa(t, append([]string{"extract", "--config", cfg, "--supernet", sn, "--out", out}, args...)...)
		if code != 0 {
			t.Fatalf("extract %v: %s", args, stderr)
		}
	}
	code, _, stderr = ofa(t, "extract", "--config", cfg, "--supernet", sn, "--ratios", "0.5,1.5", "--out", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "ratios.heads[1]") {
		t.Fatalf("bad ratio: %s", stderr)
	}
	// extracting from a model that is not a supernet is refused
	code, _, stderr = ofa(t, "extract", "--config", cfg, "--supernet", filepath.Join(x, "model.safetensors"), "--target", "2x", "--out", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "not a supernet") {
		t.Fatalf("extract from extracted: %s", stderr)
	}

	e := filepath.Join(t.TempDir(), "e")
	code, stdout, stderr = ofa(t, "expand", "--config", cfg, "--model", filepath.Join(x, "model.safetensors"), "--plan", "repeat:2",
		"--transforms", "lowrank:2,headmix", "--out", e, "--json")
	if code != 0 {
		t.Fatalf("expand: %s", stderr)
	}
	if code, _, stderr = ofa(t, "expand", "--config", cfg, "--model", filepath.Join(x, "model.safetensors"), "--transforms", "rotate", "--out", t.TempDir()); code == 0 || !strings.Contains(stderr, `unknown transform "rotate"`) {
		t.Fatalf("unknown transform: %s", stderr)
	}
	code, stdout, stderr = ofa(t, "finetune", "--config", cfg, "--model", filepath.Join(e, "model.safetensors"), "--teacher", sn, "--out", filepath.Join(t.TempDir(), "f"), "--json")
	if code != 0 {
		t.Fatalf("finetune: %s", stderr)
	}
	ft := lastJSON(t, stdout)
	if ft["steps"].(float64) != 4 {
		t.Fatalf("finetune %v", ft)
	}
	// a model that is not a supernet is evaluated as a whole, in one row labelled "model"
	code, stdout, stderr = ofa(t, "eval", "--config", cfg, "--model", filepath.Join(x, "model.safetensors"), "--subnet", "all", "--json")
	if rows, _ := lastJSON(t, stdout)["results"].([]any); code != 0 || len(rows) != 1 || rows[0].(map[string]any)["name"] != "model" {
		t.Fatalf("eval of an extracted model: exit %d, %v, %s", code, rows, stderr)
	}
	code, stdout, _ = ofa(t, "inspect", "--json", filepath.Join(e, "model.safetensors"))
	ins := lastJSON(t, stdout)
	if code != 0 || len(ins["positions"].([]any)) != 2*len(ins["layers"].([]any)) {
		t.Fatalf("inspect expanded: %v", ins)
	}
}

// TestRun runs the whole lifecycle on a tiny configuration and checks the report.
func TestRun(t *testing.T) {
	sn, cfg := trainTiny(t, tinyExtract+"run:\n  latency_repeats: 3\n")
	out := filepath.Join(t.TempDir(), "report")
	code, stdout, stderr := ofa(t, "run", "--config", cfg, "--supernet", sn, "--budgets", "2x", "--out", out, "--json")
	if code != 0 {
		t.Fatalf("run: %s", stderr)
	}
	res := lastJSON(t, stdout)
	rows := res["rows"].([]any)
	variants := map[string]bool{}
	for _, r := range rows {
		v := r.(map[string]any)["variant"].(string)
		if strings.HasPrefix(v, "scratch, ") && strings.HasSuffix(v, " steps") {
			v = "scratch, N steps"
		}
		variants[v] = true
	}
	for _, v := range []string{"extracted", "plain slices", "random units", "extracted+finetune", "expanded+finetune", "scratch, N steps"} {
		if !variants[v] {
			t.Errorf("report lacks %q: %v", v, variants)
		}
	}
	// the report and the output end with the per-budget recommendation: a pipeline model
	// within the budget
	recs, _ := res["recommendations"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["ship"] == "" || !strings.Contains(stdout+stderr, "== recommendation") {
		t.Errorf("recommendations %v", res["recommendations"])
	}
	if md, _ := os.ReadFile(filepath.Join(out, "report.md")); !strings.Contains(string(md), "## Recommendation") {
		t.Errorf("report.md has no recommendation")
	}
	for _, f := range []string{"report.md", "report.csv", "report.json", "latency.json", "plots/accuracy_vs_params.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	type row struct {
		Variant   string `json:"variant"`
		Params    int64  `json:"unique_params"`
		Layers    int    `json:"layers"`
		Positions int    `json:"positions"`
	}
	var rep struct {
		Reference row   `json:"reference"`
		Rows      []row `json:"rows"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// every model, the expanded one included, stays within the unique-parameter budget
	limit := rep.Reference.Params / 2
	for _, r := range rep.Rows {
		if r.Params > limit {
			t.Errorf("%s has %d unique params, over the 2x budget of %d", r.Variant, r.Params, limit)
		}
	}
	// width for depth (expand.width_for_depth, the default): the expanded model stores half
	// the extracted model's layers, rounded up (at least two), each used twice
	byVariant := map[string]row{}
	for _, r := range rep.Rows {
		byVariant[r.Variant] = r
	}
	ex, xp := byVariant["extracted+finetune"], byVariant["expanded+finetune"]
	if want := pipeline.WideLayers(ex.Layers); xp.Layers != want || xp.Positions != 2*xp.Layers {
		t.Errorf("expanded model: %d layers at %d positions, want %d layers (the extraction keeps %d) at twice the positions",
			xp.Layers, xp.Positions, want, ex.Layers)
	}
	// duplicate budgets are refused, naming the budget
	code, _, stderr = ofa(t, "run", "--config", cfg, "--supernet", sn, "--budgets", "2x,2x", "--out", t.TempDir())
	if code == 0 || !strings.Contains(stderr, `run.budgets[1] "2x" repeats`) {
		t.Fatalf("duplicate budgets: %s", stderr)
	}
	// an existing report is not overwritten without --force
	code, _, stderr = ofa(t, "run", "--config", cfg, "--supernet", sn, "--budgets", "2x", "--out", out)
	if code == 0 || !strings.Contains(stderr, "--force") {
		t.Fatalf("existing report: %s", stderr)
	}
}

// TestSpeechTask trains, extracts and inspects a tiny spectrogram model on the embedded
// spoken digits.
func TestSpeechTask(t *testing.T) {
	cfg := writeConfig(t, `
data:
  task: speech
model:
  patch_height: 40
  patch_width: 10
  dim: 32
  head_dim: 8
  heads: 2
  mlp: 32
  depth: 2
  head_choices: [1, 2]
  mlp_choices: [16, 32]
  depth_choices: [1, 2]
train:
  steps: 6
  batch_size: 32
  warmup_steps: 1
  eval_batch: 20
extract:
  calibration_batches: 1
  val_examples: 40
  search:
    generations: 0
`)
	out := filepath.Join(t.TempDir(), "speech")
	code, stdout, stderr := ofa(t, "train", "--config", cfg, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("train: %s", stderr)
	}
	if !strings.Contains(stderr, "spoken digits") || len(lastJSON(t, stdout)["eval"].([]any)) != 3 {
		t.Fatalf("speech run: %s", stderr)
	}
	sn := filepath.Join(out, "supernet.safetensors")
	code, stdout, _ = ofa(t, "inspect", "--json", sn)
	ins := lastJSON(t, stdout)
	if code != 0 || ins["arch"].(map[string]any)["task"] != "speech" || ins["arch"].(map[string]any)["in_height"].(float64) != 40 {
		t.Fatalf("inspect: %v", ins)
	}
	if code, _, stderr = ofa(t, "extract", "--config", cfg, "--supernet", sn, "--ratios", "0.5", "--out", filepath.Join(t.TempDir(), "x")); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	// a clip without samples is refused, not classified (issue 29, finding 7)
	empty := filepath.Join(t.TempDir(), "empty.wav")
	if err := os.WriteFile(empty, emptyWAV(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = ofa(t, "predict", "--model", sn, empty); code == 0 || !strings.Contains(stderr, "no samples") {
		t.Fatalf("predict on a WAV without samples: code %d, %s", code, stderr)
	}
	// an image model does not fit speech data
	img, icfg := trainTiny(t, "")
	_ = icfg
	if code, _, stderr = ofa(t, "eval", "--config", cfg, "--model", img); code == 0 || !strings.Contains(stderr, "expects 1x28x28") {
		t.Fatalf("image model on speech data: %s", stderr)
	}
}

// TestBenchAndLatencyJSON: the measuring commands end with one JSON object too.
func TestBenchAndLatencyJSON(t *testing.T) {
	code, stdout, stderr := ofa(t, "bench", "--steps", "2", "--repeats", "1", "--infer-batch", "32", "--subnet", "smallest", "--json")
	if code != 0 {
		t.Fatalf("bench: %s", stderr)
	}
	b := lastJSON(t, stdout)
	if b["command"] != "bench" || b["train_samples_per_sec"].(float64) <= 0 || b["infer_samples_per_sec"].(float64) <= 0 || b["in_supernet"].(bool) {
		t.Fatalf("bench %v", b)
	}
	// the same subnet trained inside the whole supernet: the same model size is reported
	code, stdout, stderr = ofa(t, "bench", "--steps", "2", "--repeats", "1", "--infer-batch", "32", "--subnet", "smallest", "--in-supernet", "--json")
	if code != 0 {
		t.Fatalf("bench --in-supernet: %s", stderr)
	}
	if bs := lastJSON(t, stdout); !bs["in_supernet"].(bool) || bs["params"] != b["params"] || bs["macs"] != b["macs"] || bs["subnet"] != b["subnet"] {
		t.Fatalf("bench --in-supernet %v, sliced %v", bs, b)
	}
	sn, _ := trainTiny(t, "")
	out := filepath.Join(t.TempDir(), "lat.json")
	code, stdout, stderr = ofa(t, "latency-table", "--supernet", sn, "--repeats", "3", "--checks", "2", "--out", out, "--json")
	if code != 0 {
		t.Fatalf("latency-table: %s", stderr)
	}
	tab := lastJSON(t, stdout)["table"].(map[string]any)
	if len(tab["blocks"].([]any)) == 0 || len(tab["checks"].([]any)) != 3 {
		t.Fatalf("table %v", tab)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// TestRunChecksEverythingFirst: values that only the later steps of a lifecycle use are
// refused before the supernet is trained.
func TestRunChecksEverythingFirst(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{"run:\n  latency_repeats: 2\n", "run.latency_repeats"},
		{"run:\n  latency_batch: 0\n", "run.latency_batch"},
		{"expand:\n  plan: repeat:0\n", "expand.plan"},
		{"expand:\n  plan: repeat:100000\n", "expand.plan"},
		{"run:\n  budgets: [1000000x]\n", "impossible"},
	} {
		out := filepath.Join(t.TempDir(), "run")
		code, _, stderr := ofa(t, "run", "--config", writeConfig(t, tinyConfig+c.extra), "--out", out)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: code %d, error %q does not mention %q", c.extra, code, stderr, c.want)
		}
		if _, err := os.Stat(filepath.Join(out, "supernet", "supernet.safetensors")); err == nil {
			t.Errorf("%q: a supernet was trained before the configuration was refused", c.extra)
		}
	}
}

// emptyWAV is a valid 16 kHz mono 16-bit PCM WAV file holding no samples.
func emptyWAV() []byte {
	le := binary.LittleEndian
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00")
	b = le.AppendUint16(b, 1)       // PCM
	b = le.AppendUint16(b, 1)       // channels
	b = le.AppendUint32(b, 16000)   // sample rate
	b = le.AppendUint32(b, 16000*2) // byte rate
	b = le.AppendUint16(b, 2)       // block align
	b = le.AppendUint16(b, 16)      // bits per sample
	b = append(b, "data\x00\x00\x00\x00"...)
	le.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// TestTrainedBudgetSubnetsNamed: with sampler.budget_subnets the supernet trains the named
// subnet at the budget, and the extraction at that budget starts its search from it; one
// over its budget is refused before training, naming it.
func TestTrainedBudgetSubnetsNamed(t *testing.T) {
	const named = "sampler:\n  kind: budgets\n  warm_fraction: 0.25\n  budget_subnets:\n    - layers: [{layer: 0, heads: 1, mlp: 16}, {layer: 1, heads: 1, mlp: 24}]\nrun:\n  budgets: [2x]\n"
	sn, cfg := trainTiny(t, tinyExtract+named)
	out := filepath.Join(t.TempDir(), "x")
	code, stdout, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target", "2x", "--out", out, "--json")
	if code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	got, _ := lastJSON(t, stdout)["manifest"].(map[string]any)["trained_subnets"].([]any)
	want := map[string]any{"layers": []any{map[string]any{"layer": 0.0, "heads": 1.0, "mlp": 16.0}, map[string]any{"layer": 1.0, "heads": 1.0, "mlp": 24.0}}}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("trained subnets %v, want the named %v", got, want)
	}
	over := strings.Replace(named, "heads: 1, mlp: 16}, {layer: 1, heads: 1, mlp: 24}", "heads: 2, mlp: 64}, {layer: 1, heads: 2, mlp: 64}", 1)
	code, _, stderr = ofa(t, "train", "--config", writeConfig(t, tinyConfig+over), "--out", filepath.Join(t.TempDir(), "o"))
	if code == 0 || !strings.Contains(stderr, "sampler.budget_subnets[0]") || !strings.Contains(stderr, "exceed its budget") {
		t.Fatalf("a budget subnet over its budget: code %d, %s", code, stderr)
	}
}

// TestExtractStartsFromTrainedSubnets: a supernet trained with fixed budget subnets
// (sampler.budget_fixed) is extracted at one of its budgets with the search started from
// the subnet it trained there, which the manifest records; at another budget there is none.
func TestExtractStartsFromTrainedSubnets(t *testing.T) {
	sn, cfg := trainTiny(t, tinyExtract+"sampler:\n  kind: budgets\n  budget_fixed: true\n  warm_fraction: 0.25\nrun:\n  budgets: [2x]\n")
	for _, c := range []struct {
		target  string
		trained int
	}{{"2x", 1}, {"3x", 0}} {
		out := filepath.Join(t.TempDir(), c.target)
		code, stdout, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target", c.target, "--out", out, "--json")
		if code != 0 {
			t.Fatalf("extract %s: %s", c.target, stderr)
		}
		man := lastJSON(t, stdout)["manifest"].(map[string]any)
		got, _ := man["trained_subnets"].([]any)
		if len(got) != c.trained || strings.Contains(stdout+stderr, "the search starts from them") != (c.trained > 0) {
			t.Fatalf("extract %s: trained subnets %v, want %d, and the output saying so:\n%s%s", c.target, got, c.trained, stdout, stderr)
		}
	}
}
