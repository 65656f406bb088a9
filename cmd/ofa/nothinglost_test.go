package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/dirlock"
	"github.com/ofa-go/ofa/modelfile"
)

// snapshot maps each file under dir to its mode and content hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[p] = d.Type().String() + " " + hex.EncodeToString(h[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editResume rewrites run's resume file with edit applied to its metadata.
func editResume(t *testing.T, run string, edit func(map[string]string)) {
	t.Helper()
	path := filepath.Join(run, "resume.safetensors")
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata = maps.Clone(f.Metadata)
	edit(f.Metadata)
	if err := checkpoint.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
}

// TestFailedResumeLeavesRunAlone: issue 29, findings 4, 5 and 7 (last item). A resume file
// without its configuration, one past the run's end and one with more optimizer updates
// than steps are refused, and the refused --resume leaves the run's directory exactly as
// it was (no .ofa-incomplete, config.yaml and metrics untouched), so the finished supernet
// stays usable.
func TestFailedResumeLeavesRunAlone(t *testing.T) {
	supernet, _ := trainTiny(t, "")
	run := filepath.Dir(supernet)
	resume := filepath.Join(run, "resume.safetensors")
	orig, err := os.ReadFile(resume)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(map[string]string)
		want string
	}{
		{"no run_config", func(m map[string]string) { delete(m, modelfile.KeyRunConfig) }, "stores no run configuration"},
		{"step past the end", func(m map[string]string) { m[modelfile.KeyStep] = "10000"; m[modelfile.KeyOptimT] = "10000" }, "past the run's"},
		{"optim_t past step", func(m map[string]string) { m[modelfile.KeyStep] = "7"; m[modelfile.KeyOptimT] = "8" }, "more optimizer updates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(resume, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			editResume(t, run, c.edit)
			before := snapshot(t, run)
			code, _, stderr := ofa(t, "train", "--out", run, "--resume")
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Fatalf("--resume: code %d, %q; want a failure saying %q", code, stderr, c.want)
			}
			if after := snapshot(t, run); !maps.Equal(before, after) {
				t.Fatalf("the failed --resume changed the run:\nbefore %v\nafter  %v", before, after)
			}
			if code, _, stderr := ofa(t, "eval", "--model", supernet); code != 0 {
				t.Fatalf("eval after the failed resume: %s", stderr)
			}
		})
	}
}

// TestCommandsInsideHeldRun: issue 29, finding 3. While a lifecycle directory is held,
// the commands the issue ran inside it are refused before writing, and a command on the
// directory above a held run is refused too.
func TestCommandsInsideHeldRun(t *testing.T) {
	supernet, cfg := trainTiny(t, "")
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "supernet"), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := dirlock.Lock(d)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, d)
	for _, args := range [][]string{
		{"train", "--out", filepath.Join(d, "supernet"), "--resume"},
		{"train", "--config", cfg, "--steps", "2", "--out", filepath.Join(d, "supernet"), "--force"},
		{"extract", "--supernet", supernet, "--config", cfg, "--ratios", "0.5", "--out", filepath.Join(d, "budgets", "2x", "extracted"), "--force"},
	} {
		code, _, stderr := ofa(t, args...)
		if code == 0 || !strings.Contains(stderr, "lies inside "+d) || !strings.Contains(stderr, "process "+strconv.Itoa(os.Getpid())) {
			t.Errorf("%v inside a held run: code %d, %q; want a refusal naming %s and its holder", args, code, stderr, d)
		}
	}
	if after := snapshot(t, d); !maps.Equal(before, after) {
		t.Errorf("refused commands changed the held run: before %v after %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(d, "budgets")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused command left %s/budgets (%v)", d, err)
	}
	unlock()

	// child held -> parent refused
	unlock, err = dirlock.Lock(filepath.Join(d, "supernet"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, stderr := ofa(t, "run", "--config", cfg, "--out", d, "--force")
	if code == 0 || !strings.Contains(stderr, "holds "+filepath.Join(d, "supernet")) {
		t.Errorf("run above a held directory: code %d, %q; want a refusal naming the held one", code, stderr)
	}
}

// TestFailedExtractLeavesNoDirectory: issue 26, item 8. A failed extract leaves no empty
// directory holding only the lock file.
func TestFailedExtractLeavesNoDirectory(t *testing.T) {
	supernet, cfg := trainTiny(t, "")
	out := filepath.Join(t.TempDir(), "x")
	code, _, stderr := ofa(t, "extract", "--supernet", supernet, "--config", cfg, "--target", "100x", "--out", out)
	if code == 0 {
		t.Fatal("extract at 100x succeeded on a tiny supernet")
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the failed extract (%s) left %s (%v)", strings.TrimSpace(stderr), out, err)
	}
}

// TestExportSpecialOutputs: issue 29, findings 1 and 8. `ofa export --out` never replaces
// what is not a regular file: a named pipe without a reader is a clear error and stays a
// pipe, /dev/null is written through, an existing directory is named as such.
func TestExportSpecialOutputs(t *testing.T) {
	supernet, _ := trainTiny(t, "")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	for _, c := range []struct{ out, want string }{{fifo, "no reader"}, {dir, "is a directory"}} {
		code, _, stderr := ofa(t, "export", "--model", supernet, "--out", c.out)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "rename") {
			t.Errorf("export --out %s: code %d, %q; want an error saying %q", c.out, code, stderr, c.want)
		}
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the pipe is now %v (%v)", fi.Mode(), err)
	}
	if code, _, stderr := ofa(t, "export", "--model", supernet, "--out", os.DevNull); code != 0 {
		t.Errorf("export --out %s: %s", os.DevNull, stderr)
	}
	if fi, err := os.Lstat(os.DevNull); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Errorf("%s is now %v (%v)", os.DevNull, fi.Mode(), err)
	}
}

// TestExtractChecksArgumentsFirst: issue 29, finding 7. Ratios, thresholds and floors are
// checked against the model's header before its weights are read: on a supernet whose
// last weight is NaN (which loading refuses), the argument error comes first.
func TestExtractChecksArgumentsFirst(t *testing.T) {
	supernet, cfg := trainTiny(t, "")
	b, err := os.ReadFile(supernet)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[len(b)-4:], []byte{0x00, 0x00, 0xc0, 0x7f}) // a float32 NaN, little endian
	bad := filepath.Join(t.TempDir(), "nan.safetensors")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := ofa(t, "extract", "--supernet", bad, "--config", cfg, "--ratios", "0.5", "--out", filepath.Join(t.TempDir(), "x")); code == 0 || !strings.Contains(stderr, "NaN") {
		t.Fatalf("the corrupted supernet loaded (code %d, %s): the test cannot tell checks before loading from checks after", code, stderr)
	}
	floors := writeConfig(t, tinyConfig+"extract:\n  floors:\n    min_heads: 100\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", cfg, "--ratios", "2"}, "ratios.heads[0]: got 2"},
		{[]string{"--config", cfg, "--ratios", "nan"}, "want a finite number"},
		{[]string{"--config", cfg, "--thresholds", "1.5"}, "thresholds.heads[0]: got 1.5"},
		{[]string{"--config", floors, "--target", "2x"}, "min_heads: got 100"},
	} {
		args := append([]string{"extract", "--supernet", bad, "--out", filepath.Join(t.TempDir(), "x")}, c.args...)
		code, _, stderr := ofa(t, args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: code %d, %q; want a usage error saying %q before loading the weights", c.args, code, stderr, c.want)
		}
	}
}

// TestPredictRefusesPipes: issue 29, finding 7. predict on a named pipe with no writer is
// refused at once instead of blocking forever.
func TestPredictRefusesPipes(t *testing.T) {
	supernet, _ := trainTiny(t, "")
	fifo := filepath.Join(t.TempDir(), "in.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	for _, in := range []string{fifo, t.TempDir()} {
		code, _, stderr := ofa(t, "predict", "--model", supernet, in)
		if code != exitUsage || !strings.Contains(stderr, in) {
			t.Errorf("predict %s: code %d, %q; want a usage error naming it", in, code, stderr)
		}
	}
}
