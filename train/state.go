package train

import "fmt"

// State is what a trainer needs besides its weights to continue a run exactly: the step,
// the optimizer's update count and its moments keyed by weight name (the slices are the
// trainer's own; copy them to keep a snapshot across later steps).
type State struct {
	Step   int
	OptimT int
	M, V   map[string][]float32
}

// State returns the trainer's current state.
func (t *Trainer) State() State {
	s := State{Step: t.step, OptimT: t.opt.T, M: map[string][]float32{}, V: map[string][]float32{}}
	for i, name := range t.Params().Names() {
		s.M[name], s.V[name] = t.opt.M[i], t.opt.V[i]
	}
	return s
}

// Restore puts a trainer (built on the resumed weights) at the saved step with the saved
// optimizer state.
func (t *Trainer) Restore(s State) error {
	if s.Step > t.total {
		return fmt.Errorf("train: resume step %d is past the run's %d steps", s.Step, t.total)
	}
	for i, name := range t.Params().Names() {
		m, v := s.M[name], s.V[name]
		if len(m) != len(t.opt.M[i]) || len(v) != len(t.opt.V[i]) {
			return fmt.Errorf("train: resume state for %q does not match the model", name)
		}
		copy(t.opt.M[i], m)
		copy(t.opt.V[i], v)
	}
	t.opt.T = s.OptimT
	t.step = s.Step
	return nil
}
