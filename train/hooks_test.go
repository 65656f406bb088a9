package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// metricsSteps reads a metrics file as "type:step" per line, failing on a line that is not
// a record.
func metricsSteps(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends in a torn line: %q", path, b)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var r struct {
			Type string `json:"type"`
			Step int    `json:"step"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, r.Type+":"+strconv.Itoa(r.Step))
	}
	return out
}

// TestMetricsHookResumed: after a kill -9 at step 47 and a resume from the state of step
// 30, the records of steps 31..47 and the torn last line go, the evaluations up to step 30
// stay, and the resumed run's records follow without duplicates.
func TestMetricsHookResumed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	killed := `{"type":"step","step":10,"loss":2.1}
{"type":"step","step":20,"loss":1.9}
{"type":"eval","step":20,"subnets":[]}
{"type":"step","step":30,"loss":1.7}
{"type":"eval","step":30,"subnets":[]}
{"type":"step","step":40,"loss":1.6}
{"type":"eval","step":40,"subnets":[]}
{"type":"step","ste`
	if err := os.WriteFile(path, []byte(killed), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := NewMetricsHookResumed(path, 10, 30)
	if err != nil {
		t.Fatal(err)
	}
	if h.Dropped != 3 {
		t.Errorf("Dropped = %d, want 3 (step 40, eval 40, the torn line)", h.Dropped)
	}
	// the resumed run repeats step 40 (no trainer needed: 40 is a multiple of Every)
	if err := h.OnStep(nil, StepStats{Step: 40}); err != nil {
		t.Fatal(err)
	}
	if err := h.OnEval(nil, EvalStats{Step: 40}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(metricsSteps(t, path), " ")
	if want := "step:10 step:20 eval:20 step:30 eval:30 step:40 eval:40"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}

	// a torn line only, past every record: only it goes
	if err := os.WriteFile(path, []byte(killed), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err = NewMetricsHookResumed(path, 10, 1000); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if got := len(metricsSteps(t, path)); got != 7 || h.Dropped != 1 {
		t.Fatalf("%d records kept, %d lines dropped; want 7 and 1", got, h.Dropped)
	}

	// a missing file is created; a whole file before the step is kept as it is
	fresh := filepath.Join(t.TempDir(), "metrics.jsonl")
	if h, err = NewMetricsHookResumed(fresh, 10, 5); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if fi, err := os.Stat(fresh); err != nil || fi.Size() != 0 || h.Dropped != 0 {
		t.Fatalf("missing file: %v, %v, dropped %d", fi, err, h.Dropped)
	}

	// a broken line that is not the last is refused, naming the file and the line
	broken := "{\"type\":\"step\",\"step\":10}\nnot json\n{\"type\":\"step\",\"step\":20}\n"
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetricsHookResumed(path, 10, 30); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v, want one naming %s and line 2", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != broken {
		t.Fatalf("a refused file was changed to %q", b)
	}
}
