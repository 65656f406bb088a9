package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"gorgonia.org/tensor"
)

// cancelAt cancels the run's context after step `at`, as a Ctrl-C would.
type cancelAt struct {
	at     int
	cancel context.CancelFunc
}

func (c cancelAt) OnStep(_ *train.Trainer, s train.StepStats) error {
	if s.Step == c.at {
		c.cancel()
	}
	return nil
}

func (cancelAt) OnEval(*train.Trainer, train.EvalStats) error { return nil }

// freshDense is a dense model of cfg's architecture from its initialisation, as the
// lifecycle's dense baseline starts.
func freshDense(t *testing.T, cfg Config, ds *Dataset) *modelfile.Model {
	t.Helper()
	a, _, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
	if err != nil {
		t.Fatal(err)
	}
	p, err := supernet.NewParamsWith(a, tensor.Float32, cfg.Model.InitSeed, cfg.Model.InitOptions())
	if err != nil {
		t.Fatal(err)
	}
	return &modelfile.Model{Kind: modelfile.KindDense, Arch: a, Params: p, Preprocess: ds.Preprocess(), Data: ds.Record(),
		Provenance: &modelfile.Provenance{Step: "dense", Config: "test"}}
}

// TestFinetuneResumesBitIdentically: a fine-tuning stopped between evaluations and
// continued with Resume ends with the same weights, best step, accuracies and validation
// curve as one that ran through; its directory is then complete, without the resume
// state. A resume state of another training section is refused, naming both.
func TestFinetuneResumesBitIdentically(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Finetune.Steps, cfg.Finetune.EvalEvery = 12, 3
	ds, err := LoadData(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Finetune(context.Background(), cfg, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: filepath.Join(cfg.Out, "whole")})
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(cfg.Out, "stopped")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = Finetune(ctx, cfg, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: dir, hooks: []train.Hook{cancelAt{at: 7, cancel: cancel}}})
	if !errors.Is(err, train.ErrInterrupted) || !strings.Contains(err.Error(), "state saved at step 7") {
		t.Fatalf("stopped run: %v, want an interruption that names the saved step", err)
	}
	if _, err := os.Stat(filepath.Join(dir, modelfile.MarkerIncomplete)); err != nil {
		t.Fatalf("the stopped run's directory is not marked incomplete: %v", err)
	}

	other := cfg
	other.Finetune.LR *= 2
	if _, err := Finetune(context.Background(), other, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: dir, Resume: true}); err == nil ||
		!strings.Contains(err.Error(), "training section") || !strings.Contains(err.Error(), FileResume) {
		t.Fatalf("resuming with another learning rate: %v, want a refusal naming the resume file and the training section", err)
	}

	resumed, err := Finetune(context.Background(), cfg, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Steps != whole.Steps || resumed.BestStep != whole.BestStep || resumed.BestVal != whole.BestVal || resumed.Test != whole.Test {
		t.Fatalf("resumed: %d steps, best %v at %d, test %v; through: %d steps, best %v at %d, test %v", resumed.Steps, resumed.BestVal,
			resumed.BestStep, resumed.Test, whole.Steps, whole.BestVal, whole.BestStep, whole.Test)
	}
	if !reflect.DeepEqual(resumed.Curve, whole.Curve) || len(whole.Curve.Y) != 4 {
		t.Fatalf("validation curve: resumed %+v, through %+v (want 4 points)", resumed.Curve, whole.Curve)
	}
	for _, name := range whole.Model.Params.Names() {
		if !reflect.DeepEqual(resumed.Model.Params.Float32(name), whole.Model.Params.Float32(name)) {
			t.Fatalf("weight %s differs after the resume", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, FileResume)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a finished run keeps its resume state: %v", err)
	}
	if _, err := LoadFinetuned(dir); err != nil {
		t.Fatalf("the resumed run's directory: %v", err)
	}
}

// TestSameTrainingSectionAcrossVersions: a fine-tuning's resume state written by a version
// whose training section had fewer fields (here without shards, at its zero
// default) continues under this version; another value or a damaged section does not.
func TestSameTrainingSectionAcrossVersions(t *testing.T) {
	c := train.Config{LR: 1e-3, Epochs: 3, BatchSize: 16}
	cur, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(cur, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["shards"]; !ok {
		t.Fatalf("no field shards in %s", cur)
	}
	delete(fields, "shards")
	older, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTrainingSection(older, cur) {
		t.Fatalf("%s (an older version's) is not the same as %s", older, cur)
	}
	c.LR = 2e-3
	other, _ := json.Marshal(c)
	if sameTrainingSection(older, other) || sameTrainingSection([]byte("{"), cur) {
		t.Fatal("another learning rate or a damaged section is the same")
	}
}

// TestFinetuneResumedUntimed: a fine-tuning resumed from a state that does not record the
// earlier wall time (written before the state had it) says its time is partial, in every
// later resume state and in its result; a run through is timed.
func TestFinetuneResumedUntimed(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Finetune.Steps, cfg.Finetune.EvalEvery = 12, 3
	ds, err := LoadData(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Out, "ft")
	resumePath := filepath.Join(dir, FileResume)
	stopAt := func(at int, resume bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := Finetune(ctx, cfg, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: dir, Resume: resume, hooks: []train.Hook{cancelAt{at: at, cancel: cancel}}})
		if !errors.Is(err, train.ErrInterrupted) {
			t.Fatalf("run stopped at step %d: %v", at, err)
		}
	}
	stopAt(4, false)
	st, err := modelfile.LoadResume(resumePath)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Timed {
		t.Fatal("a fresh run's resume state does not record its wall time")
	}
	st.Seconds, st.Timed = 0, false // as an older version wrote it
	if err := modelfile.SaveResume(resumePath, st); err != nil {
		t.Fatal(err)
	}
	stopAt(8, true)
	if st, err = modelfile.LoadResume(resumePath); err != nil {
		t.Fatal(err)
	}
	if st.Step != 8 || st.Timed {
		t.Fatalf("resume state at step %d, timed %v: want step 8, not timed", st.Step, st.Timed)
	}
	res, err := Finetune(context.Background(), cfg, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Untimed || res.Steps != 12 {
		t.Fatalf("result: %d steps, untimed %v; want 12 steps, untimed", res.Steps, res.Untimed)
	}
	whole, err := Finetune(context.Background(), cfg, freshDense(t, cfg, ds), nil, ds, FinetuneOptions{Dir: filepath.Join(cfg.Out, "whole")})
	if err != nil {
		t.Fatal(err)
	}
	if whole.Untimed {
		t.Fatal("a run through says its wall time is partial")
	}
}
