package extract

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/supernet"
)

// Ratios holds, per stored layer, the fraction of heads and of MLP neurons kept.
type Ratios struct {
	// Heads is the fraction of each layer's heads kept, in (0, 1] (0.25: a quarter);
	// one value per stored layer.
	Heads []float64 `mapstructure:"heads" json:"heads"`
	// MLP is the fraction of each layer's MLP neurons kept, in (0, 1], one per stored
	// layer; empty means the Heads list.
	MLP []float64 `mapstructure:"mlp" json:"mlp"`
}

// Thresholds holds one importance threshold per stored layer for heads and for neurons,
// applied to scores normalised per layer (see Normalized).
type Thresholds struct {
	// Heads keeps, per stored layer, the heads whose normalised score (the layer's
	// maximum is 1) is above the threshold, in [0, 1).
	Heads []float64 `mapstructure:"heads" json:"heads"`
	// MLP is the same for MLP neurons; empty means the Heads list.
	MLP []float64 `mapstructure:"mlp" json:"mlp"`
}

// Unit orders used for the reordering step.
const (
	OrderImportance = "importance" // the method: most important units first
	OrderNone       = "none"       // baseline: the supernet's own order (plain leading slices)
	OrderRandom     = "random"     // baseline: a random choice of units
)

// Config configures an extraction (the "extract" section of the configuration).
type Config struct {
	// Criteria choose how heads, neurons and layers are scored (docs/EXTRACT.md).
	Criteria Criteria `mapstructure:"criteria" json:"criteria"`
	// CalibrationBatches is how many batches of 100 training examples the importance
	// scores are measured on.
	CalibrationBatches int `mapstructure:"calibration_batches" json:"calibration_batches"`
	// Order is the unit order: OrderBest (default: the best of Candidates on validation),
	// or one of OrderImportance, OrderNone, OrderNested, OrderRandom.
	Order string `mapstructure:"order" json:"order"`
	// Candidates are the orders OrderBest compares, ties going to the earlier one.
	Candidates []string `mapstructure:"candidates" json:"candidates"`
	// Depth is which layers a smaller depth keeps: DepthImportance ("importance": the
	// highest layer scores) or DepthPrefix ("prefix": the first layers).
	Depth string `mapstructure:"depth" json:"depth"`
	// Floors are the smallest sizes a budget's selection may choose.
	Floors Floors `mapstructure:"floors" json:"floors"`
	// Search is the evolutionary search over sizes that meet a budget.
	Search SearchConfig `mapstructure:"search" json:"search"`
	// ValExamples caps the validation examples each search candidate is scored on.
	ValExamples int `mapstructure:"val_examples" json:"val_examples"`
	// Seed draws the units of the random order (OrderRandom, a baseline).
	Seed uint64 `mapstructure:"seed" json:"seed"`
}

// DefaultConfig scores with the default criteria on 8 calibration batches, keeps the best
// of plain slices, the nested order and the importance order on validation, and gives up
// layers by importance (plain slices and the nested order: the last layers).
func DefaultConfig() Config {
	return Config{Criteria: DefaultCriteria(), CalibrationBatches: 8, Order: OrderBest, Candidates: DefaultCandidates(), Depth: DepthImportance,
		Floors: DefaultFloors(), Search: DefaultSearch(), ValExamples: 2000, Seed: 1}
}

// Validate checks the settings; errors name the key.
func (c Config) Validate() error {
	if err := c.Criteria.Validate(); err != nil {
		return err
	}
	switch {
	case c.CalibrationBatches < 1:
		return fmt.Errorf("%w: extract.calibration_batches: got %d, want >= 1", ErrExtract, c.CalibrationBatches)
	case c.Order != OrderBest && c.Order != OrderImportance && c.Order != OrderNone && c.Order != OrderNested && c.Order != OrderRandom:
		return fmt.Errorf("%w: extract.order: got %q, want best, importance, none, nested or random", ErrExtract, c.Order)
	case c.Depth != DepthImportance && c.Depth != DepthPrefix:
		return fmt.Errorf("%w: extract.depth: got %q, want importance or prefix", ErrExtract, c.Depth)
	case c.ValExamples < 0:
		return fmt.Errorf("%w: extract.val_examples: got %d, want >= 0", ErrExtract, c.ValExamples)
	}
	if c.Order == OrderBest {
		if err := validateCandidates(c.Candidates); err != nil {
			return err
		}
	}
	return c.Search.Validate()
}

// Selection is exactly one way of choosing sizes.
type Selection struct {
	Ratios     *Ratios
	Thresholds *Thresholds
	Target     *budget.Target
	// TargetFrom says where the target came from (a flag, a file, a URL, an etcd key).
	TargetFrom string
	// Subnet fixes the sizes directly (used to extract baselines of the same sizes).
	Subnet *arch.Subnet
	// Trained, with a Target, are subnets the supernet was trained as at this budget (a
	// "budgets" sampler's fixed subnets, sampler.budget_fixed): each one that fits the
	// budget and the floors joins the first generation of the search, so the extraction
	// compares them on validation with what it finds itself. Under the plain order (none)
	// their units are exactly the trained ones. Ignored without a search.
	Trained []arch.Subnet
}

// Mode names the selection.
func (s Selection) Mode() string {
	switch {
	case s.Ratios != nil:
		return "ratios"
	case s.Thresholds != nil:
		return "thresholds"
	case s.Target != nil:
		return "target"
	case s.Subnet != nil:
		return "fixed"
	}
	return ""
}

// Input is everything an extraction reads.
type Input struct {
	Arch   arch.Arch
	Params *supernet.Params
	// Calibration data for importance scores (training split, no augmentation).
	Calibration data.Batcher
	// Fitness makes the scorer of search candidates (validation accuracy of a subnet of
	// the reordered supernet) and a function releasing it; needed for target selection
	// with a search.
	Fitness func(reordered *supernet.Params) (Fitness, func())
	// VerifyBatch is compared between the exported model and the supernet.
	VerifyBatch data.Batch
	// Latency, if set, predicts latencies (for latency budgets and the manifest).
	Latency *latency.Table
	// Scores, if set, are reused instead of measured (same model, same criteria).
	Scores *Scores
	// Space is the supernet's trained search space, needed by OrderNested (without it
	// OrderBest leaves that candidate out).
	Space *arch.Space
}

// Result is an extracted model and how it was obtained.
type Result struct {
	Arch     arch.Arch
	Params   *supernet.Params
	Manifest Manifest
	// Subnet is the selection as a subnet of the reordered supernet (Reordered).
	Subnet    arch.Subnet
	Reordered *supernet.Params
	Order     Order
	Scores    *Scores // in the supernet's original order
}

// Manifest records what an extracted model kept from its supernet.
type Manifest struct {
	Mode string `json:"mode"`
	// Order is the unit order of the model; OrderRule is "best" when it was chosen among
	// Candidates on validation (each with its validation accuracy), and Depth how layers
	// were given up.
	Order       string           `json:"order"`
	OrderRule   string           `json:"order_rule,omitempty"`
	Candidates  []OrderCandidate `json:"order_candidates,omitempty"`
	Depth       string           `json:"depth"`
	Criteria    Criteria         `json:"criteria"`
	Calibration int              `json:"calibration_batches"`
	Target      *budget.Target   `json:"target,omitempty"`
	TargetFrom  string           `json:"target_from,omitempty"`
	Budget      *Budget          `json:"budget,omitempty"`
	Ratios      *Ratios          `json:"ratios,omitempty"`
	Thresholds  *Thresholds      `json:"thresholds,omitempty"`
	Supernet    Cost             `json:"supernet"`
	Achieved    Cost             `json:"achieved"`
	// ParamsReduction is the supernet's parameters divided by the model's.
	ParamsReduction float64 `json:"params_reduction"`
	// BudgetUse is the largest share of one of the budget's limits the model takes (1: at
	// the limit); FarBelowBudget says it is below FarBelow (see Undershoot).
	BudgetUse      float64      `json:"budget_use,omitempty"`
	FarBelowBudget bool         `json:"far_below_budget,omitempty"`
	Layers         []KeptLayer  `json:"layers"`
	Search         []Generation `json:"search,omitempty"`
	ValAccuracy    *float64     `json:"val_accuracy,omitempty"`
	// Trained are the subnets the supernet was trained as at this budget that the search
	// started from (Selection.Trained), and ChoseTrained says the chosen sizes are one of them.
	Trained      []arch.Subnet `json:"trained_subnets,omitempty"`
	ChoseTrained bool          `json:"chose_trained,omitempty"`
	// Evaluations counts the validation evaluations of subnets (search and order
	// comparison) and EvaluatedMACs sums their forward MACs per validation example.
	Evaluations   int            `json:"evaluations"`
	EvaluatedMACs int64          `json:"evaluated_macs_per_example"`
	Verification  Verification   `json:"verification"`
	LayerScores   []float64      `json:"layer_scores"`
	Seconds       float64        `json:"seconds"`
	Latency       *LatencySource `json:"latency_table,omitempty"`
	// Warnings are things a user should know, e.g. a budget that does not constrain.
	Warnings []string `json:"warnings,omitempty"`
}

// LatencySource describes the table latencies were predicted with.
type LatencySource struct {
	Runtime         string  `json:"runtime,omitempty"`   // the table's runtime (RuntimeOfa, RuntimeONNXRuntime)
	Statistic       string  `json:"statistic,omitempty"` // the table's statistic (StatMedian, StatMin)
	Batch           int     `json:"batch"`
	BLAS            string  `json:"blas"`
	MeanAbsErrorPct float64 `json:"mean_abs_error_pct"`
}

// KeptLayer says which units of one supernet layer the extracted model kept, in the
// extracted model's order (most important first), with their scores.
type KeptLayer struct {
	Layer        int       `json:"supernet_layer"`
	Heads        []int     `json:"heads"`
	HeadScores   []float64 `json:"head_scores"`
	Neurons      []int     `json:"neurons"`
	NeuronScores []float64 `json:"neuron_scores"`
}

// Resolve turns a target into absolute limits for supernet a.
func Resolve(t budget.Target, a arch.Arch) Budget {
	b := Budget{Params: t.Params, MACs: t.MACs, LatencyMS: t.LatencyMS}
	if t.ParamsMultiple > 0 {
		// at least one parameter: a limit of 0 would mean "no limit"
		b.Params = max(1, int64(math.Floor(float64(a.ModelCost().Params)/t.ParamsMultiple)))
	}
	return b
}

// Extract scores, reorders, selects, exports and verifies. With cfg.Order OrderBest it
// reorders and selects once per candidate order and keeps the most accurate on validation
// (see OrderBest); it then needs in.Fitness.
func Extract(in Input, cfg Config, sel Selection) (*Result, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := in.Arch
	if a.Expanded() {
		return nil, fmt.Errorf("%w: the model is expanded, not a supernet", ErrExtract)
	}
	n := 0
	for _, x := range []bool{sel.Ratios != nil, sel.Thresholds != nil, sel.Target != nil, sel.Subnet != nil} {
		if x {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: give exactly one of ratios, thresholds or a target (got %d)", ErrExtract, n)
	}
	scores := in.Scores
	if scores == nil {
		var err error
		if scores, err = Score(a, in.Params, Calibration{Data: in.Calibration, Batches: cfg.CalibrationBatches}, cfg.Criteria); err != nil {
			return nil, err
		}
	}
	cm := CostModel{Arch: a}
	if in.Latency != nil { // a nil *Table in the interface would not be a nil Predictor
		cm.Latency = in.Latency
	}
	m := Manifest{Mode: sel.Mode(), Order: cfg.Order, Criteria: cfg.Criteria, Calibration: cfg.CalibrationBatches,
		Supernet: cm.Of(arch.Largest(a)), LayerScores: scores.Layers, Ratios: sel.Ratios, Thresholds: sel.Thresholds}
	if in.Latency != nil {
		m.Latency = &LatencySource{Runtime: in.Latency.Runtime, Statistic: in.Latency.Statistic, Batch: in.Latency.Batch, BLAS: in.Latency.BLAS, MeanAbsErrorPct: in.Latency.MeanAbsErrorPct}
	}
	var b Budget
	if sel.Target != nil {
		var err error
		if b, err = resolveTarget(cm, sel, &m); err != nil {
			return nil, err
		}
	}
	sel.Trained = usableTrained(a, cm, b, cfg, sel, in.Fitness != nil, &m)
	best := cfg.Order == OrderBest
	names := []string{cfg.Order}
	if best {
		if in.Fitness == nil {
			return nil, fmt.Errorf("%w: extract.order best compares unit orders on validation data, and none was given: choose an order (importance, none, nested)", ErrExtract)
		}
		names = nil
		for _, o := range cfg.Candidates {
			if o == OrderNested && in.Space == nil {
				m.Warnings = append(m.Warnings, "extract.order best: the nested order needs the supernet's search space, which the model lacks; left out")
				continue
			}
			names = append(names, o)
		}
		if sel.Thresholds != nil {
			names = []string{OrderImportance}
			m.Warnings = append(m.Warnings, "extract.order best: thresholds apply to importance-ordered scores, so only the importance order was used")
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: extract.candidates: no candidate order is usable for this model", ErrExtract)
		}
	}
	count := &evalCounter{cm: cm}
	var trials []*trial
	for _, name := range names {
		t, err := newTrial(in, cfg, name, scores)
		if err != nil {
			return nil, err
		}
		if err := t.choose(in, cfg, sel, cm, b, count); err != nil {
			return nil, err
		}
		trials = append(trials, t)
	}
	win, sub := trials[0], trials[0].sub
	m.Search, m.Depth = win.hist, win.depth
	if win.evaluated {
		acc := win.acc
		m.ValAccuracy = &acc
	}
	if best {
		w, s, acc, err := bestOf(in, trials, count)
		if err != nil {
			return nil, err
		}
		win, sub = w, s
		m.Order, m.OrderRule, m.ValAccuracy = win.name, OrderBest, &acc
		for _, t := range trials {
			t.acc = t.memo[t.sub.Key()]
			m.Candidates = append(m.Candidates, OrderCandidate{Order: t.name, Depth: t.depth, Subnet: t.sub, ValAccuracy: t.acc,
				ChosenValAccuracy: t.memo[sub.Key()]})
		}
		for _, t := range trials { // the history of the selection that found the chosen sizes
			if t.sub.Equal(sub) {
				m.Search, m.Depth = t.hist, t.depth
				break
			}
		}
	}
	m.Evaluations, m.EvaluatedMACs = count.n, count.macs
	order, rp, rs := win.order, win.rp, win.rs
	ea, ep, err := Export(a, rp, sub)
	if err != nil {
		return nil, err
	}
	if m.Verification, err = Verify(a, rp, sub, ea, ep, in.VerifyBatch); err != nil {
		return nil, err
	}
	m.ChoseTrained = slices.ContainsFunc(m.Trained, sub.Equal)
	m.Achieved = cm.Of(sub)
	m.ParamsReduction = float64(m.Supernet.Params) / float64(m.Achieved.Params)
	if m.Budget != nil {
		m.BudgetUse = m.Budget.Use(m.Achieved)
		if w := Undershoot(*m.Budget, m.Achieved); w != "" {
			m.FarBelowBudget = true
			m.Warnings = append(m.Warnings, w)
		}
	}
	for _, l := range sub.Layers {
		m.Layers = append(m.Layers, KeptLayer{Layer: l.Layer,
			Heads: order.Heads[l.Layer][:l.Heads], HeadScores: rs.Heads[l.Layer][:l.Heads],
			Neurons: order.Neurons[l.Layer][:l.MLP], NeuronScores: rs.Neurons[l.Layer][:l.MLP]})
	}
	m.Seconds = time.Since(start).Seconds()
	return &Result{Arch: ea, Params: ep, Manifest: m, Subnet: sub, Reordered: rp, Order: order, Scores: scores}, nil
}

// makeOrder builds the named unit order.
func makeOrder(in Input, s *Scores, cfg Config, name string) (Order, error) {
	a := in.Arch
	switch name {
	case OrderNone:
		return Identity(a), nil
	case OrderNested:
		if in.Space == nil {
			return Order{}, fmt.Errorf("%w: extract.order nested needs the supernet's search space, which the model lacks", ErrExtract)
		}
		return ByNestedImportance(a, s, *in.Space), nil
	case OrderRandom:
		r := rand.New(rand.NewPCG(cfg.Seed, 0x0dde))
		o := Identity(a)
		for l := range o.Heads {
			r.Shuffle(len(o.Heads[l]), func(i, j int) { o.Heads[l][i], o.Heads[l][j] = o.Heads[l][j], o.Heads[l][i] })
			r.Shuffle(len(o.Neurons[l]), func(i, j int) { o.Neurons[l][i], o.Neurons[l][j] = o.Neurons[l][j], o.Neurons[l][i] })
		}
		return o, nil
	}
	return ByImportance(s), nil
}

// resolveTarget validates the selection's target and resolves it into a budget, recording
// both in the manifest.
func resolveTarget(cm CostModel, sel Selection, m *Manifest) (Budget, error) {
	t := *sel.Target
	if err := t.Validate(); err != nil {
		return Budget{}, fmt.Errorf("%w: %w", ErrExtract, err)
	}
	b := Resolve(t, cm.Arch)
	m.Target, m.TargetFrom, m.Budget = &t, sel.TargetFrom, &b
	if w := Unconstraining(cm, b); w != "" {
		m.Warnings = append(m.Warnings, w)
	}
	if b.LatencyMS > 0 {
		if cm.Latency == nil {
			return Budget{}, fmt.Errorf("%w: a latency budget needs a latency table (ofa latency-table, then --latency-table FILE)", ErrExtract)
		}
		if err := cm.Latency.Compatible(cm.Arch); err != nil {
			return Budget{}, err
		}
	}
	return b, nil
}

// choose selects t's subnet: the selection's sizes, or for a target budget b the greedy
// ranking followed by the search when one is configured and a fitness is given.
func (t *trial) choose(in Input, cfg Config, sel Selection, cm CostModel, b Budget, count *evalCounter) error {
	a := in.Arch
	var err error
	switch {
	case sel.Ratios != nil:
		t.sub, err = ByRatios(a, sel.Ratios.Heads, sel.Ratios.MLP)
	case sel.Thresholds != nil:
		t.sub, err = ByThresholds(a, t.rs, sel.Thresholds.Heads, sel.Thresholds.MLP)
	case sel.Subnet != nil:
		t.sub, err = *sel.Subnet, sel.Subnet.Validate(a)
	default:
		if t.sub, err = Greedy(cm, t.rs, b, cfg.Floors, t.depth); err != nil || cfg.Search.Generations == 0 || in.Fitness == nil {
			break
		}
		fit, done := t.fitness(in, count)
		defer done()
		start := append([]arch.Subnet{t.sub}, sel.Trained...)
		best, hist, err := Evolve(cm, t.rs, b, cfg.Floors, t.depth, cfg.Search, start, fit)
		if err != nil {
			return err
		}
		t.sub, t.acc, t.hist, t.evaluated = best.Subnet, best.Accuracy, hist, true
	}
	return err
}

// usableTrained is the part of sel.Trained the search can start from: subnets of a that
// fit budget b and the floors, each once; the others, and all of them when no search runs,
// are left out with a warning in m. The usable ones are recorded in m.
func usableTrained(a arch.Arch, cm CostModel, b Budget, cfg Config, sel Selection, fitness bool, m *Manifest) []arch.Subnet {
	if len(sel.Trained) == 0 {
		return nil
	}
	if sel.Target == nil || cfg.Search.Generations == 0 || !fitness {
		m.Warnings = append(m.Warnings, fmt.Sprintf("the supernet's %d trained budget subnet(s) were not compared: "+
			"that needs a target and a search (extract.search.generations > 0) on validation data", len(sel.Trained)))
		return nil
	}
	var out []arch.Subnet
	for _, s := range sel.Trained {
		why := ""
		verr := s.Validate(a)
		switch {
		case verr != nil:
			why = verr.Error()
		case !b.Fits(cm.Of(s)):
			c := cm.Of(s)
			why = fmt.Sprintf("costs %d params and %d MACs, over the budget %s", c.Params, c.MACs, b)
		case !cfg.Floors.Allow(s):
			why = "below the floors (extract.floors)"
		case slices.ContainsFunc(out, s.Equal):
			continue
		}
		if why != "" {
			m.Warnings = append(m.Warnings, fmt.Sprintf("trained budget subnet %s left out of the search: %s", s.Key(), why))
			continue
		}
		out = append(out, s.Clone())
	}
	m.Trained = out
	return out
}
