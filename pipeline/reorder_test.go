package pipeline

import (
	"math"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"gorgonia.org/tensor"
)

// TestReorderDuringTraining: rewiring the supernet mid-run (weights and AdamW moments) does
// not change what training the largest subnet does: after undoing the permutation the
// weights equal those of a run that never reordered (up to float32 rounding).
func TestReorderDuringTraining(t *testing.T) {
	tr, te, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	a := arch.Default()
	a.Dim, a.HeadDim = 32, 8
	a.Layers = arch.Uniform(2, arch.Layer{Heads: 4, MLP: 24})
	cfg := train.Default()
	cfg.BatchSize, cfg.Steps, cfg.WarmupSteps, cfg.ClipNorm = 16, 12, 2, 0
	newTrainer := func() *train.Trainer {
		p, _ := supernet.NewParams(a, tensor.Float32, 3)
		l, _ := data.NewLoader(tr.Head(256), data.LoaderConfig{BatchSize: 16, Shuffle: true, DropLast: true, Mean: 0.3, Std: 0.35, Seed: 2})
		x, err := train.New(train.Setup{Arch: a, Params: p, Sampler: train.Fixed{arch.Largest(a)}, Train: l, Ops: nn.Fused{}, Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Close)
		return x
	}
	plain, rewired := newTrainer(), newTrainer()
	calib, _ := data.NewLoader(te.Head(64), data.LoaderConfig{BatchSize: 32, Mean: 0.3, Std: 0.35})
	hook := &reorderHook{every: 6, calib: calib, batches: 2, criteria: extract.DefaultCriteria(), log: func(string, ...any) {}}
	var order extract.Order
	for i := 0; i < 12; i++ {
		if _, err := plain.TrainStep(); err != nil {
			t.Fatal(err)
		}
		st, err := rewired.TrainStep()
		if err != nil {
			t.Fatal(err)
		}
		if st.Step == 6 {
			// record the permutation the hook will apply
			scores, err := extract.Score(a, rewired.Params(), extract.Calibration{Data: calib, Batches: 2}, hook.criteria)
			if err != nil {
				t.Fatal(err)
			}
			order = extract.ByImportance(scores)
		}
		if err := hook.OnStep(rewired, st); err != nil {
			t.Fatal(err)
		}
	}
	if hook.count != 1 {
		t.Fatalf("reordered %d times, want 1", hook.count)
	}
	moved := false
	for l := range order.Heads {
		for i, j := range order.Neurons[l] {
			moved = moved || i != j
		}
	}
	if !moved {
		t.Fatal("the importance order is the identity; the test would prove nothing")
	}
	// undo the permutation on the rewired weights and compare
	inv := extract.Order{}
	for l := range order.Heads {
		h, n := make([]int, len(order.Heads[l])), make([]int, len(order.Neurons[l]))
		for i, j := range order.Heads[l] {
			h[j] = i
		}
		for i, j := range order.Neurons[l] {
			n[j] = i
		}
		inv.Heads, inv.Neurons = append(inv.Heads, h), append(inv.Neurons, n)
	}
	if err := extract.Reorder(a, rewired.Params(), inv); err != nil {
		t.Fatal(err)
	}
	for _, name := range plain.Params().Names() {
		x, y := plain.Params().Float32(name), rewired.Params().Float32(name)
		for i := range x {
			if math.Abs(float64(x[i]-y[i])) > 1e-4*(1+math.Abs(float64(x[i]))) {
				t.Fatalf("%s[%d]: %v without reordering, %v with", name, i, x[i], y[i])
			}
		}
	}
}
