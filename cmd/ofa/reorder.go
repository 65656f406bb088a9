package main

import (
	"fmt"

	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/train"
)

// ReorderConfig is the "reorder" section: rewiring during supernet training. Every
// EveryEpochs epochs the supernet's heads and neurons are scored on calibration batches and
// permuted so the most important come first (Once-for-All and DynaBERT do this), so that
// the small subnets, which use leading slices, train on the important units. The function
// the supernet computes does not change; AdamW's moments are permuted with the weights.
type ReorderConfig struct {
	EveryEpochs        int `mapstructure:"every_epochs"`
	CalibrationBatches int `mapstructure:"calibration_batches"`
}

// reorderHook rewires the supernet during training.
type reorderHook struct {
	every    int // steps
	calib    data.Batcher
	batches  int
	criteria extract.Criteria
	count    int
	say      func(string, ...any)
}

// OnStep implements train.Hook.
func (h *reorderHook) OnStep(t *train.Trainer, s train.StepStats) error {
	if h.every <= 0 || s.Step%h.every != 0 || s.Step == t.TotalSteps() {
		return nil
	}
	a, p := t.Arch(), t.Params()
	scores, err := extract.Score(a, p, extract.Calibration{Data: h.calib, Batches: h.batches}, h.criteria)
	if err != nil {
		return fmt.Errorf("reorder at step %d: %w", s.Step, err)
	}
	o := t.Optimizer()
	m, v := map[string][]float32{}, map[string][]float32{}
	for i, name := range p.Names() {
		m[name], v[name] = o.M[i], o.V[i]
	}
	if err := extract.Reorder(a, p, extract.ByImportance(scores), m, v); err != nil {
		return err
	}
	h.count++
	h.say("\nstep %d: reordered heads and neurons by importance (%s/%s)", s.Step, h.criteria.Heads, h.criteria.Neurons)
	return nil
}

// OnEval implements train.Hook.
func (h *reorderHook) OnEval(*train.Trainer, train.EvalStats) error { return nil }
