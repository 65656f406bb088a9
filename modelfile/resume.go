package modelfile

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/checkpoint"
)

// Resume-file metadata keys and format marker. A resume file is a model file (same
// tensors and metadata) plus the optimizer's moments as tensors "optim.m.<name>" and
// "optim.v.<name>", and the step, the optimizer's update count and the run configuration.
const (
	FormatResume = "ofa-resume/1"
	KeyStep      = "step"
	KeyOptimT    = "optim_t"
	KeyRunConfig = "run_config"
	// KeySeconds is the wall time of the steps done, over every invocation (files
	// written before the key lack it).
	KeySeconds = "seconds"
	// KeyFinetune holds a fine-tuning run's progress (FinetuneProgress as JSON); only
	// the resume files of fine-tuning runs have it.
	KeyFinetune  = "finetune"
	optimMPrefix = "optim.m."
	optimVPrefix = "optim.v."
)

// Resume is a training run's full state: the model being trained, the step, the
// optimizer's update count and moments (keyed by weight name), and the run's
// configuration as the caller stored it.
type Resume struct {
	Model     *Model
	Step      int
	OptimT    int
	M, V      map[string][]float32
	RunConfig string
	// Seconds is the wall time of the Step steps done, over every invocation; Timed says
	// whether the file records it.
	Seconds float64
	Timed   bool
	// Finetune is a fine-tuning run's progress (nil for a supernet's training run).
	Finetune *FinetuneProgress
}

// FinetuneProgress is what a fine-tuning run needs besides the weights and the optimizer
// to continue where it stopped: the training section it runs with (a resume state of
// another fine-tuning is refused) and the best validation accuracy so far and its step
// (the best model itself is the run directory's model file).
type FinetuneProgress struct {
	// Config is the run's training section as JSON (train.Config).
	Config json.RawMessage `json:"config"`
	// BestAccuracy and BestStep are the best validation accuracy so far and its step;
	// BestStep 0 means no evaluation yet.
	BestAccuracy float64 `json:"best_accuracy"`
	BestStep     int     `json:"best_step"`
}

// SaveResume writes r to path atomically.
func SaveResume(path string, r *Resume) error {
	f, err := r.Model.File()
	if err != nil {
		return fmt.Errorf("modelfile: %s: %w", path, err)
	}
	f.Metadata[KeyFormat] = FormatResume
	f.Metadata[KeyStep] = strconv.Itoa(r.Step)
	f.Metadata[KeyOptimT] = strconv.Itoa(r.OptimT)
	f.Metadata[KeyRunConfig] = r.RunConfig
	if r.Timed {
		f.Metadata[KeySeconds] = strconv.FormatFloat(r.Seconds, 'g', -1, 64)
	}
	if r.Finetune != nil {
		b, err := json.Marshal(r.Finetune)
		if err != nil {
			return fmt.Errorf("modelfile: %s: %w", path, err)
		}
		f.Metadata[KeyFinetune] = string(b)
	}
	p := r.Model.Params
	for _, name := range p.Names() {
		shape := append([]int(nil), p.Get(name).Shape()...)
		m, v := r.M[name], r.V[name]
		if len(m) != len(p.Float32(name)) || len(v) != len(m) {
			return fmt.Errorf("modelfile: %s: optimizer moments for %q are missing or mis-sized", path, name)
		}
		f.Tensors = append(f.Tensors,
			checkpoint.Tensor{Name: optimMPrefix + name, Shape: shape, Data: m},
			checkpoint.Tensor{Name: optimVPrefix + name, Shape: shape, Data: v})
	}
	return checkpoint.WriteFile(path, f)
}

// IsResume says whether a decoded file is a resume file.
func IsResume(f *checkpoint.File) bool { return f.Metadata[KeyFormat] == FormatResume }

// LoadResume reads a resume file written by SaveResume.
func LoadResume(path string) (*Resume, error) {
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		return nil, err
	}
	r, err := ResumeFromFile(f)
	if err != nil {
		return nil, fmt.Errorf("modelfile: resume file %s: %w", path, err)
	}
	return r, nil
}

// ResumeFromFile interprets a decoded file as a resume file.
func ResumeFromFile(f *checkpoint.File) (*Resume, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrNotModel, fmt.Sprintf(format, args...))
	}
	if !IsResume(f) {
		return nil, bad("metadata %q is %q, want %q", KeyFormat, f.Metadata[KeyFormat], FormatResume)
	}
	r := &Resume{M: map[string][]float32{}, V: map[string][]float32{}, RunConfig: f.Metadata[KeyRunConfig]}
	var err error
	if r.Step, err = strconv.Atoi(f.Metadata[KeyStep]); err != nil || r.Step < 0 {
		return nil, bad("metadata %q is %q, want a step count", KeyStep, f.Metadata[KeyStep])
	}
	if r.OptimT, err = strconv.Atoi(f.Metadata[KeyOptimT]); err != nil || r.OptimT < 0 {
		return nil, bad("metadata %q is %q, want an update count", KeyOptimT, f.Metadata[KeyOptimT])
	}
	if r.OptimT > r.Step {
		// one optimizer update per step: more updates than steps is a damaged or edited file
		return nil, bad("metadata %q is %d, more optimizer updates than the %d steps of %q", KeyOptimT, r.OptimT, r.Step, KeyStep)
	}
	if v, ok := f.Metadata[KeySeconds]; ok {
		if r.Seconds, err = strconv.ParseFloat(v, 64); err != nil || !(r.Seconds >= 0) || math.IsInf(r.Seconds, 0) {
			return nil, bad("metadata %q is %q, want a wall time in seconds >= 0", KeySeconds, v)
		}
		r.Timed = true
	}
	if js, ok := f.Metadata[KeyFinetune]; ok {
		var p FinetuneProgress
		if err := json.Unmarshal([]byte(js), &p); err != nil {
			return nil, bad("metadata %q is not a fine-tuning progress record: %v", KeyFinetune, err)
		}
		if p.BestStep < 0 || p.BestStep > r.Step || !(p.BestAccuracy >= 0 && p.BestAccuracy <= 1) || len(p.Config) == 0 {
			return nil, bad("metadata %q is %s: want a best step in [0, %d], an accuracy in [0, 1] and a config", KeyFinetune, js, r.Step)
		}
		r.Finetune = &p
	}
	model := &checkpoint.File{Metadata: map[string]string{}}
	for k, v := range f.Metadata {
		switch k {
		case KeyStep, KeyOptimT, KeyRunConfig, KeySeconds, KeyFinetune:
		case KeyFormat:
			model.Metadata[k] = FormatModel
		default:
			model.Metadata[k] = v
		}
	}
	for _, t := range f.Tensors {
		switch {
		case strings.HasPrefix(t.Name, optimMPrefix):
			r.M[strings.TrimPrefix(t.Name, optimMPrefix)] = t.Data
		case strings.HasPrefix(t.Name, optimVPrefix):
			r.V[strings.TrimPrefix(t.Name, optimVPrefix)] = t.Data
		default:
			model.Tensors = append(model.Tensors, t)
		}
	}
	if r.Model, err = FromFile(model); err != nil {
		return nil, err
	}
	for _, name := range r.Model.Params.Names() {
		n := r.Model.Params.Get(name).Shape().TotalSize()
		if len(r.M[name]) != n || len(r.V[name]) != n {
			return nil, bad("optimizer moments for %q are missing or have the wrong size", name)
		}
	}
	if len(r.M) != r.Model.Params.Len() || len(r.V) != r.Model.Params.Len() {
		return nil, bad("optimizer moments name tensors the model does not have")
	}
	return r, nil
}
