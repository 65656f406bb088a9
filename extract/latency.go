package extract

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/ofa-go/ofa/data"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LatencyEntry is the measured time of one block shape.
type LatencyEntry struct {
	Heads int     `json:"heads"`
	MLP   int     `json:"mlp"`
	MS    float64 `json:"ms"`
}

// LatencyCheck compares a predicted whole-model latency with a measurement.
type LatencyCheck struct {
	Subnet      string  `json:"subnet"`
	PredictedMS float64 `json:"predicted_ms"`
	MeasuredMS  float64 `json:"measured_ms"`
	ErrorPct    float64 `json:"error_pct"`
}

// LatencyTable holds forward-pass latencies measured on this machine: the part outside the
// blocks (embedding, final norm, classifier) and one entry per block shape on a grid of head
// counts and MLP widths. A model's predicted latency is the stem plus its blocks, with MLP
// widths between grid points interpolated linearly. Times are per batch of Batch examples.
type LatencyTable struct {
	Dim     int            `json:"dim"`
	HeadDim int            `json:"head_dim"`
	Tokens  int            `json:"tokens"`
	Patch   int            `json:"patch_size"`
	Classes int            `json:"classes"`
	Batch   int            `json:"batch"`
	Repeats int            `json:"repeats"`
	BLAS    string         `json:"blas"`
	CPUs    int            `json:"cpus"`
	StemMS  float64        `json:"stem_ms"`
	Blocks  []LatencyEntry `json:"blocks"`
	// Checks compare predictions with whole-model measurements; MeanAbsErrorPct summarises them.
	Checks          []LatencyCheck `json:"checks"`
	MeanAbsErrorPct float64        `json:"mean_abs_error_pct"`
}

// LatencyConfig configures a measurement.
type LatencyConfig struct {
	Batch   int   `mapstructure:"batch" json:"batch"`
	Repeats int   `mapstructure:"repeats" json:"repeats"`
	MLPGrid []int `mapstructure:"mlp_grid" json:"mlp_grid"` // empty: multiples of 32 up to the width
	Checks  int   `mapstructure:"checks" json:"checks"`     // random subnets to validate with
	Seed    uint64
}

// DefaultLatencyConfig times batches of one example, the median of 30 runs.
func DefaultLatencyConfig() LatencyConfig {
	return LatencyConfig{Batch: 1, Repeats: 30, Checks: 8, Seed: 1}
}

// MeasureLatency builds a table for models shaped like supernet a (its width, head size,
// tokens, classes) on this machine. Block times are the difference between a two-block and
// a one-block model of that shape; the stem is the median of the one-block times minus
// their blocks. progress, if set, is called after each shape.
func MeasureLatency(a arch.Arch, cfg LatencyConfig, progress func(done, total int)) (*LatencyTable, error) {
	if cfg.Batch < 1 || cfg.Repeats < 3 {
		return nil, fmt.Errorf("%w: latency: batch %d and repeats %d, want batch >= 1 and repeats >= 3", ErrExtract, cfg.Batch, cfg.Repeats)
	}
	maxH, maxM := 0, 0
	for _, l := range a.Layers {
		maxH, maxM = max(maxH, l.Heads), max(maxM, l.MLP)
	}
	grid := slices.Clone(cfg.MLPGrid)
	if len(grid) == 0 {
		for m := 32; m < maxM; m += 32 {
			grid = append(grid, m)
		}
		grid = append(grid, maxM)
	}
	slices.Sort(grid)
	grid = slices.Compact(grid) // a repeated width would be a repeated table entry
	if grid[0] < 1 {
		return nil, fmt.Errorf("%w: latency: mlp_grid %v, want widths >= 1", ErrExtract, cfg.MLPGrid)
	}
	t := &LatencyTable{Dim: a.Dim, HeadDim: a.HeadDim, Tokens: a.Tokens(), Patch: a.PatchHeight, Classes: a.Classes,
		Batch: cfg.Batch, Repeats: cfg.Repeats, BLAS: nn.Backend(), CPUs: runtime.GOMAXPROCS(0)}
	var stems []float64
	total, done := maxH*len(grid), 0
	for h := 1; h <= maxH; h++ {
		for _, m := range grid {
			one, err := timeModel(shaped(a, []arch.Layer{{Heads: h, MLP: m}}), cfg)
			if err != nil {
				return nil, err
			}
			two, err := timeModel(shaped(a, []arch.Layer{{Heads: h, MLP: m}, {Heads: h, MLP: m}}), cfg)
			if err != nil {
				return nil, err
			}
			block := math.Max(two-one, 0)
			t.Blocks = append(t.Blocks, LatencyEntry{Heads: h, MLP: m, MS: block})
			stems = append(stems, one-block)
			done++
			if progress != nil {
				progress(done, total)
			}
		}
	}
	t.StemMS = math.Max(Median(stems), 0)
	return t, t.check(a, cfg)
}

// check compares predictions with measurements of the supernet's largest subnet and
// random subnets.
func (t *LatencyTable) check(a arch.Arch, cfg LatencyConfig) error {
	r := rand.New(rand.NewPCG(cfg.Seed, 17))
	subnets := []arch.Subnet{arch.Largest(a)}
	for i := 0; i < cfg.Checks; i++ {
		s := arch.Subnet{}
		d := 1 + r.IntN(len(a.Layers))
		for l := 0; l < d; l++ {
			s.Layers = append(s.Layers, arch.SubLayer{Layer: l, Heads: 1 + r.IntN(a.Layers[l].Heads), MLP: 1 + r.IntN(a.Layers[l].MLP)})
		}
		subnets = append(subnets, s)
	}
	t.Checks, t.MeanAbsErrorPct = nil, 0
	for _, s := range subnets {
		var layers []arch.Layer
		for _, l := range s.Layers {
			layers = append(layers, arch.Layer{Heads: l.Heads, MLP: l.MLP})
		}
		sa := shaped(a, layers)
		measured, err := timeModel(sa, cfg)
		if err != nil {
			return err
		}
		pred := t.Predict(a, s)
		c := LatencyCheck{Subnet: s.Key(), PredictedMS: pred, MeasuredMS: measured, ErrorPct: 100 * (pred - measured) / measured}
		t.Checks = append(t.Checks, c)
		t.MeanAbsErrorPct += math.Abs(c.ErrorPct) / float64(len(subnets))
	}
	return nil
}

func shaped(a arch.Arch, layers []arch.Layer) arch.Arch {
	b := a.Clone()
	b.Positions = nil
	b.Layers = layers
	return b
}

// TimeModel returns the median forward time in ms (per batch of cfg.Batch examples) of a
// model with architecture a on this machine.
func TimeModel(a arch.Arch, cfg LatencyConfig) (float64, error) { return timeModel(a, cfg) }

// timeModel returns the median forward time in ms of a randomly initialised model.
func timeModel(a arch.Arch, cfg LatencyConfig) (float64, error) {
	p, err := supernet.NewParams(a, tensor.Float32, 1)
	if err != nil {
		return 0, err
	}
	g := G.NewGraph()
	if _, err := supernet.Build(g, a, p, arch.Largest(a), supernet.NewPatches(a, cfg.Batch, tensor.Float32), nn.Fused{}); err != nil {
		return 0, err
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	run := func() error {
		vm.Reset()
		return vm.RunAll()
	}
	for i := 0; i < 3; i++ { // warm up: buffers, caches
		if err := run(); err != nil {
			return 0, err
		}
	}
	// each sample averages a few consecutive runs (short runs are noisy), after a collection
	// so that garbage from earlier work does not land in the timed window
	runtime.GC()
	const perSample = 4
	times := make([]float64, 0, cfg.Repeats)
	for i := 0; i < cfg.Repeats; i++ {
		start := time.Now()
		for j := 0; j < perSample; j++ {
			if err := run(); err != nil {
				return 0, err
			}
		}
		times = append(times, float64(time.Since(start).Nanoseconds())/1e6/perSample)
	}
	return Median(times), nil
}

// Median is the middle value of v, or the mean of the two middle values when len(v) is
// even; NaN for an empty v. v is not modified. Every median this tool reports (latency
// tables, benchmarks) is this one.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Compatible reports whether the table was measured for models shaped like a.
func (t *LatencyTable) Compatible(a arch.Arch) error {
	if t.Dim != a.Dim || t.HeadDim != a.HeadDim || t.Tokens != a.Tokens() || t.Classes != a.Classes || t.Patch != a.PatchHeight {
		return fmt.Errorf("%w: the latency table was measured for dim %d, head dim %d, %d tokens, patch %d, %d classes; the model has %d, %d, %d, %d, %d",
			ErrExtract, t.Dim, t.HeadDim, t.Tokens, t.Patch, t.Classes, a.Dim, a.HeadDim, a.Tokens(), a.PatchHeight, a.Classes)
	}
	return nil
}

// Predict returns the predicted forward time (ms per batch of t.Batch) of subnet s of a.
func (t *LatencyTable) Predict(a arch.Arch, s arch.Subnet) float64 {
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
// a shape (LoadLatencyTable refuses them) count as their mean.
func (t *LatencyTable) block(h, m int) float64 {
	var row []LatencyEntry
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
func meanPerWidth(row []LatencyEntry) []LatencyEntry {
	slices.SortFunc(row, func(a, b LatencyEntry) int {
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
		out = append(out, LatencyEntry{Heads: row[i].Heads, MLP: row[i].MLP, MS: sum / float64(j-i)})
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
func (t *LatencyTable) Save(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("extract: latency table %s: %w", path, err)
	}
	return checkpoint.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// maxLatencyTableBytes bounds a latency table file, checked before it is read.
const maxLatencyTableBytes = 16 << 20

// LoadLatencyTable reads a table written by Save. It refuses tables with invalid entries
// or with two entries for one block shape (heads, mlp): which one a lookup used would
// depend on their order.
func LoadLatencyTable(path string) (*LatencyTable, error) {
	b, err := data.ReadFileLimited(path, maxLatencyTableBytes)
	if err != nil {
		return nil, err
	}
	var t LatencyTable
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: latency table %s: %v", ErrExtract, path, err)
	}
	if len(t.Blocks) == 0 || t.Batch < 1 || !(t.StemMS >= 0) {
		return nil, fmt.Errorf("%w: latency table %s has no measurements", ErrExtract, path)
	}
	seen := make(map[[2]int]int, len(t.Blocks))
	for i, e := range t.Blocks {
		if e.Heads < 1 || e.MLP < 1 || !(e.MS >= 0) || math.IsInf(e.MS, 0) {
			return nil, fmt.Errorf("%w: latency table %s: blocks[%d] = %+v is invalid", ErrExtract, path, i, e)
		}
		shape := [2]int{e.Heads, e.MLP}
		if j, ok := seen[shape]; ok {
			return nil, fmt.Errorf("%w: latency table %s: blocks[%d] repeats the shape heads %d, mlp %d of blocks[%d]; want one entry per shape",
				ErrExtract, path, i, e.Heads, e.MLP, j)
		}
		seen[shape] = i
	}
	return &t, nil
}
