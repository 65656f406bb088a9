//go:build mpi && unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/cluster/mpirun"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
)

// The tests of this file start ofa as ranks of an Open MPI job: `go test -tags mpi ./cmd/ofa`
// (openmpi-bin and libopenmpi-dev installed). Each compares the job with one process.

// mpiJob is `mpirun -np N ofa args...` started by a test; its output is rank 0's lines and
// every rank's errors.
type mpiJob struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan struct{}
	err   error
	ended time.Time
}

func (j *mpiJob) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.out.Write(p)
}

func (j *mpiJob) output() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.out.String()
}

// startMPI starts np ranks of ofa (this test binary running the ofa command line).
func startMPI(t *testing.T, np int, args ...string) *mpiJob {
	t.Helper()
	bin, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := []string{"--oversubscribe", "-np", strconv.Itoa(np), "-x", asOFAEnv + "=1", exe}
	j := &mpiJob{cmd: exec.Command(bin, append(a, args...)...), done: make(chan struct{})}
	j.cmd.Env = append(os.Environ(), append(mpirun.Env(), asOFAEnv+"=1")...)
	j.cmd.Stdout, j.cmd.Stderr = j, j
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		j.err = j.cmd.Wait()
		j.ended = time.Now()
		close(j.done)
	}()
	t.Cleanup(func() {
		j.cmd.Process.Signal(syscall.SIGKILL)
		<-j.done
	})
	return j
}

// wait waits for the job (at most hangGuard) and returns its error.
func (j *mpiJob) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-j.done:
		return j.err
	case <-time.After(hangGuard):
		t.Fatalf("mpirun %v still running after %v:\n%s", j.cmd.Args, hangGuard, j.output())
	}
	return nil
}

// runMPI runs np ranks of ofa to the end and fails t unless every rank succeeded.
func runMPI(t *testing.T, np int, args ...string) string {
	t.Helper()
	j := startMPI(t, np, args...)
	if err := j.wait(t); err != nil {
		t.Fatalf("mpirun -np %d ofa %v: %v\n%s", np, args, err, j.output())
	}
	return j.output()
}

// waitFor waits until the job's output holds text (the job still running).
func (j *mpiJob) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !strings.Contains(j.output(), text) {
		select {
		case <-j.done:
			t.Fatalf("the job ended before printing %q: %v\n%s", text, j.err, j.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q after %v:\n%s", text, hangGuard, j.output())
		}
	}
}

// rankPID is the process id of rank r of the job (a child of mpirun on this machine).
func (j *mpiJob) rankPID(t *testing.T, r int) int {
	t.Helper()
	root := j.cmd.Process.Pid
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", root))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			env, _ := os.ReadFile("/proc/" + p + "/environ")
			for _, kv := range bytes.Split(env, []byte{0}) {
				if string(kv) == fmt.Sprintf("OMPI_COMM_WORLD_RANK=%d", r) {
					pid, _ := strconv.Atoi(p)
					return pid
				}
			}
		}
	}
	t.Fatalf("no rank %d among mpirun's children", r)
	return 0
}

// moveAside renames dir to a fresh name and returns it: the runs compared write to the same
// --out path, which their stored configuration (in every file's metadata) names.
func moveAside(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "first")
	if err := os.Rename(dir, to); err != nil {
		t.Fatal(err)
	}
	return to
}

// sameFile fails t unless the two files hold the same bytes.
func sameFile(t *testing.T, what, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s: %s and %s differ", what, a, b)
	}
}

// sameResume fails unless resume files a and b hold the same state bit for bit: every
// tensor and every metadata key but the wall time (modelfile.KeySeconds), which both must
// record.
func sameResume(t *testing.T, a, b string) {
	t.Helper()
	var files [2]*checkpoint.File
	for i, p := range []string{a, b} {
		f, err := checkpoint.ReadFile(p, checkpoint.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Metadata[modelfile.KeySeconds]; !ok {
			t.Fatalf("resume state %s does not record its wall time", p)
		}
		delete(f.Metadata, modelfile.KeySeconds)
		files[i] = f
	}
	if !reflect.DeepEqual(files[0].Metadata, files[1].Metadata) {
		t.Fatalf("resume state: the metadata of %s and %s differ", a, b)
	}
	if len(files[0].Tensors) != len(files[1].Tensors) {
		t.Fatalf("resume state: %s holds %d tensors, %s %d", a, len(files[0].Tensors), b, len(files[1].Tensors))
	}
	for i, x := range files[0].Tensors {
		y := files[1].Tensors[i]
		if x.Name != y.Name || !slices.Equal(x.Shape, y.Shape) || !slices.Equal(bits(x.Data), bits(y.Data)) {
			t.Fatalf("resume state: tensor %s of %s and %s differ", x.Name, a, b)
		}
	}
}

// bits are the IEEE 754 bits of xs (so NaNs compare too).
func bits(xs []float32) []uint32 {
	out := make([]uint32, len(xs))
	for i, x := range xs {
		out[i] = math.Float32bits(x)
	}
	return out
}

const mpiTrain = `
data:
  embedded: true
  train_limit: 640
  test_limit: 100
  val_size: 88
  augment:
    crop_pad: 0
    hflip: false
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
  batch_size: 32
  warmup_steps: 2
  eval_batch: 50
  eval_every: 8
  checkpoint_every: 4
`

// TestMPITrainEqualsShards: 2 ranks x 1 shard train the supernet of 1 process x 2 shards,
// and 2 ranks x 2 shards that of 1 x 4, byte for byte (weights, optimizer state, metadata).
func TestMPITrainEqualsShards(t *testing.T) {
	for _, shards := range []int{2, 4} {
		t.Run(fmt.Sprintf("2x%d", shards/2), func(t *testing.T) {
			cfg := writeConfig(t, mpiTrain+fmt.Sprintf("  steps: 16\n  shards: %d\n", shards))
			two := filepath.Join(t.TempDir(), "out")
			if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", two); code != 0 {
				t.Fatalf("one process: %s", stderr)
			}
			one := moveAside(t, two)
			out := runMPI(t, 2, "train", "--config", cfg, "--out", two)
			if !strings.Contains(out, "data parallel over 2 ranks") {
				t.Fatalf("rank 0 did not say it trains over 2 ranks:\n%s", out)
			}
			sameFile(t, "supernet", filepath.Join(one, "supernet.safetensors"), filepath.Join(two, "supernet.safetensors"))
			sameResume(t, filepath.Join(one, "resume.safetensors"), filepath.Join(two, "resume.safetensors"))
		})
	}
}

// TestMPIKillRankResume: kill -9 of one rank stops every rank within seconds; the last
// checkpoint stays valid; resuming it in one process (the rank count changes from 2 to 1:
// the 2 shards run in one process) gives the uninterrupted run's supernet, byte for byte.
func TestMPIKillRankResume(t *testing.T) {
	cfg := writeConfig(t, mpiTrain+"  steps: 40\n  shards: 2\n")
	dir := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", dir); code != 0 {
		t.Fatalf("uninterrupted: %s", stderr)
	}
	straight := moveAside(t, dir)
	j := startMPI(t, 2, "train", "--config", cfg, "--out", dir)
	j.waitFor(t, "train 22/40")
	pid := j.rankPID(t, 1)
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := j.wait(t); err == nil {
		t.Fatalf("the job succeeded although rank 1 was killed:\n%s", j.output())
	}
	t.Logf("kill -9 of rank 1 at step >= 22: every rank gone %v later", j.ended.Sub(killed).Round(time.Millisecond))
	r, err := modelfile.LoadResume(filepath.Join(dir, "resume.safetensors"))
	if err != nil {
		t.Fatalf("the checkpoint after the kill: %v", err)
	}
	if r.Step < 20 || r.Step%4 != 0 || r.Step >= 40 {
		t.Fatalf("checkpoint at step %d, want a multiple of 4 in [20, 40)", r.Step)
	}
	t.Logf("checkpoint valid at step %d", r.Step)
	if code, _, stderr := ofa(t, "train", "--out", dir, "--resume"); code != 0 {
		t.Fatalf("resume in one process: %s", stderr)
	}
	sameFile(t, "resumed supernet", filepath.Join(straight, "supernet.safetensors"), filepath.Join(dir, "supernet.safetensors"))
}

// TestMPIInterrupt: SIGTERM to one rank (as Slurm's scancel or a Kubernetes pod deletion
// sends it) stops every rank after the same step, rank 0 saves the state there, and
// resuming under mpirun finishes with the uninterrupted run's supernet, byte for byte.
func TestMPIInterrupt(t *testing.T) {
	cfg := writeConfig(t, mpiTrain+"  steps: 120\n  shards: 2\n")
	dir := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := ofa(t, "train", "--config", cfg, "--out", dir); code != 0 {
		t.Fatalf("uninterrupted: %s", stderr)
	}
	straight := moveAside(t, dir)
	j := startMPI(t, 2, "train", "--config", cfg, "--out", dir)
	j.waitFor(t, "train 12/120")
	sent := time.Now()
	if err := syscall.Kill(j.rankPID(t, 1), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := j.wait(t)
	t.Logf("SIGTERM to rank 1: every rank gone %v later (%v)", j.ended.Sub(sent).Round(time.Millisecond), err)
	r, err := modelfile.LoadResume(filepath.Join(dir, "resume.safetensors"))
	if err != nil {
		t.Fatalf("the state after SIGTERM: %v\n%s", err, j.output())
	}
	out := j.output()
	for _, want := range []string{fmt.Sprintf("rank 1 of 2: training interrupted at step %d", r.Step),
		fmt.Sprintf("rank 0 of 2: training interrupted at step %d; state saved at step %d", r.Step, r.Step)} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q:\n%s", want, out)
		}
	}
	t.Logf("both ranks stopped after step %d; state saved there", r.Step)
	runMPI(t, 2, "train", "--out", dir, "--resume")
	sameFile(t, "resumed supernet", filepath.Join(straight, "supernet.safetensors"), filepath.Join(dir, "supernet.safetensors"))
}

const mpiRun = `
finetune:
  steps: 6
  batch_size: 32
  warmup_steps: 1
  eval_batch: 50
extract:
  calibration_batches: 2
  val_examples: 50
  search:
    population: 4
    generations: 1
run:
  budgets: [1.5x, 2x, 3x]
  expand: false
  latency_repeats: 3
`

// mpiReportRows reads a report's rows without what a clock measured.
func mpiReportRows(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range append([]report.Row{rep.Reference}, rep.Rows...) {
		r.LatencyMS = 0
		for i := range r.Compute {
			r.Compute[i].Seconds, r.Compute[i].Untimed = 0, false
		}
		j, _ := json.Marshal(r)
		rows = append(rows, string(j))
	}
	return rows
}

// TestMPIRunReport: `ofa run` under 2 ranks writes the report of one process, row for row
// (latencies and wall times aside); a rank killed inside a budget takes the job down, and
// `ofa run --resume` under 2 ranks finishes with the same report.
func TestMPIRunReport(t *testing.T) {
	cfg := writeConfig(t, mpiTrain+"  steps: 16\n  shards: 2\n"+mpiRun)
	two := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := ofa(t, "run", "--config", cfg, "--out", two); code != 0 {
		t.Fatalf("one process: %s", stderr)
	}
	one := moveAside(t, two)
	want := mpiReportRows(t, one)

	runMPI(t, 2, "run", "--config", cfg, "--out", two)
	if got := mpiReportRows(t, two); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("2 ranks:\n%s\none process:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sameFile(t, "supernet", filepath.Join(one, "supernet", "supernet.safetensors"), filepath.Join(two, "supernet", "supernet.safetensors"))

	killed := two
	moveAside(t, two)
	j := startMPI(t, 2, "run", "--config", cfg, "--out", killed)
	j.waitFor(t, "-- budget 1.5x")
	time.Sleep(500 * time.Millisecond) // rank 1 is inside budget 2x
	at := time.Now()
	if err := syscall.Kill(j.rankPID(t, 1), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := j.wait(t); err == nil {
		t.Fatal("the job succeeded although rank 1 was killed")
	}
	t.Logf("kill -9 of rank 1 inside a budget: every rank gone %v later", j.ended.Sub(at).Round(time.Millisecond))
	runMPI(t, 2, "run", "--config", cfg, "--out", killed, "--resume")
	if got := mpiReportRows(t, killed); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("killed and resumed:\n%s\none process:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMPIFinetune: `ofa finetune` of an extracted model, distilled from its supernet,
// under 2 ranks (finetune.shards 2: one each) saves the model of one process, byte for
// byte; `ofa extract` refuses to run under mpirun.
func TestMPIFinetune(t *testing.T) {
	sn, cfg := trainTiny(t, tinyExtract+"  shards: 2\n")
	x := filepath.Join(t.TempDir(), "x")
	if code, _, stderr := ofa(t, "extract", "--config", cfg, "--supernet", sn, "--target", "2x", "--out", x); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	model := filepath.Join(x, "model.safetensors")
	dir := filepath.Join(t.TempDir(), "f")
	if code, _, stderr := ofa(t, "finetune", "--config", cfg, "--model", model, "--teacher", sn, "--out", dir); code != 0 {
		t.Fatalf("finetune in one process: %s", stderr)
	}
	one := moveAside(t, dir)
	runMPI(t, 2, "finetune", "--config", cfg, "--model", model, "--teacher", sn, "--out", dir)
	sameFile(t, "fine-tuned model", filepath.Join(one, "model.safetensors"), filepath.Join(dir, "model.safetensors"))

	j := startMPI(t, 2, "extract", "--config", cfg, "--supernet", sn, "--target", "2x", "--out", filepath.Join(t.TempDir(), "y"))
	if err := j.wait(t); err == nil || !strings.Contains(j.output(), "ofa extract runs in one process") {
		t.Fatalf("extract under mpirun: %v\n%s", err, j.output())
	}
}
