package extract

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// misleadingCase is a supernet whose trailing units are dead (their output weights are
// zero: heads 2-3 and neurons 10-19 of every layer write nothing) with scores that rank
// exactly those units first, so importance order is worse than the supernet's own order.
// The fitness is minus the mean squared difference between a subnet's logits and the whole
// model's on a batch: a subnet of live units reproduces the model, one of dead units does
// not.
func misleadingCase(t *testing.T) (Input, Budget) {
	t.Helper()
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	dh, d, h, m := a.HeadDim, a.Dim, a.Layers[0].Heads, a.Layers[0].MLP
	s := &Scores{}
	for l := range a.Layers {
		proj := p.Get(blockName(l, "attn.proj.weight")).Data().([]float32) // (D, H*dh)
		fc2 := p.Get(blockName(l, "mlp.fc2.weight")).Data().([]float32)    // (D, M)
		for o := 0; o < d; o++ {
			for k := 2 * dh; k < h*dh; k++ {
				proj[o*h*dh+k] = 0
			}
			for j := 10; j < m; j++ {
				fc2[o*m+j] = 0
			}
		}
		hs, ns := make([]float64, h), make([]float64, m)
		for i := range hs {
			hs[i] = float64(i + 1) // the dead heads score highest
		}
		for i := range ns {
			ns[i] = float64(i + 1)
		}
		s.Heads, s.Neurons, s.Layers = append(s.Heads, hs), append(s.Neurons, ns), append(s.Layers, 1)
	}
	var b data.Batch
	calib(t, 16).Batch(0, 0, &b)
	want, err := logits(a, p, arch.Largest(a), b)
	if err != nil {
		t.Fatal(err)
	}
	sp := arch.Space{HeadChoices: []int{2, 4}, MLPChoices: []int{10, 20}, DepthChoices: []int{1, 2, 3}}
	in := Input{Arch: a, Params: p, VerifyBatch: b, Scores: s, Space: &sp,
		Fitness: func(rp *supernet.Params) (Fitness, func()) {
			return func(sub arch.Subnet) (float64, error) {
				got, err := logits(a, rp, sub, b)
				if err != nil {
					return 0, err
				}
				mse := 0.0
				for i := range got {
					mse += (got[i] - want[i]) * (got[i] - want[i])
				}
				return -mse / float64(len(got)), nil
			}, func() {}
		}}
	live := arch.Subnet{}
	for l := range a.Layers {
		live.Layers = append(live.Layers, arch.SubLayer{Layer: l, Heads: 2, MLP: 10})
	}
	return in, Budget{Params: a.SubnetCost(live).Params}
}

// TestBestOrderNeverLosesToPlainSlices: where importance order is worse than the
// supernet's own order, extract.order best keeps an order at least as good as plain
// slices on validation, for its own sizes and for the sizes importance chose, and records
// every candidate.
func TestBestOrderNeverLosesToPlainSlices(t *testing.T) {
	in, b := misleadingCase(t)
	cfg := DefaultConfig()
	cfg.Search = SearchConfig{Population: 6, Generations: 2, Parents: 0.5, Mutation: 0.3, MLPStep: 2, Seed: 1}
	sel := Selection{Target: &budget.Target{Params: b.Params}}

	cfg.Order = OrderImportance
	imp, err := Extract(in, cfg, sel)
	if err != nil {
		t.Fatal(err)
	}
	plainFit, done := in.Fitness(in.Params) // the identity order is the supernet itself
	defer done()
	plainOfImp, err := plainFit(imp.Subnet)
	if err != nil {
		t.Fatal(err)
	}
	if !(plainOfImp > *imp.Manifest.ValAccuracy) {
		t.Fatalf("the case does not mislead: importance order %g, plain slices of the same sizes %g", *imp.Manifest.ValAccuracy, plainOfImp)
	}

	cfg.Order = OrderBest
	res, err := Extract(in, cfg, sel)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m.OrderRule != OrderBest || m.Order == OrderImportance || m.ValAccuracy == nil {
		t.Fatalf("order %q (rule %q) won, val %v", m.Order, m.OrderRule, m.ValAccuracy)
	}
	best := *m.ValAccuracy
	t.Logf("importance alone %g (plain slices of its sizes %g); best %g with %s: %+v", *imp.Manifest.ValAccuracy, plainOfImp, best, m.Order, m.Candidates)
	var names []string
	for _, c := range m.Candidates {
		names = append(names, c.Order)
		if c.ChosenValAccuracy > best || c.ValAccuracy > best {
			t.Errorf("candidate %s (val %g, chosen sizes %g) beats the chosen %g", c.Order, c.ValAccuracy, c.ChosenValAccuracy, best)
		}
		if c.Order == OrderNone && (c.Depth != DepthPrefix || c.ChosenValAccuracy > best) {
			t.Errorf("plain slices: %+v", c)
		}
		if c.Order == OrderImportance && !c.Subnet.Equal(imp.Subnet) {
			t.Errorf("the importance candidate found %s, the importance extraction %s", c.Subnet.Key(), imp.Subnet.Key())
		}
	}
	if !slices.Equal(names, DefaultCandidates()) {
		t.Fatalf("candidates %v", names)
	}
	if best < plainOfImp || best <= *imp.Manifest.ValAccuracy {
		t.Fatalf("best order %g; plain slices of importance's sizes %g, importance %g", best, plainOfImp, *imp.Manifest.ValAccuracy)
	}
	if !b.Fits(m.Achieved) || m.Evaluations == 0 || m.EvaluatedMACs <= 0 {
		t.Fatalf("achieved %+v for %s, %d evaluations, %d MACs", m.Achieved, b, m.Evaluations, m.EvaluatedMACs)
	}
	// without validation data the comparison cannot be made
	in.Fitness = nil
	if _, err := Extract(in, cfg, sel); err == nil || !strings.Contains(err.Error(), "extract.order best") {
		t.Fatalf("best without a fitness: %v", err)
	}
}

// TestNestedOrderKeepsTrainedWidths: the nested order leaves the set of units of every
// trained width unchanged and sorts each band between widths by score.
func TestNestedOrderKeepsTrainedWidths(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	s := score(t, a, p, DefaultCriteria())
	sp := arch.Space{HeadChoices: []int{1, 3, 4}, MLPChoices: []int{5, 12, 20}, DepthChoices: []int{3}}
	o := ByNestedImportance(a, s, sp)
	if err := o.Validate(a); err != nil {
		t.Fatal(err)
	}
	check := func(l int, what string, perm []int, v []float64, cuts []int) {
		lo := 0
		for _, hi := range cuts {
			for i := lo; i < hi; i++ {
				if perm[i] < lo || perm[i] >= hi {
					t.Fatalf("layer %d %s: position %d holds unit %d from outside the band [%d, %d): %v", l, what, i, perm[i], lo, hi, perm)
				}
				if i > lo && v[perm[i]] > v[perm[i-1]] {
					t.Fatalf("layer %d %s: band [%d, %d) not sorted by score: %v", l, what, lo, hi, perm)
				}
			}
			lo = hi
		}
	}
	moved := false
	for l := range a.Layers {
		check(l, "heads", o.Heads[l], s.Heads[l], []int{1, 3, 4})
		check(l, "neurons", o.Neurons[l], s.Neurons[l], []int{5, 12, 20})
		moved = moved || !slices.Equal(o.Neurons[l], identityPerm(20))
	}
	if !moved {
		t.Fatal("the nested order is the identity; the test would prove nothing")
	}
	// plain slices at a trained width compute what the nested order's slices compute
	q := p.Clone()
	if err := Reorder(a, q, o); err != nil {
		t.Fatal(err)
	}
	var b data.Batch
	calib(t, 8).Batch(0, 0, &b)
	sub := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 3, MLP: 12}, {Layer: 1, Heads: 1, MLP: 5}, {Layer: 2, Heads: 4, MLP: 20}}}
	x, _ := logits(a, p, sub, b)
	y, _ := logits(a, q, sub, b)
	for i := range x {
		if math.Abs(x[i]-y[i]) > 1e-4*(1+math.Abs(x[i])) {
			t.Fatalf("logit %d: plain %g, nested %g", i, x[i], y[i])
		}
	}
}

// TestOrderConfig: orders and candidates are validated, naming the key.
func TestOrderConfig(t *testing.T) {
	for _, c := range []struct {
		order string
		cands []string
		want  string
	}{
		{"bogus", nil, "extract.order"},
		{OrderBest, nil, "extract.candidates: empty"},
		{OrderBest, []string{OrderNone, OrderRandom}, "extract.candidates[1]"},
		{OrderBest, []string{OrderNone, OrderNone}, "listed twice"},
	} {
		cfg := DefaultConfig()
		cfg.Order, cfg.Candidates = c.order, c.cands
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("order %q candidates %v: %v, want %q", c.order, c.cands, err, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Order, cfg.Candidates = OrderNested, nil // candidates matter only for best
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
