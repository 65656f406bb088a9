// Package timing measures latency tables (package latency) on this machine: it times
// randomly initialised models of each block shape in the tool's own runtime
// (supernet.Runner) or in onnxruntime (the exported ONNX graph, behind a build tag), and
// whole models for the lifecycle's report.
package timing

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// Measure builds a table for models shaped like supernet a (its width, head size,
// tokens, classes) on this machine, in cfg.Runtime, and checks it against whole-model
// measurements of subnets not used to build it. A block's time is a two-block model's
// minus a one-block model's of that shape, sampled alternately so that a change in the
// machine's load falls on both; the stem is the median over shapes of the one-block time
// minus its block. cfg.Repeats samples of every model are taken in several passes over all
// shapes and checks (see latencyPasses). progress, if set, is called after each shape or
// check of each pass.
func Measure(a arch.Arch, cfg latency.Config, progress func(done, total int)) (*latency.Table, error) {
	if err := cfg.Validate(3); err != nil {
		return nil, err
	}
	statName, stat, _ := cfg.Summary()
	predictor := cfg.Predictor
	if predictor == "" {
		predictor = latency.PredictGrid
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
	t := &latency.Table{Runtime: eng.name, RuntimeVersion: eng.version, RuntimeDescription: eng.description,
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
		block := latency.Median(diff) // paired: the load a pair saw cancels
		if statName == latency.StatMin {
			block = stat(two) - stat(one)
		}
		block = math.Max(block, 0)
		t.Blocks = append(t.Blocks, latency.Entry{Heads: jb.h, MLP: jb.m, MS: block, IQRMS: latency.IQR(diff),
			MACs: int64(cfg.Batch) * a.BlockCost(jb.h, jb.m).MACs, OneMS: stat(one)})
		stems = append(stems, stat(one)-block)
	}
	t.StemMS = math.Max(latency.Median(stems), 0)
	macs, ms := make([]float64, len(t.Blocks)), make([]float64, len(t.Blocks))
	for i, e := range t.Blocks {
		macs[i], ms[i] = float64(e.MACs), e.MS
	}
	t.BlockOrder = latency.Concordance(macs, ms)
	t.Fit = latency.FitBlocks(t.Blocks)

	var pred, meas []float64
	for _, pr := range []string{latency.PredictGrid, latency.PredictFit} {
		t.Predictor = pr
		checks, mae := []latency.Check{}, 0.0
		pred, meas = pred[:0], meas[:0]
		for j, jb := range jobs {
			if jb.check == nil {
				continue
			}
			s, v := *jb.check, samples[j][0]
			measured, p := stat(v), t.Predict(a, s)
			c := latency.Check{Subnet: s.Key(), MACs: int64(cfg.Batch) * a.SubnetCost(s).MACs, PredictedMS: p, MeasuredMS: measured,
				IQRMS: latency.IQR(v), ErrorPct: 100 * (p - measured) / measured}
			checks = append(checks, c)
			pred, meas = append(pred, p), append(meas, measured)
		}
		for _, c := range checks {
			mae += math.Abs(c.ErrorPct) / float64(len(checks))
		}
		if pr == latency.PredictFit {
			t.Fit.MeanAbsErrorPct = mae
		} else {
			t.GridMeanAbsErrorPct = mae
		}
		if pr == predictor {
			t.Checks, t.MeanAbsErrorPct, t.CheckOrder = checks, mae, latency.Concordance(meas, pred)
		}
	}
	t.Predictor = predictor
	return t, nil
}

// latencyPasses is the number of passes Measure spreads each job's samples over.
const latencyPasses = 5

// checkSubnets are the subnets a table is checked on: the largest and cfg.Checks random
// ones of random depth and arbitrary (not grid) widths, none of them used to build it.
func checkSubnets(a arch.Arch, cfg latency.Config) []arch.Subnet {
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
func TimeModel(a arch.Arch, cfg latency.Config) (float64, error) {
	if err := cfg.Validate(1); err != nil {
		return 0, err
	}
	_, stat, _ := cfg.Summary()
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
	Run() error
	Close()
}

// engine loads models into one runtime.
type engine struct {
	name, version, description string
	threads                    int
	load                       func(a arch.Arch, batch int) (runner, error)
	clock                      string       // latency.ClockWall or latency.ClockCPU
	now                        func() int64 // the clock's reading in ns; only differences matter
}

// newEngine returns the engine of cfg.Runtime with the clock cfg.Clock.
func newEngine(cfg latency.Config) (*engine, error) {
	e, err := runtimeEngine(cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Clock {
	case "", latency.ClockWall:
		start := time.Now()
		e.clock, e.now = latency.ClockWall, func() int64 { return int64(time.Since(start)) } // monotonic
	case latency.ClockCPU:
		if e.threads != 1 {
			return nil, fmt.Errorf("%w: clock %s with %d threads; the CPU time of a process is a latency only for a forward pass on one "+
				"thread: want threads 1 for %s or GOMAXPROCS=1 for %s", latency.ErrLatency, latency.ClockCPU, e.threads, latency.RuntimeONNXRuntime, latency.RuntimeOfa)
		}
		if e.now, err = processCPUClock(); err != nil {
			return nil, fmt.Errorf("%w: clock %s: %w", latency.ErrLatency, latency.ClockCPU, err)
		}
		e.clock = latency.ClockCPU
	}
	return e, nil
}

// runtimeEngine returns the engine of cfg.Runtime, without its clock.
func runtimeEngine(cfg latency.Config) (*engine, error) {
	switch cfg.Runtime {
	case "", latency.RuntimeOfa:
		n := runtime.GOMAXPROCS(0)
		return &engine{name: latency.RuntimeOfa, load: loadOfa, threads: n,
			description: fmt.Sprintf("ofa: this tool's own inference path (gorgonia tape machine, fused ops, BLAS %s, GOMAXPROCS %d)",
				nn.Backend(), n)}, nil
	case latency.RuntimeONNXRuntime:
		return ortEngine(cfg)
	}
	panic("timing: runtime " + cfg.Runtime + " passed latency.Config.Validate") // Validate names every runtime
}

// loadOfa compiles a randomly initialised model of architecture a in the tool's own
// runtime (supernet.Runner with the fused operations, as eval and predict run models).
func loadOfa(a arch.Arch, batch int) (runner, error) {
	p, err := supernet.NewParams(a, tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	return supernet.NewRunner(a, p, arch.Largest(a), batch, nn.Fused{})
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
func (e *engine) sample(cfg latency.Config, archs ...arch.Arch) ([][]float64, error) {
	rs := make([]runner, 0, len(archs))
	defer func() {
		for _, r := range rs {
			r.Close()
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
			if err := r.Run(); err != nil {
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
		if err := r.Run(); err != nil {
			return 0, err
		}
	}
	return float64(e.now()-start) / 1e6 / float64(n), nil
}
