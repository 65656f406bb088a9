//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
)

// lifecycleConfig is a tiny lifecycle with one budget whose phases each last long enough
// for a kill to land inside them: 40 supernet steps with a resume state at step 20, a
// latency table, and fine-tunes of 20 steps that keep their best model from step 5 on.
const lifecycleConfig = `
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
  steps: 40
  batch_size: 32
  warmup_steps: 2
  eval_batch: 50
  eval_every: 20
  checkpoint_every: 20
extract:
  calibration_batches: 2
  val_examples: 50
  search:
    population: 4
    generations: 1
finetune:
  steps: 20
  batch_size: 32
  warmup_steps: 1
  eval_batch: 50
  eval_every: 5
run:
  budgets: [2x]
  latency_repeats: 5
`

// reportRows is what report.json says of each model: the fields a resumed lifecycle
// must reproduce.
type reportRows struct {
	Reference reportRow   `json:"reference"`
	Rows      []reportRow `json:"rows"`
}

type reportRow struct {
	Budget   string  `json:"budget"`
	Variant  string  `json:"variant"`
	Params   int64   `json:"unique_params"`
	Accuracy float64 `json:"test_accuracy"`
	Steps    int     `json:"steps"`
	Model    string  `json:"model"`
}

func readReport(t *testing.T, dir string) reportRows {
	t.Helper()
	var r reportRows
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s/report.json: %v", dir, err)
	}
	if len(r.Rows) == 0 {
		t.Fatalf("%s/report.json has no rows", dir)
	}
	return r
}

// sameWeights fails unless the model files a and b hold bit-identical weights.
func sameWeights(t *testing.T, a, b string) {
	t.Helper()
	ma, err := modelfile.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := modelfile.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if ma.Kind != mb.Kind || !slices.Equal(ma.Params.Names(), mb.Params.Names()) {
		t.Fatalf("%s (%s, %v) and %s (%s, %v) are different models", a, ma.Kind, ma.Params.Names(), b, mb.Kind, mb.Params.Names())
	}
	for _, name := range ma.Params.Names() {
		if !slices.Equal(ma.Params.Float32(name), mb.Params.Float32(name)) {
			t.Errorf("%s of %s differs from %s", name, b, a)
			return
		}
	}
}

// metricRecords reads a metrics.jsonl without the fields that measure time.
func metricRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s line %d: %v: %q", path, i+1, err, line)
		}
		delete(r, "time")
		delete(r, "seconds")
		recs = append(recs, r)
	}
	return recs
}

// checkMetrics fails unless the metrics file at path records each step at most once, in
// order: a run that was redone or resumed must not leave the killed run's records behind.
func checkMetrics(t *testing.T, path string) {
	t.Helper()
	last := map[string]float64{}
	for i, r := range metricRecords(t, path) {
		typ, _ := r["type"].(string)
		step, ok := r["step"].(float64)
		if !ok || typ == "" {
			t.Errorf("%s record %d has no type or step: %v", path, i+1, r)
			continue
		}
		if prev, seen := last[typ]; seen && step <= prev {
			t.Errorf("%s record %d: %s step %v after step %v: records of another run are left in the file", path, i+1, typ, step, prev)
		}
		last[typ] = step
	}
}

// sameLifecycle fails unless the lifecycle in got reproduces the one in ref: the same
// report rows (variant, test accuracy, unique params, steps), bit-identical models and the
// same training records; and got holds no incomplete marker and no temporary file.
func sameLifecycle(t *testing.T, ref, got string) {
	t.Helper()
	rr, gr := readReport(t, ref), readReport(t, got)
	if rr.Reference != gr.Reference {
		t.Errorf("reference row: resumed %+v, uninterrupted %+v", gr.Reference, rr.Reference)
	}
	if !reflect.DeepEqual(rr.Rows, gr.Rows) {
		t.Errorf("report rows differ:\nresumed       %+v\nuninterrupted %+v", gr.Rows, rr.Rows)
	}
	models := []string{filepath.Join(pipeline.DirSupernet, pipeline.FileSupernet)}
	for _, r := range rr.Rows {
		if r.Model != "" {
			models = append(models, r.Model)
		}
	}
	for _, m := range models {
		sameWeights(t, filepath.Join(ref, m), filepath.Join(got, m))
	}
	runs, err := filepath.Glob(filepath.Join(ref, pipeline.DirBudgets, "*", "*", pipeline.FileMetrics))
	if err != nil || len(runs) == 0 {
		t.Fatalf("no fine-tuning runs in %s (%v)", ref, err)
	}
	runs = append(runs, filepath.Join(ref, pipeline.DirSupernet, pipeline.FileMetrics))
	for _, r := range runs {
		rel, _ := filepath.Rel(ref, r)
		checkMetrics(t, filepath.Join(got, rel))
		if a, b := metricRecords(t, r), metricRecords(t, filepath.Join(got, rel)); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the resumed lifecycle's records differ from the uninterrupted one's (%d vs %d records)", rel, len(b), len(a))
		}
	}
	if m := markers(t, got); len(m) > 0 {
		t.Errorf("incomplete markers left after the resumed lifecycle: %v", m)
	}
	if tmp := tempFiles(t, got); len(tmp) > 0 {
		t.Errorf("temporary files left after the resumed lifecycle: %v", tmp)
	}
}

// TestRunKilledAndResumed kills `ofa run` with SIGKILL in each phase of the lifecycle, one
// after the other (the fresh run is killed while training the supernet, the run resuming
// it is killed later in training, and so on: every resumed run is killed in the next
// phase; the fine-tuning continues from its resume state), then lets `ofa run --resume`
// finish and checks that it reproduces what an uninterrupted run with the same
// configuration reports, model for model.
func TestRunKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and resumes whole lifecycles")
	}
	cfg := writeConfig(t, lifecycleConfig)
	ref := filepath.Join(t.TempDir(), "uninterrupted")
	startOFA(t, "", "run", "--config", cfg, "--out", ref).mustSucceed()

	dir := filepath.Join(t.TempDir(), "run")
	in := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	sn := pipeline.DirSupernet
	x := filepath.Join(pipeline.DirBudgets, "2x", "extracted")
	ft := filepath.Join(pipeline.DirBudgets, "2x", "finetuned")
	phases := []struct {
		name string
		// killOn is the output at which the run is killed
		killOn string
		// says is what the run says of the state it resumed (after the first)
		says string
		// landed holds when the kill landed in the phase named
		landed func() bool
	}{
		{"supernet training before its first checkpoint", "train 12/40 (", "", func() bool {
			return exists(in(sn, modelfile.MarkerIncomplete)) && exists(in(sn, pipeline.FileMetrics)) && !exists(in(sn, pipeline.FileResume))
		}},
		{"supernet training after a checkpoint", "train 28/40 (", "== 1/3 training the supernet\n", func() bool {
			return exists(in(sn, modelfile.MarkerIncomplete)) && exists(in(sn, pipeline.FileResume))
		}},
		{"latency table", "== 2/3 latency table", "continuing at step 20", func() bool {
			return !exists(in(sn, modelfile.MarkerIncomplete)) && !exists(in(pipeline.FileLatency))
		}},
		{"extraction", "-- budget 2x", "reusing the finished run", func() bool {
			return exists(in(pipeline.FileLatency)) && (exists(in(x, modelfile.MarkerIncomplete)) || !exists(in(x, pipeline.FileModel)))
		}},
		{"fine-tuning", "2x finetune 8/20 (", "reusing " + in(pipeline.FileLatency), func() bool {
			// the fine-tuning evaluates every 5 steps: its resume state is at step 5
			return exists(in(ft, modelfile.MarkerIncomplete)) && exists(in(ft, pipeline.FileModel)) && exists(in(ft, pipeline.FileResume))
		}},
	}
	for i, ph := range phases {
		args := []string{"run", "--config", cfg, "--out", dir}
		if i > 0 {
			args = append(args, "--resume")
		}
		c := startOFA(t, ph.killOn, args...)
		if _, killed := c.wait(); !killed {
			t.Fatalf("the run was not killed at %q:\n%s", ph.killOn, c.output())
		}
		if !strings.Contains(c.output(), ph.says) {
			t.Errorf("the run killed in the %s does not say %q:\n%s", ph.name, ph.says, c.output())
		}
		if !ph.landed() {
			t.Fatalf("the kill at %q did not land in the %s:\n%s", ph.killOn, ph.name, c.output())
		}
		// a plain run refuses to start over a killed lifecycle
		if code, _, stderr := ofa(t, "run", "--config", cfg, "--out", dir); code != exitUsage || !strings.Contains(stderr, "--resume") {
			t.Fatalf("run over a lifecycle killed in the %s: code %d, %s", ph.name, code, stderr)
		}
	}
	stale := plantTemp(t, in(ft), 0)
	out := startOFA(t, "", "run", "--config", cfg, "--out", dir, "--resume").mustSucceed()
	if !strings.Contains(out, "reusing "+in(pipeline.FileLatency)) {
		t.Errorf("the last resumed run does not reuse the latency table:\n%s", out)
	}
	if !strings.Contains(out, "finetune: continuing at step 5 of 20") {
		t.Errorf("the last resumed run does not continue the killed fine-tuning from its resume state:\n%s", out)
	}
	if exists(in(ft, pipeline.FileResume)) {
		t.Errorf("the finished fine-tuning keeps its resume state")
	}
	// the resume states carry the wall time, so the report still knows the supernet's
	if md, err := os.ReadFile(in("report.md")); err != nil || strings.Contains(string(md), "wall time was not measured") {
		t.Errorf("the resumed lifecycle's report does not know the supernet's wall time (%v)", err)
	}
	if exists(stale) || !strings.Contains(out, "removed "+stale) {
		t.Errorf("the stale temporary file %s was not removed (and named) by the resumed run", stale)
	}
	sameLifecycle(t, ref, dir)

	// a kill between writing a model file and committing its directory is too short a
	// moment to hit from outside: make the states such kills leave, in this directory
	// (its stored configuration names it), and resume each
	b := in(pipeline.DirBudgets, "2x")
	report := []string{in("report.md"), in("report.json"), in("report.csv"), in("plots")}
	for _, st := range []struct {
		name, marked, step, model string
		gone                      []string
	}{
		// the expanded model written, its manifest and everything after it missing
		{"the expanded model", filepath.Join(b, "expanded"), "model", pipeline.FileModel,
			append([]string{filepath.Join(b, "expanded-finetuned"), filepath.Join(b, "scratch"), filepath.Join(b, "expanded", pipeline.FileManifest)}, report...)},
		// the supernet's last resume state and model written, nothing after them
		{"the supernet", in(sn), "train", pipeline.FileSupernet, append([]string{in(pipeline.FileLatency), in(pipeline.DirBudgets)}, report...)},
	} {
		for _, p := range st.gone {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := modelfile.BeginDir(st.marked, st.step); err != nil {
			t.Fatal(err)
		}
		if _, err := modelfile.Load(filepath.Join(st.marked, st.model)); !errors.Is(err, modelfile.ErrIncomplete) {
			t.Fatalf("%s, marked incomplete, loads: %v", st.name, err)
		}
		startOFA(t, "", "run", "--config", cfg, "--out", dir, "--resume").mustSucceed()
		t.Logf("resumed after a kill between writing %s and committing its directory", st.name)
		sameLifecycle(t, ref, dir)
	}
}

// TestOneWriterPerDirectory starts two writing commands on one output directory: the
// second fails at once naming the first's process id, and the first's result is complete.
// The first is stopped (SIGSTOP) once it holds the lock, so the second meets it for sure.
func TestOneWriterPerDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several ofa processes")
	}
	cfg := writeConfig(t, strings.Replace(tinyConfig, "steps: 8", "steps: 40", 1)+tinyExtract+"run:\n  budgets: [2x]\n  latency_repeats: 3\n")
	sn := filepath.Join(t.TempDir(), "sn")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", sn); code != 0 {
		t.Fatalf("train: %s", stderr)
	}
	supernet := filepath.Join(sn, pipeline.FileSupernet)
	cases := []struct {
		name  string
		args  func(out string) []string
		check func(t *testing.T, out string) // the first command's result; nil: it is killed instead
	}{
		{"train", func(out string) []string { return []string{"train", "--config", cfg, "--out", out} }, func(t *testing.T, out string) {
			if _, err := modelfile.Load(filepath.Join(out, pipeline.FileSupernet)); err != nil {
				t.Fatal(err)
			}
			r, err := modelfile.LoadResume(filepath.Join(out, pipeline.FileResume))
			if err != nil {
				t.Fatal(err)
			}
			if r.Step != 40 {
				t.Fatalf("the resume state is at step %d, want 40", r.Step)
			}
			checkMetrics(t, filepath.Join(out, pipeline.FileMetrics))
			var steps []float64
			for _, rec := range metricRecords(t, filepath.Join(out, pipeline.FileMetrics)) {
				if rec["type"] == "step" {
					steps = append(steps, rec["step"].(float64))
				}
			}
			if !slices.Equal(steps, []float64{10, 20, 30, 40}) {
				t.Fatalf("metrics record steps %v, want 10, 20, 30, 40", steps)
			}
		}},
		{"extract", func(out string) []string {
			return []string{"extract", "--config", cfg, "--supernet", supernet, "--target", "2x", "--out", out}
		}, func(t *testing.T, out string) {
			m, err := modelfile.Load(filepath.Join(out, pipeline.FileModel))
			if err != nil || m.Kind != modelfile.KindExtracted {
				t.Fatalf("extracted model: %v", err)
			}
			checkManifest(t, out)
		}},
		{"run", func(out string) []string {
			return []string{"run", "--config", cfg, "--supernet", supernet, "--out", out}
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			first := startOFA(t, "", c.args(out)...)
			if !first.waitFor(func() bool { return locksDir(out, first.pid()) }) {
				t.Fatalf("the first %s ended without holding the lock:\n%s", c.name, first.output())
			}
			first.signal(syscall.SIGSTOP)
			second := startOFA(t, "", c.args(out)...)
			code, _ := second.wait()
			want := "locked by process " + strconv.Itoa(first.pid())
			if code != exitError || !strings.Contains(second.output(), want) || !strings.Contains(second.output(), out) {
				t.Fatalf("the second %s: exit code %d, want %d and an error naming %s and %q:\n%s", c.name, code, exitError, out, want, second.output())
			}
			if c.check == nil {
				first.kill()
				first.wait()
				return
			}
			first.signal(syscall.SIGCONT)
			first.mustSucceed()
			c.check(t, out)
			if m := markers(t, out); len(m) > 0 {
				t.Errorf("markers left: %v", m)
			}
		})
	}
}

// checkManifest fails unless dir holds an extraction manifest that verified the model.
func checkManifest(t *testing.T, dir string) {
	t.Helper()
	var mf struct {
		Layers       []json.RawMessage `json:"layers"`
		Verification map[string]any    `json:"verification"`
	}
	b, err := os.ReadFile(filepath.Join(dir, pipeline.FileManifest))
	if err == nil {
		err = json.Unmarshal(b, &mf)
	}
	if err != nil || len(mf.Layers) == 0 || mf.Verification == nil {
		t.Fatalf("%s/%s: %v (%d layers, verification %v)", dir, pipeline.FileManifest, err, len(mf.Layers), mf.Verification)
	}
}

// crashConfig adds longer fine-tunes to the tiny supernet, so a kill lands inside one.
const crashConfig = `
extract:
  calibration_batches: 2
  val_examples: 50
  search:
    population: 4
    generations: 1
finetune:
  steps: 30
  batch_size: 32
  warmup_steps: 1
  eval_batch: 50
  eval_every: 5
`

// killPoint is a moment to kill a writing command at: when its condition holds (given
// the output directory and the child), or after a delay.
type killPoint struct {
	name  string
	when  func(out string, c func() *child) func() bool
	delay time.Duration
	// claimed says the command has taken its directory once the kill lands (so it has
	// removed the stale temporary files in it)
	claimed bool
}

// TestKilledWritersLeaveNoHalfResult kills extract, expand and finetune with SIGKILL at
// several moments (when they take the directory, mark it, write the model and side files,
// and after seeded random delays) and checks what each kill leaves: no model, a directory
// that readers refuse as incomplete naming the marker, or a complete model equal to an
// uninterrupted run's; never a half-written result that loads. The next run removes the
// temporary files killed writers leave; a complete result is replaced only with --force.
func TestKilledWritersLeaveNoHalfResult(t *testing.T) {
	if testing.Short() {
		t.Skip("kills many ofa processes")
	}
	sn, cfg := trainTiny(t, crashConfig)
	xdir := filepath.Join(t.TempDir(), "x")
	if code, _, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target", "2x", "--out", xdir); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	extracted := filepath.Join(xdir, pipeline.FileModel)
	file := func(name string) func(string, func() *child) func() bool {
		return func(out string, _ func() *child) func() bool { return replaced(filepath.Join(out, name)) }
	}
	claimed := killPoint{name: "directory locked", when: func(out string, c func() *child) func() bool {
		return func() bool { return locksDir(out, c().pid()) }
	}}
	marked := killPoint{name: "directory marked", claimed: true, when: func(out string, c func() *child) func() bool {
		return func() bool { return markedBy(out, c().pid()) }
	}}
	model := killPoint{name: "model written", claimed: true, when: file(pipeline.FileModel)}
	shows := func(name, line string) killPoint {
		return killPoint{name: name, claimed: true, when: func(_ string, c func() *child) func() bool {
			return func() bool { return strings.Contains(c().output(), line) }
		}}
	}
	cases := []struct {
		name   string
		args   []string
		kind   string
		points []killPoint
		check  func(t *testing.T, out string) // a complete result's side files
	}{
		{"extract", []string{"extract", "--config", cfg, "--supernet", sn, "--target", "2x"}, modelfile.KindExtracted,
			[]killPoint{claimed, marked, model, {name: "manifest written", claimed: true, when: file(pipeline.FileManifest)}},
			checkManifest},
		{"expand", []string{"expand", "--config", cfg, "--model", extracted, "--plan", "repeat:2", "--transforms", "lowrank:2"}, modelfile.KindExpanded,
			[]killPoint{claimed, marked, model}, nil},
		{"finetune", []string{"finetune", "--config", cfg, "--model", extracted, "--teacher", sn}, modelfile.KindFinetuned,
			[]killPoint{claimed, marked, model,
				shows("after its first metrics record", "finetune 11/30 ("), shows("half done", "finetune 15/30 ("),
				{name: "result written", claimed: true, when: file(pipeline.FileResult)}},
			func(t *testing.T, out string) {
				var r pipeline.FinetuneResult
				b, err := os.ReadFile(filepath.Join(out, pipeline.FileResult))
				if err == nil {
					err = json.Unmarshal(b, &r)
				}
				if err != nil || r.Steps != 30 {
					t.Fatalf("%s/%s: %v (steps %d, want 30)", out, pipeline.FileResult, err, r.Steps)
				}
				checkMetrics(t, filepath.Join(out, pipeline.FileMetrics))
			}},
	}
	rng := rand.New(rand.NewPCG(2024, 15))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			args := append(slices.Clone(c.args), "--out", out)
			// an uninterrupted run: the result every complete state must equal
			ref := filepath.Join(dir, "ref")
			start := time.Now()
			startOFA(t, "", append(slices.Clone(c.args), "--out", ref)...).mustSucceed()
			took := time.Since(start)
			refModel := filepath.Join(ref, pipeline.FileModel)

			points := slices.Clone(c.points)
			for i := range 3 {
				points = append(points, killPoint{name: fmt.Sprintf("random delay %d", i+1), delay: time.Duration(rng.Float64() * float64(took))})
			}
			states := map[string]int{}
			for i, p := range points {
				// a kill at a moment hits a first write (in a directory of its own); a
				// kill after a delay hits a replacement (--force) of what the kill
				// before left in the shared directory
				o, force := filepath.Join(dir, fmt.Sprintf("kill%d", i), "out"), []string(nil)
				if p.when == nil {
					o, force = out, []string{"--force"}
				}
				stale := plantTemp(t, o, i)
				var ch *child
				cond := func() bool { return true }
				if p.when != nil { // taken before the start, so that no write is missed
					cond = p.when(o, func() *child { return ch })
				}
				ch = startOFA(t, "", append(append(slices.Clone(c.args), "--out", o), force...)...)
				deadline := time.Now().Add(p.delay)
				ch.killWhen(func() bool { return !time.Now().Before(deadline) && cond() })
				code, killed := ch.wait()
				if !killed && code != 0 {
					t.Fatalf("%s (%s): exit code %d:\n%s", c.name, p.name, code, ch.output())
				}
				if (p.claimed || !killed) && exists(stale) {
					t.Errorf("%s (%s): the stale temporary file %s survived a run that took the directory", c.name, p.name, stale)
				}
				state := checkState(t, cfg, o, c.kind, refModel, c.check)
				states[state]++
				t.Logf("killed at %q (killed %v): %s; temporary files left: %v", p.name, killed, state, tempFiles(t, o))
			}
			t.Logf("%s: states after %d kills: %v", c.name, len(points), states)

			// the next run removes what killed writers left and writes a complete result
			stale := plantTemp(t, out, len(points))
			res := startOFA(t, "", append(slices.Clone(args), "--force")...).mustSucceed()
			if !strings.Contains(res, "removed "+stale) {
				t.Errorf("the run after the kills does not say it removed %s:\n%s", stale, res)
			}
			if tmp := tempFiles(t, out); len(tmp) > 0 {
				t.Errorf("temporary files left after a complete run: %v", tmp)
			}
			if s := checkState(t, cfg, out, c.kind, refModel, c.check); s != "complete" {
				t.Fatalf("after a complete run: %s", s)
			}
			// a complete result is replaced only with --force
			changed := replaced(filepath.Join(out, pipeline.FileModel))
			code, _, stderr := ofa(t, args...)
			if code != exitUsage || !strings.Contains(stderr, "--force") || changed() {
				t.Fatalf("a second %s without --force: code %d, %s", c.name, code, stderr)
			}
		})
	}
}

// TestFinetuneKilledAndResumed kills `ofa finetune` with SIGKILL half way, after its
// resume state at step 15, and continues it with --resume: the model equals an
// uninterrupted run's, bit for bit. --resume over a finished model, or with --force, is a
// usage error.
func TestFinetuneKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("kills an ofa process")
	}
	sn, cfg := trainTiny(t, crashConfig)
	dir := t.TempDir()
	x := filepath.Join(dir, "x")
	if code, _, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target", "2x", "--out", x); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	args := []string{"finetune", "--config", cfg, "--model", filepath.Join(x, pipeline.FileModel), "--teacher", sn}
	ref, out := filepath.Join(dir, "ref"), filepath.Join(dir, "out")
	startOFA(t, "", append(slices.Clone(args), "--out", ref)...).mustSucceed()

	c := startOFA(t, "finetune 18/30 (", append(slices.Clone(args), "--out", out)...)
	if _, killed := c.wait(); !killed {
		t.Fatalf("the fine-tuning was not killed:\n%s", c.output())
	}
	if !exists(filepath.Join(out, pipeline.FileResume)) || !exists(filepath.Join(out, modelfile.MarkerIncomplete)) {
		t.Fatalf("the killed fine-tuning left no resume state in a directory marked incomplete")
	}
	// inspect shows what the state holds
	code, stdout, stderr := ofa(t, "inspect", "--json", filepath.Join(out, pipeline.FileResume))
	if code != 0 {
		t.Fatalf("inspect of the resume state: %s", stderr)
	}
	st := lastJSON(t, stdout)
	ft, _ := st["finetune"].(map[string]any)
	if best, _ := ft["best_step"].(float64); st["step"] != 15.0 || st["seconds"] == nil || best < 5 || best > 15 {
		t.Errorf("inspect of the resume state: step %v, seconds %v, fine-tuning %v; want step 15, its wall time and a best step of 5-15",
			st["step"], st["seconds"], ft)
	}
	res := startOFA(t, "", append(slices.Clone(args), "--out", out, "--resume")...).mustSucceed()
	if !strings.Contains(res, "continuing at step 15 of 30") {
		t.Errorf("the resumed fine-tuning does not say where it continues:\n%s", res)
	}
	sameWeights(t, filepath.Join(ref, pipeline.FileModel), filepath.Join(out, pipeline.FileModel))
	if exists(filepath.Join(out, pipeline.FileResume)) {
		t.Error("the finished fine-tuning keeps its resume state")
	}
	for _, extra := range [][]string{{"--resume"}, {"--resume", "--force"}} {
		code, _, stderr := ofa(t, append(append(slices.Clone(args), "--out", out), extra...)...)
		if code != exitUsage || !strings.Contains(stderr, "--force") {
			t.Errorf("finetune %v over a finished model: code %d, %s", extra, code, stderr)
		}
	}
}

// checkState classifies what a killed writer left in out and checks it: "absent" (no
// model file), "incomplete" (the directory is marked and readers refuse its model naming
// the marker) or "complete" (the model loads, is of kind, equals the uninterrupted run's
// model ref, and check accepts its side files).
func checkState(t *testing.T, cfg, out, kind, ref string, check func(*testing.T, string)) string {
	t.Helper()
	path := filepath.Join(out, pipeline.FileModel)
	switch {
	case exists(filepath.Join(out, modelfile.MarkerIncomplete)):
		if _, err := modelfile.Load(path); !errors.Is(err, modelfile.ErrIncomplete) {
			t.Fatalf("%s in a directory marked incomplete: Load says %v, want ErrIncomplete", path, err)
		}
		for _, args := range [][]string{
			{"eval", "--config", cfg, "--model", path},
			{"expand", "--config", cfg, "--model", path, "--out", filepath.Join(t.TempDir(), "e")},
		} {
			code, _, stderr := ofa(t, args...)
			if code == 0 || !strings.Contains(stderr, modelfile.MarkerIncomplete) {
				t.Fatalf("ofa %s of an incomplete model: code %d, want an error naming %s: %s", args[0], code, modelfile.MarkerIncomplete, stderr)
			}
		}
		if exists(path) {
			return "incomplete (with a model file)"
		}
		return "incomplete"
	case !exists(path):
		if code, _, _ := ofa(t, "eval", "--config", cfg, "--model", path); code == 0 {
			t.Fatalf("ofa eval accepted a missing %s", path)
		}
		return "absent"
	}
	m, err := modelfile.Load(path)
	if err != nil {
		t.Fatalf("%s in an unmarked directory does not load: %v", path, err)
	}
	if m.Kind != kind {
		t.Fatalf("%s is a %s model, want %s", path, m.Kind, kind)
	}
	sameWeights(t, ref, path)
	if check != nil {
		check(t, out)
	}
	if code, _, stderr := ofa(t, "eval", "--config", cfg, "--model", path); code != 0 {
		t.Fatalf("ofa eval of a complete model: %s", stderr)
	}
	return "complete"
}
