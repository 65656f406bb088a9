package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/configfile"
	"github.com/ofa-go/ofa/modelfile"
)

// tinyConfig is a small model and a short run on the embedded data.
const tinyConfig = `
data:
  embedded: true
  train_limit: 600
  test_limit: 100
  val_size: 88
model:
  dim: 32
  head_dim: 8
  heads: 2
  mlp: 64
  depth: 2
  head_choices: [1, 2]
  mlp_choices: [32, 64]
  depth_choices: [1, 2]
train:
  steps: 8
  batch_size: 32
  warmup_steps: 2
  eval_batch: 50
`

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ofa runs the command line in-process and returns exit code, stdout, stderr.
func ofa(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// lastJSON decodes the last line of stdout.
func lastJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("last stdout line is not JSON: %q (%v)", lines[len(lines)-1], err)
	}
	return v
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, config string
		env          [2]string
		want         []string
	}{
		{"typo", "train:\n  lrr: 0.1\n", [2]string{}, []string{`unknown key "train.lrr"`, `did you mean "train.lr"`}},
		{"section typo", "trian:\n  lr: 0.1\n", [2]string{}, []string{`unknown key "trian.lr"`}},
		{"range", "train:\n  lr: -1\n", [2]string{}, []string{"train.lr", "want in (0, 1]"}},
		{"type", "train:\n  epochs: many\n", [2]string{}, []string{"epochs"}},
		{"env typo", "", [2]string{"OFA_TRAIN_LRR", "1"}, []string{"OFA_TRAIN_LRR"}},
		{"space", "model:\n  heads: 4\n  head_choices: [1, 2]\n", [2]string{}, []string{"head_choices"}},
		// strict decoding: each of these was accepted silently or with a changed value
		{"fractional epochs", "train:\n  epochs: 1.5\n", [2]string{}, []string{"epochs", "want a whole number"}},
		{"fractional batch", "train:\n  batch_size: 64.9\n", [2]string{}, []string{"batch_size", "want a whole number"}},
		{"scalar for a list", "model:\n  head_choices: 4\n", [2]string{}, []string{"head_choices"}},
		{"word for a boolean", "data:\n  embedded: 'yes please'\n", [2]string{}, []string{"embedded"}},
		{"negative steps", "train:\n  steps: -5\n", [2]string{}, []string{"train.steps", "want >= 0"}},
		{"zero shards", "train:\n  shards: 0\n", [2]string{}, []string{"train.shards", "want 1..64"}},
		{"dim and head dim", "model:\n  dim: 100\n  head_dim: 16\n", [2]string{}, []string{"model.dim", "multiple of model.head_dim"}},
		{"negative params multiple", "extract:\n  target:\n    params_multiple: -2\n", [2]string{}, []string{"extract.target.params_multiple"}},
		{"negative timeout", "extract:\n  remote:\n    timeout: -1s\n", [2]string{}, []string{"extract.remote.timeout"}},
		{"negative max bytes", "extract:\n  remote:\n    max_bytes: -1\n", [2]string{}, []string{"extract.remote.max_bytes"}},
		{"upper-case key", "TRAIN:\n  LR: 0.1\n", [2]string{}, []string{`"TRAIN"`, "lower case"}},
		{"huge sandwich", "sampler:\n  random: 1000000\n", [2]string{}, []string{"sampler.random"}},
		{"huge eval batch", "train:\n  eval_batch: 65536\n", [2]string{}, []string{"train.eval_batch"}},
		{"env fraction", "", [2]string{"OFA_TRAIN_EPOCHS", "1.5"}, []string{"epochs", "whole number"}},
		{"env word for a boolean", "", [2]string{"OFA_DATA_EMBEDDED", "yes please"}, []string{"embedded", "true or false"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env[0] != "" {
				t.Setenv(c.env[0], c.env[1])
			}
			args := []string{"train", "--out", t.TempDir()}
			if c.config != "" {
				args = append(args, "--config", writeConfig(t, c.config))
			}
			code, _, stderr := ofa(t, args...)
			if code == 0 {
				t.Fatal("accepted a bad configuration")
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", stderr, w)
				}
			}
		})
	}
}

// TestPrecedence: flags beat the environment, which beats the file.
func TestPrecedence(t *testing.T) {
	cfgFile := writeConfig(t, "train:\n  lr: 0.1\n  epochs: 3\n  batch_size: 16\n")
	t.Setenv("OFA_TRAIN_LR", "0.2")
	t.Setenv("OFA_TRAIN_EPOCHS", "4")
	fk := flagKeys{}
	cmd := (&app{}).trainCmd()
	if err := cmd.Flags().Parse([]string{"--epochs", "5"}); err != nil {
		t.Fatal(err)
	}
	fk.add(cmd.Flags(), "epochs", "train.epochs")
	c, err := configfile.Loader{File: cfgFile, Flags: changed(fk)}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Train.LR != 0.2 || c.Train.Epochs != 5 || c.Train.BatchSize != 16 {
		t.Fatalf("lr %v epochs %d batch %d: want 0.2 (env), 5 (flag), 16 (file)", c.Train.LR, c.Train.Epochs, c.Train.BatchSize)
	}
}

// TestTrainInspectEval runs the tool end to end on the embedded data with a tiny model.
func TestTrainInspectEval(t *testing.T) {
	cfg := writeConfig(t, tinyConfig)
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := ofa(t, "train", "--config", cfg, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("train failed: %s", stderr)
	}
	res := lastJSON(t, stdout)
	if res["steps"].(float64) != 8 || len(res["eval"].([]any)) != 3 {
		t.Fatalf("train result %v", res)
	}
	model := filepath.Join(out, "supernet.safetensors")

	code, stdout, stderr = ofa(t, "inspect", "--json", model)
	if code != 0 {
		t.Fatalf("inspect: %s", stderr)
	}
	ins := lastJSON(t, stdout)
	layers := ins["layers"].([]any)
	if len(layers) != 2 || ins["params"].(float64) <= 0 || ins["macs"].(float64) <= 0 {
		t.Fatalf("inspect %v", ins)
	}
	if l := layers[0].(map[string]any); l["heads"].(float64) != 2 || l["mlp"].(float64) != 64 {
		t.Fatalf("layer 0: %v", l)
	}

	sub := `{"layers":[{"layer":0,"heads":1,"mlp":40}]}`
	code, stdout, stderr = ofa(t, "eval", "--config", cfg, "--model", model, "--subnet", sub, "--json")
	if code != 0 {
		t.Fatalf("eval: %s", stderr)
	}
	ev := lastJSON(t, stdout)["results"].([]any)[0].(map[string]any)
	if acc := ev["accuracy"].(float64); acc < 0 || acc > 1 || ev["examples"].(float64) != 100 {
		t.Fatalf("eval %v", ev)
	}
	// invalid subnets are refused with the field named
	code, _, stderr = ofa(t, "eval", "--config", cfg, "--model", model, "--subnet", `{"layers":[{"layer":0,"heads":3,"mlp":4}]}`)
	if code == 0 || !strings.Contains(stderr, "subnet.layers[0].heads") {
		t.Fatalf("bad subnet: code %d, %s", code, stderr)
	}
	// a second train into the same directory must not clobber it
	code, _, stderr = ofa(t, "train", "--config", cfg, "--out", out)
	if code != exitUsage || !strings.Contains(stderr, "--resume") {
		t.Fatalf("retrain over a run: code %d, %s", code, stderr)
	}
	// a truncated checkpoint is rejected with the file named
	data, _ := os.ReadFile(model)
	bad := filepath.Join(t.TempDir(), "cut.safetensors")
	os.WriteFile(bad, data[:len(data)/2], 0o644)
	code, _, stderr = ofa(t, "inspect", bad)
	if code == 0 || !strings.Contains(stderr, bad) {
		t.Fatalf("truncated file: code %d, %s", code, stderr)
	}
}

// TestInterruptAndResume: SIGINT saves the state; --resume finishes the run with the same
// weights as a run that was never interrupted.
func TestInterruptAndResume(t *testing.T) {
	cfg := writeConfig(t, strings.Replace(tinyConfig, "steps: 8", "steps: 40", 1))
	straight := filepath.Join(t.TempDir(), "straight")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", straight); code != 0 {
		t.Fatal(stderr)
	}
	cut := filepath.Join(t.TempDir(), "cut")
	done := make(chan int)
	var stderr string
	go func() {
		var code int
		code, _, stderr = ofa(t, "train", "--config", cfg, "--out", cut)
		done <- code
	}()
	// interrupt once a few steps are logged
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(cut, "metrics.jsonl"))
		if bytes.Count(b, []byte("\n")) >= 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	code := <-done
	if code == exitOK {
		t.Skip("the run finished before the interrupt arrived")
	}
	if code != exitInterrupted || !strings.Contains(stderr, "--resume") {
		t.Fatalf("interrupted run: code %d, %s", code, stderr)
	}
	if code, _, stderr := ofa(t, "train", "--out", cut, "--resume"); code != 0 {
		t.Fatalf("resume: %s", stderr)
	}
	// the files differ only in the provenance (the output directory is part of the
	// configuration); the weights must be identical to the bit
	a, err := modelfile.Load(filepath.Join(straight, "supernet.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := modelfile.Load(filepath.Join(cut, "supernet.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range a.Params.Names() {
		if !slices.Equal(a.Params.Float32(name), b.Params.Float32(name)) {
			t.Fatalf("the resumed run's %s differs from the uninterrupted run's", name)
		}
	}
}

// TestResumeValidatesStoredConfig: a resume file's stored configuration is checked as
// strictly as a configuration file, and must describe the stored weights.
func TestResumeValidatesStoredConfig(t *testing.T) {
	cfg := writeConfig(t, tinyConfig)
	out := filepath.Join(t.TempDir(), "run")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", out); code != 0 {
		t.Fatal(stderr)
	}
	resume := filepath.Join(out, "resume.safetensors")
	orig, err := checkpoint.ReadFile(resume, checkpoint.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	stored := orig.Metadata[modelfile.KeyRunConfig]
	for _, c := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"unknown section", func(s string) string { return "trian:\n  lr: 0.1\n" + s }, []string{`unknown key "trian.lr"`}},
		{"unknown key", func(s string) string { return strings.Replace(s, "train:\n", "train:\n    lerning_rate: 0.1\n", 1) },
			[]string{`unknown key "train.lerning_rate"`}},
		{"upper case", func(s string) string { return "Train:\n  lr: 0.1\n" + s }, []string{`"Train"`, "lower case"}},
		{"dim of other weights", func(s string) string { return strings.Replace(s, "dim: 32", "dim: 128", 1) },
			[]string{"model section describes", "resumed weights"}},
		{"missing data dir", func(s string) string {
			return strings.Replace(strings.Replace(s, "embedded: true", "embedded: false", 1), "dir: \"\"", "dir: /nonexistent/fashion", 1)
		}, []string{"/nonexistent/fashion"}},
		{"huge sandwich", func(s string) string { return strings.Replace(s, "random: 0", "random: 1000000", 1) }, []string{"sampler.random"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			edited := c.edit(stored)
			if edited == stored {
				t.Fatalf("the edit changed nothing in:\n%s", stored)
			}
			f := *orig
			f.Metadata = maps.Clone(orig.Metadata)
			f.Metadata[modelfile.KeyRunConfig] = edited
			if err := checkpoint.WriteFile(resume, &f); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := ofa(t, "train", "--out", out, "--resume")
			if code == 0 {
				t.Fatal("resumed with a bad stored configuration")
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", stderr, w)
				}
			}
		})
	}
	// flags the resumed run would ignore are refused
	for _, flag := range [][]string{{"--steps", "5"}, {"--lr", "0.1"}, {"--force"}} {
		code, _, stderr := ofa(t, append([]string{"train", "--out", out, "--resume"}, flag...)...)
		if code != exitUsage || !strings.Contains(stderr, flag[0]) {
			t.Errorf("%v with --resume: code %d, %s", flag, code, stderr)
		}
	}
}

// TestSideFilesBounded: files the tool reads besides checkpoints are size-checked before
// they are read; /dev/zero is refused quickly instead of filling memory.
func TestSideFilesBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	cfg := writeConfig(t, tinyConfig)
	out := filepath.Join(t.TempDir(), "run")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", out); code != 0 {
		t.Fatal(stderr)
	}
	sn := filepath.Join(out, "supernet.safetensors")
	for _, args := range [][]string{
		{"train", "--config", "/dev/zero", "--out", t.TempDir()},
		{"eval", "--config", cfg, "--model", sn, "--subnet", "/dev/zero"},
		{"extract", "--config", cfg, "--supernet", sn, "--target", "latency_ms=1", "--latency-table", "/dev/zero", "--out", t.TempDir()},
	} {
		code, _, stderr := ofa(t, args...)
		if code == 0 || !strings.Contains(stderr, "/dev/zero") || !strings.Contains(stderr, "too large") {
			t.Errorf("%v: code %d, %s", args, code, stderr)
		}
	}
}

// TestTrainFromDense: `ofa train --from` starts a supernet from a trained model of the
// same size (here the largest subnet of another run's supernet) and refuses one of
// another size, naming the tensor.
func TestTrainFromDense(t *testing.T) {
	cfg := writeConfig(t, tinyConfig)
	first := filepath.Join(t.TempDir(), "first")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", first); code != 0 {
		t.Fatal(stderr)
	}
	dense := filepath.Join(first, "supernet.safetensors")
	code, stdout, stderr := ofa(t, "train", "--config", cfg, "--out", filepath.Join(t.TempDir(), "second"), "--from", dense)
	if code != 0 || !strings.Contains(stdout, "starting from the dense model") {
		t.Fatalf("train --from: code %d\n%s\n%s", code, stdout, stderr)
	}
	wider := writeConfig(t, strings.Replace(strings.Replace(tinyConfig, "mlp: 64", "mlp: 96", 1), "mlp_choices: [32, 64]", "mlp_choices: [48, 96]", 1))
	code, _, stderr = ofa(t, "train", "--config", wider, "--out", filepath.Join(t.TempDir(), "third"), "--from", dense)
	if code == 0 || !strings.Contains(stderr, dense) {
		t.Fatalf("train --from a model of another size: code %d, %s", code, stderr)
	}
}
