package extract

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/supernet"
)

// Ratios holds one compression ratio per stored layer for heads and for MLP width.
type Ratios struct {
	Heads []float64 `mapstructure:"heads" json:"heads"`
	MLP   []float64 `mapstructure:"mlp" json:"mlp"`
}

// Thresholds holds one importance threshold per stored layer for heads and for neurons,
// applied to scores normalised per layer (see Normalized).
type Thresholds struct {
	Heads []float64 `mapstructure:"heads" json:"heads"`
	MLP   []float64 `mapstructure:"mlp" json:"mlp"`
}

// Unit orders used for the reordering step.
const (
	OrderImportance = "importance" // the method: most important units first
	OrderNone       = "none"       // baseline: the supernet's own order (plain leading slices)
	OrderRandom     = "random"     // baseline: a random choice of units
)

// Config configures an extraction (the "extract" section of the configuration).
type Config struct {
	Criteria           Criteria     `mapstructure:"criteria" json:"criteria"`
	CalibrationBatches int          `mapstructure:"calibration_batches" json:"calibration_batches"`
	Order              string       `mapstructure:"order" json:"order"`
	Depth              string       `mapstructure:"depth" json:"depth"`
	Floors             Floors       `mapstructure:"floors" json:"floors"`
	Search             SearchConfig `mapstructure:"search" json:"search"`
	// ValExamples caps the validation examples each search candidate is scored on.
	ValExamples int    `mapstructure:"val_examples" json:"val_examples"`
	Seed        uint64 `mapstructure:"seed" json:"seed"`
}

// DefaultConfig scores with the default criteria on 8 calibration batches, reorders by
// importance and gives up layers by importance.
func DefaultConfig() Config {
	return Config{Criteria: DefaultCriteria(), CalibrationBatches: 8, Order: OrderImportance, Depth: DepthImportance,
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
	case c.Order != OrderImportance && c.Order != OrderNone && c.Order != OrderRandom:
		return fmt.Errorf("%w: extract.order: got %q, want importance, none or random", ErrExtract, c.Order)
	case c.Depth != DepthImportance && c.Depth != DepthPrefix:
		return fmt.Errorf("%w: extract.depth: got %q, want importance or prefix", ErrExtract, c.Depth)
	case c.ValExamples < 0:
		return fmt.Errorf("%w: extract.val_examples: got %d, want >= 0", ErrExtract, c.ValExamples)
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
	Latency     *LatencyTable
	// Scores, if set, are reused instead of measured (same model, same criteria).
	Scores *Scores
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
	Mode        string         `json:"mode"`
	Order       string         `json:"order"`
	Criteria    Criteria       `json:"criteria"`
	Calibration int            `json:"calibration_batches"`
	Target      *budget.Target `json:"target,omitempty"`
	TargetFrom  string         `json:"target_from,omitempty"`
	Budget      *Budget        `json:"budget,omitempty"`
	Ratios      *Ratios        `json:"ratios,omitempty"`
	Thresholds  *Thresholds    `json:"thresholds,omitempty"`
	Supernet    Cost           `json:"supernet"`
	Achieved    Cost           `json:"achieved"`
	// ParamsReduction is the supernet's parameters divided by the model's.
	ParamsReduction float64        `json:"params_reduction"`
	Layers          []KeptLayer    `json:"layers"`
	Search          []Generation   `json:"search,omitempty"`
	ValAccuracy     *float64       `json:"val_accuracy,omitempty"`
	Verification    Verification   `json:"verification"`
	LayerScores     []float64      `json:"layer_scores"`
	Seconds         float64        `json:"seconds"`
	Latency         *LatencySource `json:"latency_table,omitempty"`
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
		b.Params = int64(math.Floor(float64(a.ModelCost().Params) / t.ParamsMultiple))
	}
	return b
}

// Extract scores, reorders, selects, exports and verifies.
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
	order, err := makeOrder(a, scores, cfg)
	if err != nil {
		return nil, err
	}
	rp := in.Params.Clone()
	if err := Reorder(a, rp, order); err != nil {
		return nil, err
	}
	rs := order.Apply(scores)
	cm := CostModel{Arch: a, Latency: in.Latency}
	m := Manifest{Mode: sel.Mode(), Order: cfg.Order, Criteria: cfg.Criteria, Calibration: cfg.CalibrationBatches,
		Supernet: cm.Of(arch.Largest(a)), LayerScores: scores.Layers, Ratios: sel.Ratios, Thresholds: sel.Thresholds}
	if in.Latency != nil {
		m.Latency = &LatencySource{Runtime: in.Latency.Runtime, Statistic: in.Latency.Statistic, Batch: in.Latency.Batch, BLAS: in.Latency.BLAS, MeanAbsErrorPct: in.Latency.MeanAbsErrorPct}
	}
	var sub arch.Subnet
	switch {
	case sel.Ratios != nil:
		sub, err = ByRatios(a, sel.Ratios.Heads, sel.Ratios.MLP)
	case sel.Thresholds != nil:
		sub, err = ByThresholds(a, rs, sel.Thresholds.Heads, sel.Thresholds.MLP)
	case sel.Subnet != nil:
		sub, err = *sel.Subnet, sel.Subnet.Validate(a)
	default:
		sub, err = selectTarget(in, cfg, sel, cm, rs, rp, &m)
	}
	if err != nil {
		return nil, err
	}
	ea, ep, err := Export(a, rp, sub)
	if err != nil {
		return nil, err
	}
	if m.Verification, err = Verify(a, rp, sub, ea, ep, in.VerifyBatch); err != nil {
		return nil, err
	}
	m.Achieved = cm.Of(sub)
	m.ParamsReduction = float64(m.Supernet.Params) / float64(m.Achieved.Params)
	for _, l := range sub.Layers {
		m.Layers = append(m.Layers, KeptLayer{Layer: l.Layer,
			Heads: order.Heads[l.Layer][:l.Heads], HeadScores: rs.Heads[l.Layer][:l.Heads],
			Neurons: order.Neurons[l.Layer][:l.MLP], NeuronScores: rs.Neurons[l.Layer][:l.MLP]})
	}
	m.Seconds = time.Since(start).Seconds()
	return &Result{Arch: ea, Params: ep, Manifest: m, Subnet: sub, Reordered: rp, Order: order, Scores: scores}, nil
}

func makeOrder(a arch.Arch, s *Scores, cfg Config) (Order, error) {
	switch cfg.Order {
	case OrderNone:
		return Identity(a), nil
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

func selectTarget(in Input, cfg Config, sel Selection, cm CostModel, rs *Scores, rp *supernet.Params, m *Manifest) (arch.Subnet, error) {
	t := *sel.Target
	if err := t.Validate(); err != nil {
		return arch.Subnet{}, fmt.Errorf("%w: %w", ErrExtract, err)
	}
	b := Resolve(t, cm.Arch)
	m.Target, m.TargetFrom, m.Budget = &t, sel.TargetFrom, &b
	if w := Unconstraining(cm, b); w != "" {
		m.Warnings = append(m.Warnings, w)
	}
	if b.LatencyMS > 0 {
		if cm.Latency == nil {
			return arch.Subnet{}, fmt.Errorf("%w: a latency budget needs a latency table (ofa latency-table, then --latency-table FILE)", ErrExtract)
		}
		if err := cm.Latency.Compatible(cm.Arch); err != nil {
			return arch.Subnet{}, err
		}
	}
	greedy, err := Greedy(cm, rs, b, cfg.Floors, cfg.Depth)
	if err != nil {
		return arch.Subnet{}, err
	}
	if cfg.Search.Generations == 0 || in.Fitness == nil {
		return greedy, nil
	}
	fit, done := in.Fitness(rp)
	defer done()
	best, hist, err := Evolve(cm, rs, b, cfg.Floors, cfg.Depth, cfg.Search, []arch.Subnet{greedy}, fit)
	if err != nil {
		return arch.Subnet{}, err
	}
	m.Search = hist
	acc := best.Accuracy
	m.ValAccuracy = &acc
	return best.Subnet, nil
}
