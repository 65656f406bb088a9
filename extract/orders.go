package extract

import (
	"fmt"
	"slices"
	"sort"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/supernet"
)

// Unit orders beyond the three of OrderImportance, OrderNone and OrderRandom.
const (
	// OrderNested respects nested training: every width the supernet trained (a head or
	// MLP choice of its space) keeps exactly the units it was trained with, and only inside
	// each band between two trained widths are units ordered by importance. At a trained
	// width it is the plain leading slice; between widths it keeps the most important of
	// the band's units.
	OrderNested = "nested"
	// OrderBest tries every order of Config.Candidates at the budget, runs the size
	// selection (greedy ranking and search) for each, evaluates every candidate's sizes
	// under every order on the validation split and keeps the most accurate pair. Since
	// OrderNone (plain leading slices) is a candidate by default, the extraction is never
	// worse on validation than plain slices of its own sizes.
	OrderBest = "best"
)

// DefaultCandidates are the orders OrderBest compares, in tie-breaking order: plain slices
// first (the simplest answer wins a tie), then the nested-training-aware order, then
// importance.
func DefaultCandidates() []string { return []string{OrderNone, OrderNested, OrderImportance} }

// validateCandidates checks extract.candidates: known orders (not random, a baseline
// only), each once, at least one.
func validateCandidates(c []string) error {
	if len(c) == 0 {
		return fmt.Errorf("%w: extract.candidates: empty, want some of none, nested, importance (extract.order best compares them)", ErrExtract)
	}
	for i, o := range c {
		if o != OrderNone && o != OrderNested && o != OrderImportance {
			return fmt.Errorf("%w: extract.candidates[%d]: got %q, want none, nested or importance", ErrExtract, i, o)
		}
		if slices.Index(c, o) != i {
			return fmt.Errorf("%w: extract.candidates[%d]: %q is listed twice", ErrExtract, i, o)
		}
	}
	return nil
}

// ByNestedImportance is the OrderNested order of a supernet with space sp: in every layer
// the heads (neurons) are cut into bands at the head (MLP) choices of sp that are below the
// layer's size, and each band is sorted by decreasing score, so the set of units of every
// trained width is unchanged. Ties keep the lower index first.
func ByNestedImportance(a arch.Arch, s *Scores, sp arch.Space) Order {
	o := Order{Heads: make([][]int, len(a.Layers)), Neurons: make([][]int, len(a.Layers))}
	for l, ly := range a.Layers {
		o.Heads[l] = bandedArgsort(s.Heads[l], sp.HeadChoices, ly.Heads)
		o.Neurons[l] = bandedArgsort(s.Neurons[l], sp.MLPChoices, ly.MLP)
	}
	return o
}

// bandedArgsort sorts indices 0..n-1 by decreasing v inside each band [c_i, c_{i+1}) cut
// at the choices below n.
func bandedArgsort(v []float64, choices []int, n int) []int {
	p := identityPerm(n)
	cuts := []int{0}
	for _, c := range choices {
		if c > 0 && c < n && c > cuts[len(cuts)-1] {
			cuts = append(cuts, c)
		}
	}
	cuts = append(cuts, n)
	for i := 0; i+1 < len(cuts); i++ {
		band := p[cuts[i]:cuts[i+1]]
		sort.SliceStable(band, func(x, y int) bool { return v[band[x]] > v[band[y]] })
	}
	return p
}

// OrderCandidate is one unit order an OrderBest extraction tried.
type OrderCandidate struct {
	Order string `json:"order"`
	// Depth is how its selection gave up layers (plain slices and the nested order keep
	// the first layers, as the supernet trained elastic depth).
	Depth string `json:"depth"`
	// Subnet is the most accurate subnet its own selection found, with ValAccuracy.
	Subnet      arch.Subnet `json:"subnet"`
	ValAccuracy float64     `json:"val_accuracy"`
	// ChosenValAccuracy is the validation accuracy of the chosen sizes (the winner's
	// subnet) with this order's units: for OrderNone, the plain slices of the same sizes.
	ChosenValAccuracy float64 `json:"chosen_sizes_val_accuracy"`
}

// trial is one unit order being tried: the reordered supernet, its scores and what its
// selection found. memo holds the validation accuracy of every subnet evaluated with it.
type trial struct {
	name, depth string
	order       Order
	rp          *supernet.Params
	rs          *Scores
	sub         arch.Subnet
	acc         float64
	evaluated   bool
	hist        []Generation
	memo        map[string]float64
}

// newTrial reorders the supernet by the named order.
func newTrial(in Input, cfg Config, name string, s *Scores) (*trial, error) {
	order, err := makeOrder(in, s, cfg, name)
	if err != nil {
		return nil, err
	}
	rp := in.Params.Clone()
	if err := Reorder(in.Arch, rp, order); err != nil {
		return nil, err
	}
	depth := cfg.Depth
	if cfg.Order == OrderBest && (name == OrderNone || name == OrderNested) {
		depth = DepthPrefix
	}
	return &trial{name: name, depth: depth, order: order, rp: rp, rs: order.Apply(s), memo: map[string]float64{}}, nil
}

// evalCounter counts the validation evaluations of an extraction and their forward MACs
// per example, for the compute a report states.
type evalCounter struct {
	cm   CostModel
	n    int
	macs int64
}

// fitness opens the validation scorer of t's reordered supernet, memoised per subnet.
func (t *trial) fitness(in Input, count *evalCounter) (Fitness, func()) {
	fit, done := in.Fitness(t.rp)
	return func(s arch.Subnet) (float64, error) {
		if v, ok := t.memo[s.Key()]; ok {
			return v, nil
		}
		v, err := fit(s)
		if err != nil {
			return 0, err
		}
		t.memo[s.Key()] = v
		count.n++
		count.macs += count.cm.Of(s).MACs
		return v, nil
	}, done
}

// bestOf evaluates every trial's subnet with every trial's order and returns the most
// accurate (trial, subnet) pair; ties go to the earlier trial, then the earlier subnet.
func bestOf(in Input, trials []*trial, count *evalCounter) (*trial, arch.Subnet, float64, error) {
	var subs []arch.Subnet
	for _, t := range trials {
		if !slices.ContainsFunc(subs, t.sub.Equal) {
			subs = append(subs, t.sub)
		}
	}
	var win *trial
	var winSub arch.Subnet
	winAcc := 0.0
	for _, t := range trials {
		fit, done := t.fitness(in, count)
		for _, s := range subs {
			acc, err := fit(s)
			if err != nil {
				done()
				return nil, arch.Subnet{}, 0, err
			}
			if win == nil || acc > winAcc {
				win, winSub, winAcc = t, s, acc
			}
		}
		done()
	}
	return win, winSub, winAcc, nil
}
