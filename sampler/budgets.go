package sampler

import (
	"fmt"
	"math/rand/v2"

	"github.com/ofa-go/ofa/arch"
)

// Limit is one deployment budget a supernet is trained for: at most Params unique
// parameters and at most MACs MACs per example (0: that dimension is free).
type Limit struct {
	Params int64 `json:"params,omitempty"`
	MACs   int64 `json:"macs,omitempty"`
}

// Budgets are what a "budgets" sampler needs besides its configuration: the supernet's
// architecture (to cost subnets) and the run's budgets, one Limit each.
type Budgets struct {
	Arch   arch.Arch
	Limits []Limit
}

// budgetIndex is the draw index of the k-th budget's subnet: far above the random draws'
// indices (1..Random), so adding random subnets leaves the budget draws unchanged.
func budgetIndex(k int) int { return MaxDraws/2 + k }

// scaleSteps is the number of bisection steps that fit a budget draw's widths to its limit.
const scaleSteps = 24

// BudgetAware is budget-aware supernet training (PreNAS's preferred architectures,
// AttentiveNAS's and FocusFormer's sampling near target sizes): each step trains the
// largest subnet, then for each budget one subnet at that budget (BudgetDraw), then Random
// subnets drawn uniformly from Space. A budget's subnets are the ones its extraction will
// look for, so they are trained as such instead of only through the weights they share.
// With Fixed the budget subnets are the same at every step (the draws of step 0, or
// Chosen).
type BudgetAware struct {
	Space  arch.Space
	Seed   uint64
	Random int
	// Reuse is the probability that a random draw is a ReuseDraw (Config.Reuse).
	Reuse float64
	// Budgets hold the supernet's architecture and the limits.
	Budgets Budgets
	// Band is the fraction below a limit that a budget draw may fall: a draw whose cost
	// ends below (1-Band)·limit is redrawn (up to budgetTries times). 0 accepts any draw
	// that fits the limit.
	Band float64
	// MLPStep is the granularity of a budget draw's MLP widths (neurons come in multiples
	// of it), finer than the space's choices so that small budgets can be met.
	MLPStep int
	// Fixed trains the same subnet per budget at every step (the draws of step 0).
	Fixed bool
	// NoLargest leaves the largest subnet out: a step trains the budgets' subnets (and the
	// random draws) only, for a run with a fixed external teacher.
	NoLargest bool
	// Chosen, when set (one per budget, in order), are the budgets' subnets at every step
	// instead of draws (Config.BudgetSubnets).
	Chosen []arch.Subnet
}

// budgetTries bounds the redraws of a budget subnet that fell below its band.
const budgetTries = 16

// Sample returns the largest subnet (unless NoLargest), one subnet per budget, then Random
// uniform draws.
func (b BudgetAware) Sample(step int) []arch.Subnet {
	checkStep(step)
	checkCount("BudgetAware.Random", b.Random, 0, MaxDraws/2-1)
	out := make([]arch.Subnet, 0, 1+len(b.Budgets.Limits)+b.Random)
	if !b.NoLargest {
		out = append(out, b.Space.Largest())
	}
	at := step
	if b.Fixed {
		at = 0
	}
	for k, l := range b.Budgets.Limits {
		if b.Chosen != nil {
			out = append(out, b.Chosen[k].Clone())
			continue
		}
		out = append(out, BudgetDraw(b.Space, b.Budgets.Arch, l, b.Band, b.MLPStep, newRand(b.Seed, at, budgetIndex(k))))
	}
	for i := 1; i <= b.Random; i++ {
		out = append(out, randomDraw(b.Space, b.Seed, step, i, b.Reuse))
	}
	return out
}

// Name is "budgets".
func (BudgetAware) Name() string { return KindBudgets }

// BudgetDraw returns a random subnet of supernet a within limit l: a depth uniformly from
// the space's depth choices, for each layer a random share of the heads and of the MLP
// width, then every share scaled by the largest common factor in (0, 1] that keeps the
// subnet within l (bisection), so the layers keep uneven widths and the cost lands just
// under the limit. Heads are counted from 1 to the largest head choice, MLP widths in
// multiples of mlpStep up to the largest MLP choice. A draw whose cost falls below
// (1-band)·limit (too deep for the limit even at the smallest widths, or a coarse grid) is
// redrawn up to budgetTries times, keeping the closest; when no depth fits even at the
// smallest widths the result is the smallest widths at the smallest depth.
func BudgetDraw(sp arch.Space, a arch.Arch, l Limit, band float64, mlpStep int, r *rand.Rand) arch.Subnet {
	if mlpStep < 1 {
		panic(fmt.Sprintf("sampler: MLP step %d, want >= 1", mlpStep))
	}
	maxH, maxM := sp.HeadChoices[len(sp.HeadChoices)-1], sp.MLPChoices[len(sp.MLPChoices)-1]
	var best arch.Subnet
	bestFill := -1.0
	for try := 0; try < budgetTries; try++ {
		d := sp.DepthChoices[r.IntN(len(sp.DepthChoices))]
		hs, ms := make([]float64, d), make([]float64, d)
		for i := range hs {
			hs[i], ms[i] = 1-r.Float64(), 1-r.Float64() // (0, 1]
		}
		at := func(scale float64) arch.Subnet {
			s := arch.Subnet{Layers: make([]arch.SubLayer, d)}
			for i := range s.Layers {
				h := min(maxH, max(1, int(scale*hs[i]*float64(maxH)+0.5)))
				m := min(maxM, max(mlpStep, mlpStep*int(scale*ms[i]*float64(maxM)/float64(mlpStep)+0.5)))
				s.Layers[i] = arch.SubLayer{Layer: i, Heads: h, MLP: m}
			}
			return s
		}
		// the largest scale whose subnet fits, by bisection (cost grows with the scale)
		s := at(0)
		if fill(a, s, l) > 1 {
			continue // too deep for the limit
		}
		lo, hi := 0.0, 1/min(1, minPositive(hs, ms))
		for range scaleSteps {
			mid := (lo + hi) / 2
			if fill(a, at(mid), l) <= 1 {
				lo = mid
			} else {
				hi = mid
			}
		}
		s = at(lo)
		f := fill(a, s, l)
		if f > bestFill {
			best, bestFill = s, f
		}
		if f >= 1-band {
			break
		}
	}
	if bestFill < 0 {
		return smallestAt(sp, mlpStep)
	}
	return best
}

// smallestAt is the smallest subnet a budget draw can make: the smallest depth, one head
// and mlpStep neurons per layer.
func smallestAt(sp arch.Space, mlpStep int) arch.Subnet {
	s := arch.Subnet{Layers: make([]arch.SubLayer, sp.DepthChoices[0])}
	for i := range s.Layers {
		s.Layers[i] = arch.SubLayer{Layer: i, Heads: 1, MLP: min(mlpStep, sp.MLPChoices[len(sp.MLPChoices)-1])}
	}
	return s
}

// minPositive is the smallest of the shares (all in (0, 1]).
func minPositive(xs ...[]float64) float64 {
	m := 1.0
	for _, x := range xs {
		for _, v := range x {
			m = min(m, v)
		}
	}
	return m
}

// fill is how much of limit l subnet s uses: the largest of its cost over each limit
// given (0 when l has none).
func fill(a arch.Arch, s arch.Subnet, l Limit) float64 {
	c := a.SubnetCost(s)
	f := 0.0
	if l.Params > 0 {
		f = max(f, float64(c.Params)/float64(l.Params))
	}
	if l.MACs > 0 {
		f = max(f, float64(c.MACs)/float64(l.MACs))
	}
	return f
}

// FixedSubnets returns, in the budgets' order, the subnet that s trains at every step for
// each budget when s is (or warms up into) a "budgets" sampler with Fixed; else nil. These
// are the subnets an extraction at those budgets should compare (extract.Selection.Trained).
func FixedSubnets(s Sampler) []arch.Subnet {
	if w, ok := s.(Warm); ok {
		s = w.Next
	}
	b, ok := s.(BudgetAware)
	if !ok || !b.Fixed {
		return nil
	}
	first := 1
	if b.NoLargest {
		first = 0
	}
	return b.Sample(0)[first : first+len(b.Budgets.Limits)]
}
