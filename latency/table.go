package latency

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/data"
)

// Predictor predicts forward times on the machine it was measured on. A Table is one;
// extraction's cost model takes any.
type Predictor interface {
	// Predict returns the forward time (ms per batch of the examples it was measured
	// with) of subnet s of supernet a.
	Predict(a arch.Arch, s arch.Subnet) float64
	// Compatible reports (an error wrapping ErrLatency) when it was not measured for
	// models shaped like a.
	Compatible(a arch.Arch) error
}

// Entry is the measured time of one block shape: a two-block model's time minus a
// one-block model's (with StatMedian the median of paired differences, with StatMin the
// difference of the minima), and the interquartile range of the paired differences.
type Entry struct {
	Heads int     `json:"heads"`
	MLP   int     `json:"mlp"`
	MS    float64 `json:"ms"`
	IQRMS float64 `json:"iqr_ms,omitempty"`
	// MACs of the block per batch of Table.Batch examples (arch.BlockCost).
	MACs int64 `json:"macs,omitempty"`
	// OneMS is the one-block model's time (the table's statistic), from which the stem
	// comes.
	OneMS float64 `json:"one_ms,omitempty"`
}

// Check compares a predicted whole-model latency with a measurement (the table's
// statistic of the samples, and their interquartile range).
type Check struct {
	Subnet      string  `json:"subnet"`
	MACs        int64   `json:"macs,omitempty"` // per batch of Table.Batch examples
	PredictedMS float64 `json:"predicted_ms"`
	MeasuredMS  float64 `json:"measured_ms"`
	IQRMS       float64 `json:"iqr_ms,omitempty"`
	ErrorPct    float64 `json:"error_pct"`
}

// Table holds forward-pass latencies measured on this machine in one runtime: the
// part outside the blocks (embedding, final norm, classifier) and one entry per block
// shape on a grid of head counts and MLP widths. A model's predicted latency is the stem
// plus its blocks, with MLP widths between grid points interpolated linearly. Times are
// per batch of Batch examples.
type Table struct {
	// Runtime is RuntimeOfa or RuntimeONNXRuntime (tables written before the field existed
	// were measured in RuntimeOfa and load as such); RuntimeVersion is onnxruntime's
	// library version; RuntimeDescription says in words what ran.
	Runtime            string `json:"runtime"`
	RuntimeVersion     string `json:"runtime_version,omitempty"`
	RuntimeDescription string `json:"runtime_description,omitempty"`
	// Statistic summarises each shape's samples: StatMedian (also for tables written
	// before the field existed) or StatMin.
	Statistic string `json:"statistic"`
	// Clock is ClockWall (also for tables written before the field existed) or ClockCPU.
	Clock string `json:"clock"`
	// Threads is the number of threads one forward pass may use (GOMAXPROCS for the tool's
	// own runtime, intra-op threads for onnxruntime).
	Threads int     `json:"threads,omitempty"`
	Dim     int     `json:"dim"`
	HeadDim int     `json:"head_dim"`
	Tokens  int     `json:"tokens"`
	Patch   int     `json:"patch_size"`
	Classes int     `json:"classes"`
	Batch   int     `json:"batch"`
	Repeats int     `json:"repeats"`
	BLAS    string  `json:"blas"`
	CPUs    int     `json:"cpus"`
	StemMS  float64 `json:"stem_ms"`
	Blocks  []Entry `json:"blocks"`
	// Checks compare predictions with whole-model measurements of subnets not used to
	// build the table; MeanAbsErrorPct summarises them.
	Checks          []Check `json:"checks"`
	MeanAbsErrorPct float64 `json:"mean_abs_error_pct"`
	// BlockOrder is the share of pairs of block shapes with different MACs whose measured
	// times are in the same order as their MACs (1: the table never ranks a cheaper block
	// as slower); CheckOrder the share of pairs of checks whose predicted latencies are in
	// the order of their measured ones. Ties count half.
	BlockOrder float64 `json:"block_order"`
	CheckOrder float64 `json:"check_order"`
	// Predictor is PredictGrid (also for tables written before the field existed) or
	// PredictFit: what Predict uses, and what Checks, MeanAbsErrorPct and CheckOrder report.
	// Fit is fitted to every table; its own error is recorded either way.
	Predictor string    `json:"predictor"`
	Fit       *BlockFit `json:"fit,omitempty"`
	// GridMeanAbsErrorPct is the checks' mean absolute error with PredictGrid.
	GridMeanAbsErrorPct float64 `json:"grid_mean_abs_error_pct"`
}

// Compatible reports whether the table was measured for models shaped like a.
func (t *Table) Compatible(a arch.Arch) error {
	if t.Dim != a.Dim || t.HeadDim != a.HeadDim || t.Tokens != a.Tokens() || t.Classes != a.Classes || t.Patch != a.PatchHeight {
		return fmt.Errorf("%w: the latency table was measured for dim %d, head dim %d, %d tokens, patch %d, %d classes; the model has %d, %d, %d, %d, %d",
			ErrLatency, t.Dim, t.HeadDim, t.Tokens, t.Patch, t.Classes, a.Dim, a.HeadDim, a.Tokens(), a.PatchHeight, a.Classes)
	}
	return nil
}

// Predict returns the predicted forward time (ms per batch of t.Batch) of subnet s of a,
// with t.Predictor.
func (t *Table) Predict(a arch.Arch, s arch.Subnet) float64 {
	if t.Predictor == PredictFit && t.Fit != nil {
		ms := t.Fit.StemMS
		for _, l := range s.Layers {
			ms += t.Fit.at(l.Heads, l.MLP)
		}
		return ms
	}
	ms := t.StemMS
	for _, l := range s.Layers {
		ms += t.block(l.Heads, l.MLP)
	}
	return ms
}

// block interpolates the time of a block with h heads and m neurons in the row of h heads,
// linearly between the two grid widths around m (extrapolating from the two nearest at
// either end). Heads outside the table scale the nearest row (the smaller heads on a tie)
// linearly in heads. The result does not depend on the order of t.Blocks; entries repeating
// a shape (LoadTable refuses them) count as their mean.
func (t *Table) block(h, m int) float64 {
	var row []Entry
	for _, e := range t.Blocks {
		if e.Heads == h {
			row = append(row, e)
		}
	}
	if len(row) == 0 {
		best := t.Blocks[0].Heads
		for _, e := range t.Blocks {
			d, bd := abs(e.Heads-h), abs(best-h)
			if d < bd || (d == bd && e.Heads < best) {
				best = e.Heads
			}
		}
		return t.block(best, m) * float64(h) / float64(best)
	}
	row = meanPerWidth(row)
	if len(row) == 1 {
		return row[0].MS
	}
	i := sort.Search(len(row), func(i int) bool { return row[i].MLP >= m })
	switch {
	case i == 0:
		i = 1
	case i == len(row):
		i = len(row) - 1
	}
	x0, x1 := float64(row[i-1].MLP), float64(row[i].MLP)
	y0, y1 := row[i-1].MS, row[i].MS
	return math.Max(0, y0+(y1-y0)*(float64(m)-x0)/(x1-x0))
}

// meanPerWidth sorts a row by MLP width and merges entries of equal width into one holding
// their mean time (summed in sorted order, so the result is independent of the input order).
// Interpolating between two entries of one width would divide by zero.
func meanPerWidth(row []Entry) []Entry {
	slices.SortFunc(row, func(a, b Entry) int {
		if c := cmp.Compare(a.MLP, b.MLP); c != 0 {
			return c
		}
		return cmp.Compare(a.MS, b.MS)
	})
	out := row[:0]
	for i := 0; i < len(row); {
		j, sum := i, 0.0
		for ; j < len(row) && row[j].MLP == row[i].MLP; j++ {
			sum += row[j].MS
		}
		out = append(out, Entry{Heads: row[i].Heads, MLP: row[i].MLP, MS: sum / float64(j-i)})
		i = j
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Save writes the table as JSON, atomically (checkpoint.WriteFileAtomic).
func (t *Table) Save(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("latency: table %s: %w", path, err)
	}
	return checkpoint.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// maxTableBytes bounds a latency table file, checked before it is read.
const maxTableBytes = 16 << 20

// LoadTable reads a table written by Save. It refuses tables with invalid entries,
// an unknown runtime, statistic, clock or predictor, or two entries for one block shape (heads, mlp): which one a lookup
// used would depend on their order.
func LoadTable(path string) (*Table, error) {
	b, err := data.ReadFileLimited(path, maxTableBytes)
	if err != nil {
		return nil, err
	}
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: table %s: %v", ErrLatency, path, err)
	}
	switch {
	case len(t.Blocks) == 0:
		return nil, fmt.Errorf("%w: table %s has no measurements (blocks is empty)", ErrLatency, path)
	case t.Batch < 1:
		return nil, fmt.Errorf("%w: table %s: batch: got %d, want >= 1", ErrLatency, path, t.Batch)
	case !(t.StemMS >= 0) || math.IsInf(t.StemMS, 0):
		return nil, fmt.Errorf("%w: table %s: stem_ms: got %v, want a time >= 0 in milliseconds", ErrLatency, path, t.StemMS)
	}
	switch t.Runtime {
	case "": // written before tables recorded their runtime: always the tool's own
		t.Runtime = RuntimeOfa
	case RuntimeOfa, RuntimeONNXRuntime:
	default:
		return nil, fmt.Errorf("%w: table %s: runtime %q, want %q or %q", ErrLatency, path, t.Runtime, RuntimeOfa, RuntimeONNXRuntime)
	}
	switch t.Statistic {
	case "": // written before tables recorded their statistic: always the median
		t.Statistic = StatMedian
	case StatMedian, StatMin:
	default:
		return nil, fmt.Errorf("%w: table %s: statistic %q, want %q or %q", ErrLatency, path, t.Statistic, StatMedian, StatMin)
	}
	switch t.Clock {
	case "": // written before tables recorded their clock: always the wall clock
		t.Clock = ClockWall
	case ClockWall, ClockCPU:
	default:
		return nil, fmt.Errorf("%w: table %s: clock %q, want %q or %q", ErrLatency, path, t.Clock, ClockWall, ClockCPU)
	}
	switch t.Predictor {
	case "": // written before tables had a fit: always the grid
		t.Predictor = PredictGrid
	case PredictGrid:
	case PredictFit:
		if t.Fit == nil {
			return nil, fmt.Errorf("%w: table %s: predictor %q without a fit", ErrLatency, path, PredictFit)
		}
	default:
		return nil, fmt.Errorf("%w: table %s: predictor %q, want %q or %q", ErrLatency, path, t.Predictor, PredictGrid, PredictFit)
	}
	if f := t.Fit; f != nil {
		for _, v := range []float64{f.Intercept, f.PerHead, f.PerNeuron, f.StemMS} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: table %s: fit: intercept_ms %v, per_head_ms %v, per_neuron_ms %v, stem_ms %v: want finite numbers",
					ErrLatency, path, f.Intercept, f.PerHead, f.PerNeuron, f.StemMS)
			}
		}
	}
	seen := make(map[[2]int]int, len(t.Blocks))
	for i, e := range t.Blocks {
		switch {
		case e.Heads < 1:
			return nil, fmt.Errorf("%w: table %s: blocks[%d].heads: got %d, want >= 1", ErrLatency, path, i, e.Heads)
		case e.MLP < 1:
			return nil, fmt.Errorf("%w: table %s: blocks[%d].mlp: got %d, want >= 1", ErrLatency, path, i, e.MLP)
		case !(e.MS >= 0) || math.IsInf(e.MS, 0):
			return nil, fmt.Errorf("%w: table %s: blocks[%d].ms (heads %d, mlp %d): got %v, want a time >= 0 in milliseconds",
				ErrLatency, path, i, e.Heads, e.MLP, e.MS)
		}
		shape := [2]int{e.Heads, e.MLP}
		if j, ok := seen[shape]; ok {
			return nil, fmt.Errorf("%w: table %s: blocks[%d] repeats the shape heads %d, mlp %d of blocks[%d]; want one entry per shape",
				ErrLatency, path, i, e.Heads, e.MLP, j)
		}
		seen[shape] = i
	}
	return &t, nil
}
