package latency

import (
	"fmt"
	"runtime"
	"slices"
)

// Config configures a measurement.
type Config struct {
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
	// Statistic is StatMedian or StatMin (empty: StatMedian, as before the field existed).
	Statistic string `mapstructure:"statistic" json:"statistic"`
	// Clock is ClockWall (the default when empty) or ClockCPU.
	Clock string `mapstructure:"clock" json:"clock"`
	// Predictor is PredictGrid or PredictFit (empty: PredictGrid, as before the field existed).
	Predictor string `mapstructure:"predictor" json:"predictor"`
}

// DefaultConfig times batches of one example in the tool's own runtime and keeps the least
// of 30 samples of each shape, predicting with the fitted line: on the project's shared
// 2-core machine this was the most accurate setting of the tool's own runtime
// (docs/PERFORMANCE.md: 7.0% and 5.9% mean error with the fit, 8.0% and 7.1% with the grid,
// against 10.0-10.1% and 7.7-8.3% for the median).
func DefaultConfig() Config {
	return Config{Batch: 1, Repeats: 30, Checks: 8, Seed: 1, Runtime: RuntimeOfa, Statistic: StatMin, Clock: ClockWall, Predictor: PredictFit}
}

// ErrorWarnPct is the mean whole-model prediction error above which a table's predictions
// are flagged as approximate (reports say so next to the table).
const ErrorWarnPct = 10.0

// Validate checks every knob of a measurement, naming the one that is wrong and what it
// takes; it is the only check of them (the command line and the lifecycle call it, and
// package latency/timing before it measures). minRepeats is the least number of samples
// the caller needs (a table's interquartile ranges need 3, one timing 1).
func (cfg Config) Validate(minRepeats int) error {
	if cfg.Batch < 1 || cfg.Repeats < minRepeats {
		return fmt.Errorf("%w: batch %d and repeats %d, want batch >= 1 and repeats >= %d", ErrLatency, cfg.Batch, cfg.Repeats, minRepeats)
	}
	if cfg.Checks < 0 {
		return fmt.Errorf("%w: checks %d, want >= 0", ErrLatency, cfg.Checks)
	}
	for _, m := range cfg.MLPGrid {
		if m < 1 {
			return fmt.Errorf("%w: mlp_grid %v, want widths >= 1", ErrLatency, cfg.MLPGrid)
		}
	}
	if _, _, err := cfg.Summary(); err != nil {
		return err
	}
	switch cfg.Clock {
	case "", ClockWall, ClockCPU:
	default:
		return fmt.Errorf("%w: clock %q, want %q or %q", ErrLatency, cfg.Clock, ClockWall, ClockCPU)
	}
	switch cfg.Predictor {
	case "", PredictGrid, PredictFit:
	default:
		return fmt.Errorf("%w: predictor %q, want %q or %q", ErrLatency, cfg.Predictor, PredictGrid, PredictFit)
	}
	if cfg.Threads < 0 {
		return fmt.Errorf("%w: threads %d, want >= 0 (0: GOMAXPROCS)", ErrLatency, cfg.Threads)
	}
	switch cfg.Runtime {
	case "", RuntimeOfa:
		if cfg.Threads != 0 || cfg.ORTLib != "" {
			return fmt.Errorf("%w: threads %d, onnxruntime_lib %q: threads and onnxruntime_lib are only used with runtime %s (runtime %s uses GOMAXPROCS threads, %d here); want 0 and empty",
				ErrLatency, cfg.Threads, cfg.ORTLib, RuntimeONNXRuntime, RuntimeOfa, runtime.GOMAXPROCS(0))
		}
	case RuntimeONNXRuntime:
	default:
		return fmt.Errorf("%w: runtime %q, want %q or %q", ErrLatency, cfg.Runtime, RuntimeOfa, RuntimeONNXRuntime)
	}
	return nil
}

// Summary returns the name and the function of the statistic cfg.Statistic names.
func (cfg Config) Summary() (string, func([]float64) float64, error) {
	switch cfg.Statistic {
	case "", StatMedian:
		return StatMedian, Median, nil
	case StatMin:
		return StatMin, func(v []float64) float64 { return slices.Min(v) }, nil
	}
	return "", nil, fmt.Errorf("%w: statistic %q, want %q or %q", ErrLatency, cfg.Statistic, StatMedian, StatMin)
}
