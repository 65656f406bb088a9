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

// Runtimes a latency table can be measured in (LatencyConfig.Runtime, LatencyTable.Runtime).
const (
	// RuntimeOfa is this tool's own inference path: the model's gorgonia graph with the
	// fused operations, run by a tape machine, as `ofa eval` and `ofa bench` run it.
	RuntimeOfa = "ofa"
	// RuntimeONNXRuntime is onnxruntime's CPU execution provider running the exported
	// ONNX graph (package export/onnx), through package export/onnx/ortrun; it needs a
	// binary built with cgo and -tags onnxruntime.
	RuntimeONNXRuntime = "onnxruntime"
)

// Clocks a latency table can be measured with (LatencyConfig.Clock).
const (
	// ClockWall times runs by the wall clock: latency as a caller sees it, including any
	// time the process waits for a processor that other work holds.
	ClockWall = "wall"
	// ClockCPU times runs by the CPU time of the process (Linux): the same as the wall
	// clock's latency when the forward pass runs on one thread on an otherwise idle
	// processor, but not lengthened by waiting for a processor on a shared machine. It
	// needs a single-threaded forward pass (onnxruntime with one intra-op thread, or the
	// tool's own runtime with GOMAXPROCS=1); it still sees caches and memory bandwidth
	// shared with other work.
	ClockCPU = "cpu"
)

// Statistics a latency table can summarise samples with (LatencyConfig.Statistic).
const (
	// StatMedian is the median of the samples: what a run typically takes on this machine
	// under its current load.
	StatMedian = "median"
	// StatMin is the least sample: what a run takes when nothing else competes for the
	// processor. Interference from other processes only ever adds time, so on a shared
	// machine the minimum estimates a model's own cost best (Chen and Revels, "Robust
	// benchmarking in noisy environments", 2016).
	StatMin = "min"
)

// LatencyEntry is the measured time of one block shape: a two-block model's time minus a
// one-block model's (with StatMedian the median of paired differences, with StatMin the
// difference of the minima), and the interquartile range of the paired differences.
type LatencyEntry struct {
	Heads int     `json:"heads"`
	MLP   int     `json:"mlp"`
	MS    float64 `json:"ms"`
	IQRMS float64 `json:"iqr_ms,omitempty"`
	// MACs of the block per batch of LatencyTable.Batch examples (arch.BlockCost).
	MACs int64 `json:"macs,omitempty"`
	// OneMS is the one-block model's time (the table's statistic), from which the stem
	// comes.
	OneMS float64 `json:"one_ms,omitempty"`
}

// Predictors a latency table can predict with (LatencyConfig.Predictor).
const (
	// PredictGrid looks every block up in the measured grid, interpolating widths.
	PredictGrid = "grid"
	// PredictFit uses the table's BlockFit, a line in heads and width fitted to the grid:
	// one noisy entry then moves the prediction a little instead of fully.
	PredictFit = "fit"
)

// BlockFit is a block's time as a + b·heads + c·width (ms), fitted to a table's entries by
// least absolute deviations, so that a few spoiled entries barely move it. A block's MACs
// are linear in heads and width and its per-op overhead constant, so the form fits both the
// overhead-bound small batches and the arithmetic-bound large ones.
type BlockFit struct {
	Intercept float64 `json:"intercept_ms"`
	PerHead   float64 `json:"per_head_ms"`
	PerNeuron float64 `json:"per_neuron_ms"`
	// StemMS is the stem under this fit: the median over shapes of OneMS minus the fit.
	StemMS float64 `json:"stem_ms"`
	// MeanAbsErrorPct is the checks' mean absolute error with this predictor.
	MeanAbsErrorPct float64 `json:"mean_abs_error_pct"`
}

// at is the fitted time of a block with h heads and m neurons (never negative).
func (f *BlockFit) at(h, m int) float64 {
	return math.Max(0, f.Intercept+f.PerHead*float64(h)+f.PerNeuron*float64(m))
}

// LatencyCheck compares a predicted whole-model latency with a measurement (the table's
// statistic of the samples, and their interquartile range).
type LatencyCheck struct {
	Subnet      string  `json:"subnet"`
	MACs        int64   `json:"macs,omitempty"` // per batch of LatencyTable.Batch examples
	PredictedMS float64 `json:"predicted_ms"`
	MeasuredMS  float64 `json:"measured_ms"`
	IQRMS       float64 `json:"iqr_ms,omitempty"`
	ErrorPct    float64 `json:"error_pct"`
}

// LatencyTable holds forward-pass latencies measured on this machine in one runtime: the
// part outside the blocks (embedding, final norm, classifier) and one entry per block
// shape on a grid of head counts and MLP widths. A model's predicted latency is the stem
// plus its blocks, with MLP widths between grid points interpolated linearly. Times are
// per batch of Batch examples.
type LatencyTable struct {
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
	Threads int            `json:"threads,omitempty"`
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
	// Checks compare predictions with whole-model measurements of subnets not used to
	// build the table; MeanAbsErrorPct summarises them.
	Checks          []LatencyCheck `json:"checks"`
	MeanAbsErrorPct float64        `json:"mean_abs_error_pct"`
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

// LatencyConfig configures a measurement.
type LatencyConfig struct {
	Batch   int   `mapstructure:"batch" json:"batch"`
	Repeats int   `mapstructure:"repeats" json:"repeats"`
	MLPGrid []int `mapstructure:"mlp_grid" json:"mlp_grid"` // empty: multiples of 32 up to the width
	Checks  int   `mapstructure:"checks" json:"checks"`     // random subnets to validate with
	Seed    uint64
	// Runtime is RuntimeOfa (the default when empty) or RuntimeONNXRuntime.
	Runtime string `mapstructure:"runtime" json:"runtime"`
	// ORTLib is the onnxruntime shared library for RuntimeONNXRuntime; empty:
	// ortrun.DefaultLibPath() ($ONNXRUNTIME_LIB, else the npm package's library).
	ORTLib string `mapstructure:"onnxruntime_lib" json:"onnxruntime_lib,omitempty"`
	// Threads is onnxruntime's number of intra-op threads; 0 means GOMAXPROCS, the threads
	// the tool's own runtime uses (which only GOMAXPROCS sets, so it must be 0 there).
	Threads int `mapstructure:"threads" json:"threads,omitempty"`
	// Statistic is StatMedian (the default when empty) or StatMin.
	Statistic string `mapstructure:"statistic" json:"statistic"`
	// Clock is ClockWall (the default when empty) or ClockCPU.
	Clock string `mapstructure:"clock" json:"clock"`
	// Predictor is PredictGrid (the default when empty) or PredictFit.
	Predictor string `mapstructure:"predictor" json:"predictor"`
}

// DefaultLatencyConfig times batches of one example in the tool's own runtime, the median
// of 30 samples.
func DefaultLatencyConfig() LatencyConfig {
	return LatencyConfig{Batch: 1, Repeats: 30, Checks: 8, Seed: 1, Runtime: RuntimeOfa, Statistic: StatMedian, Clock: ClockWall, Predictor: PredictGrid}
}

// statistic returns the summary function cfg.Statistic names.
func (cfg LatencyConfig) statistic() (string, func([]float64) float64, error) {
	switch cfg.Statistic {
	case "", StatMedian:
		return StatMedian, Median, nil
	case StatMin:
		return StatMin, func(v []float64) float64 { return slices.Min(v) }, nil
	}
	return "", nil, fmt.Errorf("%w: statistic %q, want %q or %q", ErrLatency, cfg.Statistic, StatMedian, StatMin)
}

// MeasureLatency builds a table for models shaped like supernet a (its width, head size,
// tokens, classes) on this machine, in cfg.Runtime, and checks it against whole-model
// measurements of subnets not used to build it. A block's time is a two-block model's
// minus a one-block model's of that shape, sampled alternately so that a change in the
// machine's load falls on both; the stem is the median over shapes of the one-block time
// minus its block. cfg.Repeats samples of every model are taken in several passes over all
// shapes and checks (see latencyPasses). progress, if set, is called after each shape or
// check of each pass.
func MeasureLatency(a arch.Arch, cfg LatencyConfig, progress func(done, total int)) (*LatencyTable, error) {
	if cfg.Batch < 1 || cfg.Repeats < 3 {
		return nil, fmt.Errorf("%w: batch %d and repeats %d, want batch >= 1 and repeats >= 3", ErrLatency, cfg.Batch, cfg.Repeats)
	}
	statName, stat, err := cfg.statistic()
	if err != nil {
		return nil, err
	}
	predictor := cfg.Predictor
	switch predictor {
	case "":
		predictor = PredictGrid
	case PredictGrid, PredictFit:
	default:
		return nil, fmt.Errorf("%w: predictor %q, want %q or %q", ErrLatency, cfg.Predictor, PredictGrid, PredictFit)
	}
	eng, err := newEngine(cfg)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("%w: mlp_grid %v, want widths >= 1", ErrLatency, cfg.MLPGrid)
	}
	t := &LatencyTable{Runtime: eng.name, RuntimeVersion: eng.version, RuntimeDescription: eng.description,
		Dim: a.Dim, HeadDim: a.HeadDim, Tokens: a.Tokens(), Patch: a.PatchHeight, Classes: a.Classes,
		Batch: cfg.Batch, Repeats: cfg.Repeats, BLAS: nn.Backend(), CPUs: runtime.GOMAXPROCS(0), Statistic: statName, Clock: eng.clock, Threads: eng.threads}
	// the jobs: per shape a one-block and a two-block model, then the checks
	type job struct {
		archs []arch.Arch
		h, m  int          // a shape's
		check *arch.Subnet // a check's
	}
	var jobs []job
	for h := 1; h <= maxH; h++ {
		for _, m := range grid {
			l := arch.Layer{Heads: h, MLP: m}
			jobs = append(jobs, job{archs: []arch.Arch{shaped(a, []arch.Layer{l}), shaped(a, []arch.Layer{l, l})}, h: h, m: m})
		}
	}
	for _, s := range checkSubnets(a, cfg) {
		var layers []arch.Layer
		for _, l := range s.Layers {
			layers = append(layers, arch.Layer{Heads: l.Heads, MLP: l.MLP})
		}
		jobs = append(jobs, job{archs: []arch.Arch{shaped(a, layers)}, check: &s})
	}
	// Every job is sampled in each of several passes over all jobs, so that a job's samples
	// spread over the whole measurement: a burst of load from elsewhere then falls on a
	// share of every job's samples instead of on all samples of a few jobs.
	passes := min(latencyPasses, cfg.Repeats)
	samples := make([][][]float64, len(jobs))
	total, done := passes*len(jobs), 0
	for p := 0; p < passes; p++ {
		pc := cfg
		pc.Repeats = (cfg.Repeats*(p+1))/passes - (cfg.Repeats*p)/passes // the passes' samples sum to cfg.Repeats
		for j, jb := range jobs {
			s, err := eng.sample(pc, jb.archs...)
			if err != nil {
				return nil, err
			}
			if samples[j] == nil {
				samples[j] = make([][]float64, len(s))
			}
			for i := range s {
				samples[j][i] = append(samples[j][i], s[i]...)
			}
			done++
			if progress != nil {
				progress(done, total)
			}
		}
	}

	var stems []float64
	for j, jb := range jobs {
		if jb.check != nil {
			continue
		}
		one, two := samples[j][0], samples[j][1]
		diff := make([]float64, len(one))
		for i := range diff {
			diff[i] = two[i] - one[i]
		}
		block := Median(diff) // paired: the load a pair saw cancels
		if statName == StatMin {
			block = stat(two) - stat(one)
		}
		block = math.Max(block, 0)
		t.Blocks = append(t.Blocks, LatencyEntry{Heads: jb.h, MLP: jb.m, MS: block, IQRMS: iqr(diff),
			MACs: int64(cfg.Batch) * a.BlockCost(jb.h, jb.m).MACs, OneMS: stat(one)})
		stems = append(stems, stat(one)-block)
	}
	t.StemMS = math.Max(Median(stems), 0)
	macs, ms := make([]float64, len(t.Blocks)), make([]float64, len(t.Blocks))
	for i, e := range t.Blocks {
		macs[i], ms[i] = float64(e.MACs), e.MS
	}
	t.BlockOrder = concordance(macs, ms)
	t.Fit = fitBlocks(t.Blocks)

	var pred, meas []float64
	for _, pr := range []string{PredictGrid, PredictFit} {
		t.Predictor = pr
		checks, mae := []LatencyCheck{}, 0.0
		pred, meas = pred[:0], meas[:0]
		for j, jb := range jobs {
			if jb.check == nil {
				continue
			}
			s, v := *jb.check, samples[j][0]
			measured, p := stat(v), t.Predict(a, s)
			c := LatencyCheck{Subnet: s.Key(), MACs: int64(cfg.Batch) * a.SubnetCost(s).MACs, PredictedMS: p, MeasuredMS: measured,
				IQRMS: iqr(v), ErrorPct: 100 * (p - measured) / measured}
			checks = append(checks, c)
			pred, meas = append(pred, p), append(meas, measured)
		}
		for _, c := range checks {
			mae += math.Abs(c.ErrorPct) / float64(len(checks))
		}
		if pr == PredictFit {
			t.Fit.MeanAbsErrorPct = mae
		} else {
			t.GridMeanAbsErrorPct = mae
		}
		if pr == predictor {
			t.Checks, t.MeanAbsErrorPct, t.CheckOrder = checks, mae, concordance(meas, pred)
		}
	}
	t.Predictor = predictor
	return t, nil
}

// fitBlocks fits a + b·heads + c·width to the entries by least absolute deviations
// (iteratively reweighted least squares), and the stem under that fit.
func fitBlocks(blocks []LatencyEntry) *BlockFit {
	n := len(blocks)
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	var coef [3]float64
	for iter := 0; iter < 50; iter++ {
		// weighted normal equations (3x3), solved by Gaussian elimination with pivoting
		var m [3][4]float64
		for i, e := range blocks {
			x := [3]float64{1, float64(e.Heads), float64(e.MLP)}
			for r := 0; r < 3; r++ {
				for c := 0; c < 3; c++ {
					m[r][c] += w[i] * x[r] * x[c]
				}
				m[r][3] += w[i] * x[r] * e.MS
			}
		}
		sol, ok := solve3(m)
		if !ok {
			break // a grid of one head count or one width: no line through it (see below)
		}
		coef = sol
		for i, e := range blocks {
			r := math.Abs(e.MS - (coef[0] + coef[1]*float64(e.Heads) + coef[2]*float64(e.MLP)))
			w[i] = 1 / math.Max(r, 1e-9)
		}
	}
	f := &BlockFit{Intercept: coef[0], PerHead: coef[1], PerNeuron: coef[2]}
	if coef == [3]float64{} { // no solution: the entries' mean as a constant
		for _, e := range blocks {
			f.Intercept += e.MS / float64(n)
		}
	}
	stems := make([]float64, n)
	for i, e := range blocks {
		stems[i] = e.OneMS - f.at(e.Heads, e.MLP)
	}
	f.StemMS = math.Max(Median(stems), 0)
	return f
}

// solve3 solves the 3x3 system m (augmented with its right-hand side); false if singular.
func solve3(m [3][4]float64) ([3]float64, bool) {
	for c := 0; c < 3; c++ {
		p := c
		for r := c + 1; r < 3; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		if math.Abs(m[p][c]) < 1e-12 {
			return [3]float64{}, false
		}
		m[c], m[p] = m[p], m[c]
		for r := 0; r < 3; r++ {
			if r != c {
				k := m[r][c] / m[c][c]
				for j := c; j < 4; j++ {
					m[r][j] -= k * m[c][j]
				}
			}
		}
	}
	return [3]float64{m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]}, true
}

// latencyPasses is the number of passes MeasureLatency spreads each job's samples over.
const latencyPasses = 5

// checkSubnets are the subnets a table is checked on: the largest and cfg.Checks random
// ones of random depth and arbitrary (not grid) widths, none of them used to build it.
func checkSubnets(a arch.Arch, cfg LatencyConfig) []arch.Subnet {
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
	return subnets
}

func shaped(a arch.Arch, layers []arch.Layer) arch.Arch {
	b := a.Clone()
	b.Positions = nil
	b.Layers = layers
	return b
}

// TimeModel returns the forward time in ms (per batch of cfg.Batch examples; cfg.Statistic
// of cfg.Repeats samples) of a model with architecture a (expanded or not) on this machine,
// in cfg.Runtime.
func TimeModel(a arch.Arch, cfg LatencyConfig) (float64, error) {
	if cfg.Repeats < 1 {
		return 0, fmt.Errorf("%w: repeats %d, want >= 1", ErrLatency, cfg.Repeats)
	}
	_, stat, err := cfg.statistic()
	if err != nil {
		return 0, err
	}
	eng, err := newEngine(cfg)
	if err != nil {
		return 0, err
	}
	s, err := eng.sample(cfg, a)
	if err != nil {
		return 0, err
	}
	return stat(s[0]), nil
}

// runner runs the forward pass of one randomly initialised model on a fixed batch.
type runner interface {
	run() error
	close()
}

// engine loads models into one runtime.
type engine struct {
	name, version, description string
	threads                    int
	load                       func(a arch.Arch, batch int) (runner, error)
	clock                      string       // ClockWall or ClockCPU
	now                        func() int64 // the clock's reading in ns; only differences matter
}

// newEngine returns the engine of cfg.Runtime with the clock cfg.Clock.
func newEngine(cfg LatencyConfig) (*engine, error) {
	e, err := runtimeEngine(cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Clock {
	case "", ClockWall:
		start := time.Now()
		e.clock, e.now = ClockWall, func() int64 { return int64(time.Since(start)) } // monotonic
	case ClockCPU:
		if e.threads != 1 {
			return nil, fmt.Errorf("%w: clock %s with %d threads; the CPU time of a process is a latency only for a forward pass on one "+
				"thread: want threads 1 for %s or GOMAXPROCS=1 for %s", ErrLatency, ClockCPU, e.threads, RuntimeONNXRuntime, RuntimeOfa)
		}
		if e.now, err = processCPUClock(); err != nil {
			return nil, fmt.Errorf("%w: clock %s: %w", ErrLatency, ClockCPU, err)
		}
		e.clock = ClockCPU
	default:
		return nil, fmt.Errorf("%w: clock %q, want %q or %q", ErrLatency, cfg.Clock, ClockWall, ClockCPU)
	}
	return e, nil
}

// runtimeEngine returns the engine of cfg.Runtime, without its clock.
func runtimeEngine(cfg LatencyConfig) (*engine, error) {
	switch cfg.Runtime {
	case "", RuntimeOfa:
		n := runtime.GOMAXPROCS(0)
		if cfg.Threads != 0 && cfg.Threads != n {
			return nil, fmt.Errorf("%w: threads %d with runtime %s, whose threads only GOMAXPROCS (%d) sets; want 0",
				ErrLatency, cfg.Threads, RuntimeOfa, n)
		}
		return &engine{name: RuntimeOfa, load: loadOfa, threads: n,
			description: fmt.Sprintf("ofa: this tool's own inference path (gorgonia tape machine, fused ops, BLAS %s, GOMAXPROCS %d)",
				nn.Backend(), n)}, nil
	case RuntimeONNXRuntime:
		return ortEngine(cfg)
	}
	return nil, fmt.Errorf("%w: runtime %q, want %q or %q", ErrLatency, cfg.Runtime, RuntimeOfa, RuntimeONNXRuntime)
}

// ofaRunner is a model's graph in a tape machine.
type ofaRunner struct{ vm G.VM }

func (r ofaRunner) run() error {
	r.vm.Reset()
	return r.vm.RunAll()
}

func (r ofaRunner) close() { r.vm.Close() }

func loadOfa(a arch.Arch, batch int) (runner, error) {
	p, err := supernet.NewParams(a, tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	g := G.NewGraph()
	if _, err := supernet.Build(g, a, p, arch.Largest(a), supernet.NewPatches(a, batch, tensor.Float32), nn.Fused{}); err != nil {
		return nil, err
	}
	return ofaRunner{vm: G.NewTapeMachine(g)}, nil
}

// sampleMS is the least duration of one sample: a sample times as many consecutive runs
// as fit (one if a run takes longer), so that the clock's resolution does not matter. It is
// short on purpose: on a loaded machine a sample that spans a preemption is spoiled, and
// the shorter the samples the more of them fit between two preemptions (with 2 ms samples
// the minimum of 50 onnxruntime samples was off by 20-60%; with single runs, 6% was
// reached on a 2-core machine at a load average of 13).
const sampleMS = 0.05

// sample loads the models of archs and returns cfg.Repeats samples of each one's forward
// time in ms, interleaved: sample i of every model is taken before sample i+1 of any, so
// that paired samples saw the same load. Each sample is the mean of a fixed number of
// consecutive runs, chosen per model after a warm-up.
func (e *engine) sample(cfg LatencyConfig, archs ...arch.Arch) ([][]float64, error) {
	rs := make([]runner, 0, len(archs))
	defer func() {
		for _, r := range rs {
			r.close()
		}
	}()
	for _, a := range archs {
		r, err := e.load(a, cfg.Batch)
		if err != nil {
			return nil, fmt.Errorf("latency (%s runtime): %w", e.name, err)
		}
		rs = append(rs, r)
	}
	runs := make([]int, len(rs))
	for i, r := range rs {
		for j := 0; j < 3; j++ { // warm up: buffers, caches, the runtime's arenas
			if err := r.run(); err != nil {
				return nil, fmt.Errorf("latency (%s runtime): %w", e.name, err)
			}
		}
		ms, err := e.timeRuns(r, 3)
		if err != nil {
			return nil, fmt.Errorf("latency (%s runtime): %w", e.name, err)
		}
		runs[i] = min(1000, max(1, int(math.Ceil(sampleMS/ms))))
	}
	// a collection now keeps garbage from earlier work out of the timed windows
	runtime.GC()
	out := make([][]float64, len(rs))
	for k := 0; k < cfg.Repeats; k++ {
		for i, r := range rs {
			ms, err := e.timeRuns(r, runs[i])
			if err != nil {
				return nil, fmt.Errorf("latency (%s runtime): %w", e.name, err)
			}
			out[i] = append(out[i], ms)
		}
	}
	return out, nil
}

// timeRuns returns the mean time in ms of n consecutive runs by the engine's clock.
func (e *engine) timeRuns(r runner, n int) (float64, error) {
	start := e.now()
	for j := 0; j < n; j++ {
		if err := r.run(); err != nil {
			return 0, err
		}
	}
	return float64(e.now()-start) / 1e6 / float64(n), nil
}

// iqr is the interquartile range of v (quartiles interpolated linearly between order
// statistics); NaN for an empty v.
func iqr(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	q := func(p float64) float64 {
		x := p * float64(len(s)-1)
		i := int(x)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (x-float64(i))*(s[i+1]-s[i])
	}
	return q(0.75) - q(0.25)
}

// concordance is the share of pairs (i, j) with x_i != x_j whose y are ordered as their
// x, a tie in y counting half; 1 when no pair has different x.
func concordance(x, y []float64) float64 {
	pairs, agree := 0, 0.0
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			if x[i] == x[j] {
				continue
			}
			pairs++
			switch dx, dy := x[j]-x[i], y[j]-y[i]; {
			case dy == 0:
				agree += 0.5
			case (dx > 0) == (dy > 0):
				agree++
			}
		}
	}
	if pairs == 0 {
		return 1
	}
	return agree / float64(pairs)
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

// Predict returns the predicted forward time (ms per batch of t.Batch) of subnet s of a,
// with t.Predictor.
func (t *LatencyTable) Predict(a arch.Arch, s arch.Subnet) float64 {
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

// LoadLatencyTable reads a table written by Save. It refuses tables with invalid entries,
// an unknown runtime, statistic, clock or predictor, or two entries for one block shape (heads, mlp): which one a lookup
// used would depend on their order.
func LoadLatencyTable(path string) (*LatencyTable, error) {
	b, err := data.ReadFileLimited(path, maxLatencyTableBytes)
	if err != nil {
		return nil, err
	}
	var t LatencyTable
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: table %s: %v", ErrLatency, path, err)
	}
	if len(t.Blocks) == 0 || t.Batch < 1 || !(t.StemMS >= 0) {
		return nil, fmt.Errorf("%w: table %s has no measurements", ErrLatency, path)
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
				return nil, fmt.Errorf("%w: table %s: fit %+v is not finite", ErrLatency, path, *f)
			}
		}
	}
	seen := make(map[[2]int]int, len(t.Blocks))
	for i, e := range t.Blocks {
		if e.Heads < 1 || e.MLP < 1 || !(e.MS >= 0) || math.IsInf(e.MS, 0) {
			return nil, fmt.Errorf("%w: table %s: blocks[%d] = %+v is invalid", ErrLatency, path, i, e)
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
