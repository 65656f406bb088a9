package extract

import (
	"fmt"
	"math"
	"sort"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/latency"
)

// ByRatios keeps every layer with ⌈ratio·stored⌉ leading heads and neurons (at least one
// each). heads and mlp hold one ratio per stored layer, each in (0, 1].
func ByRatios(a arch.Arch, heads, mlp []float64) (arch.Subnet, error) {
	if err := checkPerLayer(a, "ratios.heads", heads, false); err != nil {
		return arch.Subnet{}, err
	}
	if err := checkPerLayer(a, "ratios.mlp", mlp, false); err != nil {
		return arch.Subnet{}, err
	}
	s := arch.Subnet{}
	for l, ly := range a.Layers {
		s.Layers = append(s.Layers, arch.SubLayer{Layer: l,
			Heads: max(1, int(math.Ceil(heads[l]*float64(ly.Heads)-1e-9))),
			MLP:   max(1, int(math.Ceil(mlp[l]*float64(ly.MLP)-1e-9)))})
	}
	return s, s.Validate(a)
}

// checkPerLayer validates one value per layer: ratios in (0, 1], thresholds in [0, 1).
func checkPerLayer(a arch.Arch, key string, v []float64, threshold bool) error {
	if len(v) != len(a.Layers) {
		return fmt.Errorf("%w: extract.%s: got %d values, the model has %d layers", ErrExtract, key, len(v), len(a.Layers))
	}
	for i, x := range v {
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			return fmt.Errorf("%w: extract.%s[%d]: got %v, want a finite number", ErrExtract, key, i, x)
		case !threshold && !(x > 0 && x <= 1):
			return fmt.Errorf("%w: extract.%s[%d]: got %g, want a ratio in (0, 1]", ErrExtract, key, i, x)
		case threshold && !(x >= 0 && x < 1):
			return fmt.Errorf("%w: extract.%s[%d]: got %g, want a threshold in [0, 1)", ErrExtract, key, i, x)
		}
	}
	return nil
}

// Normalized divides every layer's scores by that layer's largest score, so they lie in
// [0, 1] with the most important unit of each layer at 1. Thresholds apply to these values.
func Normalized(v []float64) []float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, x)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		if m > 0 {
			out[i] = x / m
		}
	}
	return out
}

// ByThresholds keeps, in every layer, exactly the heads and neurons whose normalised score
// (see Normalized) is above the layer's threshold. The scores must be those of the
// reordered model (decreasing within each layer), so the kept units are leading slices. A
// threshold that keeps nothing is an error naming the layer and its largest normalised
// score below 1 is reported, since the top unit always scores 1.
func ByThresholds(a arch.Arch, s *Scores, heads, mlp []float64) (arch.Subnet, error) {
	if err := checkPerLayer(a, "thresholds.heads", heads, true); err != nil {
		return arch.Subnet{}, err
	}
	if err := checkPerLayer(a, "thresholds.mlp", mlp, true); err != nil {
		return arch.Subnet{}, err
	}
	out := arch.Subnet{}
	for l := range a.Layers {
		h, err := countAbove(Normalized(s.Heads[l]), heads[l], l, "heads")
		if err != nil {
			return out, err
		}
		m, err := countAbove(Normalized(s.Neurons[l]), mlp[l], l, "mlp")
		if err != nil {
			return out, err
		}
		out.Layers = append(out.Layers, arch.SubLayer{Layer: l, Heads: h, MLP: m})
	}
	return out, out.Validate(a)
}

func countAbove(norm []float64, t float64, layer int, what string) (int, error) {
	n := 0
	for i, v := range norm {
		if v > t {
			if i != n {
				return 0, fmt.Errorf("%w: layer %d: %s scores are not in decreasing order: reorder the model first", ErrExtract, layer, what)
			}
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: extract.thresholds.%s[%d]: threshold %g keeps no unit (all normalised scores are 0)", ErrExtract, what, layer, t)
	}
	return n, nil
}

// Budget is a resolved deployment budget: limits that are 0 do not apply.
type Budget struct {
	Params    int64   `json:"params,omitempty"`
	MACs      int64   `json:"macs,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// Cost is what a subnet costs under a cost model.
type Cost struct {
	Params    int64   `json:"params"`
	MACs      int64   `json:"macs"`
	LatencyMS float64 `json:"latency_ms,omitempty"` // predicted, when a latency table is given
}

// CostModel prices subnets of one architecture: params and MACs exactly, latency from a
// predictor (a latency.Table measured on the target machine; nil: latency budgets are
// refused).
type CostModel struct {
	Arch    arch.Arch
	Latency latency.Predictor
}

// Of returns the cost of subnet s.
func (c CostModel) Of(s arch.Subnet) Cost {
	x := c.Arch.SubnetCost(s)
	out := Cost{Params: x.Params, MACs: x.MACs}
	if c.Latency != nil {
		out.LatencyMS = c.Latency.Predict(c.Arch, s)
	}
	return out
}

// Fits reports whether cost c is within budget b.
func (b Budget) Fits(c Cost) bool {
	return (b.Params == 0 || c.Params <= b.Params) && (b.MACs == 0 || c.MACs <= b.MACs) &&
		(b.LatencyMS == 0 || c.LatencyMS <= b.LatencyMS)
}

// Use is the largest share of one of b's limits that c takes (1: at the limit; the
// tightest limit counts), or 0 when b sets no limit.
func (b Budget) Use(c Cost) float64 {
	u := 0.0
	if b.Params > 0 {
		u = max(u, float64(c.Params)/float64(b.Params))
	}
	if b.MACs > 0 {
		u = max(u, float64(c.MACs)/float64(b.MACs))
	}
	if b.LatencyMS > 0 {
		u = max(u, c.LatencyMS/b.LatencyMS)
	}
	return u
}

// excess measures how far c is over b, summing relative overshoots (0 when it fits).
func (b Budget) excess(c Cost) float64 {
	e := 0.0
	if b.Params > 0 && c.Params > b.Params {
		e += float64(c.Params-b.Params) / float64(b.Params)
	}
	if b.MACs > 0 && c.MACs > b.MACs {
		e += float64(c.MACs-b.MACs) / float64(b.MACs)
	}
	if b.LatencyMS > 0 && c.LatencyMS > b.LatencyMS {
		e += (c.LatencyMS - b.LatencyMS) / b.LatencyMS
	}
	return e
}

// String describes the budget.
func (b Budget) String() string {
	s := ""
	add := func(x string) {
		if s != "" {
			s += ", "
		}
		s += x
	}
	if b.Params > 0 {
		add(fmt.Sprintf("params <= %d", b.Params))
	}
	if b.MACs > 0 {
		add(fmt.Sprintf("MACs <= %d", b.MACs))
	}
	if b.LatencyMS > 0 {
		add(fmt.Sprintf("latency <= %.3f ms", b.LatencyMS))
	}
	return s
}

// Floors bound how small the selection may make the model.
type Floors struct {
	// MinHeads is the fewest heads a kept layer may have.
	MinHeads int `mapstructure:"min_heads" json:"min_heads"`
	// MinMLP is the fewest MLP neurons a kept layer may have.
	MinMLP int `mapstructure:"min_mlp" json:"min_mlp"`
	// MinDepth is the fewest layers a model may keep.
	MinDepth int `mapstructure:"min_depth" json:"min_depth"`
}

// DefaultFloors keep at least one layer with one head and 8 neurons.
func DefaultFloors() Floors { return Floors{MinHeads: 1, MinMLP: 8, MinDepth: 1} }

// Allow says whether subnet s keeps at least the floors' depth, heads and neurons.
func (f Floors) Allow(s arch.Subnet) bool {
	if s.Depth() < f.MinDepth {
		return false
	}
	for _, l := range s.Layers {
		if l.Heads < f.MinHeads || l.MLP < f.MinMLP {
			return false
		}
	}
	return true
}

// Validate checks the floors against the architecture.
func (f Floors) Validate(a arch.Arch) error {
	for l, ly := range a.Layers {
		if f.MinHeads < 1 || f.MinHeads > ly.Heads {
			return fmt.Errorf("%w: extract.floors.min_heads: got %d, layer %d has %d heads", ErrExtract, f.MinHeads, l, ly.Heads)
		}
		if f.MinMLP < 1 || f.MinMLP > ly.MLP {
			return fmt.Errorf("%w: extract.floors.min_mlp: got %d, layer %d has %d neurons", ErrExtract, f.MinMLP, l, ly.MLP)
		}
	}
	if f.MinDepth < 1 || f.MinDepth > len(a.Layers) {
		return fmt.Errorf("%w: extract.floors.min_depth: got %d, want 1..%d", ErrExtract, f.MinDepth, len(a.Layers))
	}
	return nil
}

// Depth orders in which layers are given up when a budget needs fewer layers.
const (
	// DepthImportance keeps the layers with the highest layer scores.
	DepthImportance = "importance"
	// DepthPrefix keeps the first layers, as Once-for-All trains elastic depth.
	DepthPrefix = "prefix"
)

// keptLayers returns the d layers kept at depth d, in increasing order.
func keptLayers(a arch.Arch, s *Scores, d int, mode string) []int {
	idx := identityPerm(len(a.Layers))
	if mode == DepthImportance {
		sort.SliceStable(idx, func(i, j int) bool { return s.Layers[idx[i]] > s.Layers[idx[j]] })
	}
	kept := append([]int(nil), idx[:d]...)
	sort.Ints(kept)
	return kept
}

// Smallest is the cheapest subnet the floors allow.
func Smallest(a arch.Arch, s *Scores, f Floors, mode string) arch.Subnet {
	out := arch.Subnet{}
	for _, l := range keptLayers(a, s, f.MinDepth, mode) {
		out.Layers = append(out.Layers, arch.SubLayer{Layer: l, Heads: f.MinHeads, MLP: f.MinMLP})
	}
	return out
}

// Greedy meets a budget by a global ranking of units across layers: starting from every
// unit of the kept layers, it repeatedly drops, among the last (least important) head and
// the last neuron of each layer, the unit with the lowest score per unit of cost saved,
// until the budget holds, never going under the floors. It tries the largest depth first
// and gives up layers (by mode) only when the floors of that depth cannot fit. Scores must
// be those of the reordered model.
func Greedy(cm CostModel, s *Scores, b Budget, f Floors, mode string) (arch.Subnet, error) {
	a := cm.Arch
	if err := f.Validate(a); err != nil {
		return arch.Subnet{}, err
	}
	if smallest := Smallest(a, s, f, mode); !b.Fits(cm.Of(smallest)) {
		c := cm.Of(smallest)
		return arch.Subnet{}, fmt.Errorf("%w: budget %s is impossible: the smallest achievable model (%s) has %d params, %d MACs%s",
			ErrExtract, b, smallest.Key(), c.Params, c.MACs, latencyNote(c))
	}
	for d := len(a.Layers); d >= f.MinDepth; d-- {
		sub := arch.Subnet{}
		for _, l := range keptLayers(a, s, d, mode) {
			sub.Layers = append(sub.Layers, arch.SubLayer{Layer: l, Heads: a.Layers[l].Heads, MLP: a.Layers[l].MLP})
		}
		floor := sub.Clone()
		for i := range floor.Layers {
			floor.Layers[i].Heads, floor.Layers[i].MLP = f.MinHeads, f.MinMLP
		}
		if !b.Fits(cm.Of(floor)) {
			continue
		}
		for !b.Fits(cm.Of(sub)) {
			best, bestHead, bestRatio := -1, false, math.Inf(1)
			cur := cm.Of(sub)
			for i, l := range sub.Layers {
				try := func(head bool) {
					next := sub.Clone()
					var score float64
					if head {
						if l.Heads <= f.MinHeads {
							return
						}
						next.Layers[i].Heads--
						score = s.Heads[l.Layer][l.Heads-1]
					} else {
						if l.MLP <= f.MinMLP {
							return
						}
						next.Layers[i].MLP--
						score = s.Neurons[l.Layer][l.MLP-1]
					}
					saved := b.excess(cur) - b.excess(cm.Of(next))
					if saved <= 0 {
						saved = 1e-12
					}
					if r := score / saved; r < bestRatio {
						best, bestHead, bestRatio = i, head, r
					}
				}
				try(true)
				try(false)
			}
			if best < 0 {
				break
			}
			if bestHead {
				sub.Layers[best].Heads--
			} else {
				sub.Layers[best].MLP--
			}
		}
		if b.Fits(cm.Of(sub)) {
			return sub, nil
		}
	}
	return arch.Subnet{}, fmt.Errorf("%w: no subnet within the floors meets budget %s", ErrExtract, b)
}

func latencyNote(c Cost) string {
	if c.LatencyMS > 0 {
		return fmt.Sprintf(", %.3f ms predicted", c.LatencyMS)
	}
	return ""
}

// CheckPerLayer checks per-layer ratios (threshold false: each in (0, 1]) or thresholds
// (each in [0, 1)) for a, one value per layer, naming the key (for example
// "ratios.heads") in its error: callers check flags with it before reading weights.
func CheckPerLayer(a arch.Arch, key string, v []float64, threshold bool) error {
	return checkPerLayer(a, key, v, threshold)
}
