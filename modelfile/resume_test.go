package modelfile

import (
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/checkpoint"
)

// testResume is a resume state of testModel at step 7 with zero moments.
func testResume(t testing.TB) *Resume {
	t.Helper()
	m := testModel(t)
	r := &Resume{Model: m, Step: 7, OptimT: 7, M: map[string][]float32{}, V: map[string][]float32{}, RunConfig: "train: {}\n"}
	for _, n := range m.Params.Names() {
		k := len(m.Params.Float32(n))
		r.M[n], r.V[n] = make([]float32, k), make([]float32, k)
	}
	return r
}

// TestFinetuneProgressRoundTrip: a fine-tuning run's progress and a run's wall time
// survive a save and a load and stay out of the model's metadata; a resume state without
// them (a supernet's, or one written before the wall time was kept) has none.
func TestFinetuneProgressRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := testResume(t)
	plain := filepath.Join(dir, "plain.safetensors")
	if err := SaveResume(plain, r); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadResume(plain); err != nil || got.Finetune != nil || got.Timed {
		t.Fatalf("a resume state without progress or wall time: %+v, %v", got, err)
	}
	r.Finetune = &FinetuneProgress{Config: []byte(`{"steps":20}`), BestAccuracy: 0.75, BestStep: 5}
	r.Seconds, r.Timed = 1.5, true
	path := filepath.Join(dir, "ft.safetensors")
	if err := SaveResume(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := LoadResume(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Finetune, r.Finetune) || got.Seconds != 1.5 || !got.Timed {
		t.Fatalf("progress %+v, %gs (timed %v), want %+v, 1.5s", got.Finetune, got.Seconds, got.Timed, r.Finetune)
	}
	for _, k := range []string{KeyFinetune, KeySeconds} {
		if _, ok := got.Model.Extra[k]; ok {
			t.Fatalf("%q leaked into the model's metadata", k)
		}
	}
}

// testResumeFile is testResume's file as saved and decoded.
func testResumeFile(t testing.TB) *checkpoint.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.safetensors")
	if err := SaveResume(path, testResume(t)); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// resumeFileWith is testResumeFile with metadata key set to raw.
func resumeFileWith(t testing.TB, key, raw string) *checkpoint.File {
	f := testResumeFile(t)
	f.Metadata[key] = raw
	return f
}

// TestFinetuneProgressRejected: a progress record that is not JSON or is out of range, or
// a wall time that is not a number of seconds >= 0, makes the resume file invalid, naming
// the key.
func TestFinetuneProgressRejected(t *testing.T) {
	for _, raw := range []string{`{`, `{"config":{},"best_step":8}`, `{"config":{},"best_accuracy":1.5}`,
		`{"config":{},"best_step":-1}`, `{"best_step":1}`} {
		if _, err := ResumeFromFile(resumeFileWith(t, KeyFinetune, raw)); err == nil || !strings.Contains(err.Error(), `"finetune"`) {
			t.Errorf("progress %s: got %v, want an error naming the key", raw, err)
		}
	}
	for _, raw := range []string{"-1", "NaN", "+Inf", "soon", ""} {
		if _, err := ResumeFromFile(resumeFileWith(t, KeySeconds, raw)); err == nil || !strings.Contains(err.Error(), `"seconds"`) {
			t.Errorf("seconds %q: got %v, want an error naming the key", raw, err)
		}
	}
}

// FuzzFinetuneProgress: any text as a resume file's fine-tuning progress is either refused
// with an error or read within its ranges; it never panics.
func FuzzFinetuneProgress(f *testing.F) {
	for _, s := range []string{`{"config":{"steps":3},"best_accuracy":0.5,"best_step":7,"seconds":1}`, `{}`, `[`, `{"config":null}`,
		`{"config":1,"best_step":1e9}`, `{"config":{},"best_accuracy":"NaN"}`} {
		f.Add(s)
	}
	base := testResumeFile(f)
	f.Fuzz(func(t *testing.T, raw string) {
		file := &checkpoint.File{Metadata: maps.Clone(base.Metadata), Tensors: base.Tensors}
		file.Metadata[KeyFinetune] = raw
		got, err := ResumeFromFile(file)
		if err != nil {
			return
		}
		p := got.Finetune
		if p == nil || p.BestStep < 0 || p.BestStep > got.Step || p.BestAccuracy < 0 || p.BestAccuracy > 1 || len(p.Config) == 0 {
			t.Fatalf("accepted %q as %+v", raw, p)
		}
	})
}
