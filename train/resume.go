package train

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/checkpoint"
)

// Resume-file metadata keys and format marker. A resume file is a model checkpoint (same
// tensors and metadata) plus the optimizer's moments as tensors "optim.m.<name>" and
// "optim.v.<name>", and the step, the optimizer's update count and the run configuration.
const (
	FormatResume  = "ofa-resume/1"
	KeyStep       = "step"
	KeyOptimT     = "optim_t"
	KeyRunConfig  = "run_config"
	optimMPrefix  = "optim.m."
	optimVPrefix  = "optim.v."
	resumeFormatK = checkpoint.KeyFormat
)

// Resume is what a resume file holds besides the model.
type Resume struct {
	Model     *checkpoint.Model
	Step      int
	OptimT    int
	M, V      map[string][]float32
	RunConfig string // the run's configuration, JSON, as the command stored it
}

// SaveResume writes the trainer's full state (weights, optimizer moments, step) with the
// given model metadata and run configuration to path, atomically.
func SaveResume(path string, t *Trainer, m *checkpoint.Model, runConfig string) error {
	mm := *m
	mm.Params = t.Params()
	f, err := mm.File()
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	f.Metadata[resumeFormatK] = FormatResume
	f.Metadata[KeyStep] = strconv.Itoa(t.Step())
	f.Metadata[KeyOptimT] = strconv.Itoa(t.opt.T)
	f.Metadata[KeyRunConfig] = runConfig
	for i, name := range t.Params().Names() {
		shape := append([]int(nil), t.Params().Get(name).Shape()...)
		f.Tensors = append(f.Tensors,
			checkpoint.Tensor{Name: optimMPrefix + name, Shape: shape, Data: t.opt.M[i]},
			checkpoint.Tensor{Name: optimVPrefix + name, Shape: shape, Data: t.opt.V[i]})
	}
	return checkpoint.WriteFile(path, f)
}

// LoadResume reads a resume file written by SaveResume.
func LoadResume(path string) (*Resume, error) {
	f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("train: resume file %s: %w: %s", path, checkpoint.ErrNotModel, fmt.Sprintf(format, args...))
	}
	if f.Metadata[resumeFormatK] != FormatResume {
		return nil, bad("metadata %q is %q, want %q", resumeFormatK, f.Metadata[resumeFormatK], FormatResume)
	}
	r := &Resume{M: map[string][]float32{}, V: map[string][]float32{}, RunConfig: f.Metadata[KeyRunConfig]}
	if r.Step, err = strconv.Atoi(f.Metadata[KeyStep]); err != nil || r.Step < 0 {
		return nil, bad("metadata %q is %q, want a step count", KeyStep, f.Metadata[KeyStep])
	}
	if r.OptimT, err = strconv.Atoi(f.Metadata[KeyOptimT]); err != nil || r.OptimT < 0 {
		return nil, bad("metadata %q is %q, want an update count", KeyOptimT, f.Metadata[KeyOptimT])
	}
	model := &checkpoint.File{Metadata: map[string]string{}}
	for k, v := range f.Metadata {
		switch k {
		case KeyStep, KeyOptimT, KeyRunConfig:
		case resumeFormatK:
			model.Metadata[k] = checkpoint.FormatModel
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
	if r.Model, err = checkpoint.ModelFromFile(model); err != nil {
		return nil, fmt.Errorf("train: resume file %s: %w", path, err)
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

// Restore puts a trainer (built on r.Model's weights) at the resumed step with the saved
// optimizer state.
func (t *Trainer) Restore(r *Resume) error {
	if r.Step > t.total {
		return fmt.Errorf("train: resume step %d is past the run's %d steps", r.Step, t.total)
	}
	for i, name := range t.Params().Names() {
		m, v := r.M[name], r.V[name]
		if len(m) != len(t.opt.M[i]) || len(v) != len(t.opt.V[i]) {
			return fmt.Errorf("train: resume state for %q does not match the model", name)
		}
		copy(t.opt.M[i], m)
		copy(t.opt.V[i], v)
	}
	t.opt.T = r.OptimT
	t.step = r.Step
	return nil
}
