// Package latency predicts a subnet's forward time on this machine from a table of measured
// block shapes: the table (and the migrations of its file format), the predictors that use
// it (a grid lookup and a fitted line), the statistics that summarise timed samples, and the
// one validation of the measurement's knobs. Package latency/timing measures tables; this
// package neither runs models nor imports a runtime.
package latency

import "errors"

// ErrLatency is wrapped by every error about a latency table or its settings.
var ErrLatency = errors.New("latency")

// Runtimes a latency table can be measured in (Config.Runtime, Table.Runtime).
const (
	// RuntimeOfa is this tool's own inference path: the model's gorgonia graph with the
	// fused operations, run by a tape machine, as `ofa eval` and `ofa bench` run it.
	RuntimeOfa = "ofa"
	// RuntimeONNXRuntime is onnxruntime's CPU execution provider running the exported
	// ONNX graph (package export/onnx), through package export/onnx/ortrun; it needs a
	// binary built with cgo and -tags onnxruntime.
	RuntimeONNXRuntime = "onnxruntime"
)

// Clocks a latency table can be measured with (Config.Clock).
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

// Statistics a latency table can summarise samples with (Config.Statistic).
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

// Predictors a latency table can predict with (Config.Predictor).
const (
	// PredictGrid looks every block up in the measured grid, interpolating widths.
	PredictGrid = "grid"
	// PredictFit uses the table's BlockFit, a line in heads and width fitted to the grid:
	// one noisy entry then moves the prediction a little instead of fully.
	PredictFit = "fit"
)
