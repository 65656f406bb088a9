package main

import (
	"fmt"

	"github.com/ofa-go/ofa/export/onnx/ortrun"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/latency/timing"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/spf13/cobra"
)

func (a *app) latencyCmd() *cobra.Command {
	var modelPath, out string
	cfg := latency.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "latency-table",
		Short: "Time every block shape of a supernet on this machine and save a latency lookup table",
		Long: `Times every block shape of a supernet on this machine and saves a latency lookup table.

--runtime ofa (the default) times this tool's own inference path; --runtime onnxruntime
times the exported ONNX graph in onnxruntime's C library, which needs a binary built with
cgo and -tags onnxruntime and the library itself (--onnxruntime-lib, else
$` + ortrun.LibEnv + `, else the CPU library inside the npm package onnxruntime-node that
scripts/install-onnx-test-deps.sh installs under export/onnx/testdata/ort).

Every shape is sampled --repeats times; --statistic min (the default) keeps the least
sample, which on a machine shared with other work estimates the model's own cost best
(interference only adds time), --statistic median the median. The interquartile range is recorded
either way. --clock cpu times runs by the process's CPU time instead of the wall clock
(Linux): on a shared machine it leaves out the time spent waiting for a processor; it needs
a single-threaded forward pass (--threads 1 with onnxruntime, GOMAXPROCS=1 with ofa).

Predictions use a line a + b*heads + c*width fitted to the measured grid by least absolute
deviations (--predictor fit, the default), which a few spoiled entries barely move, or look
blocks up in the grid (--predictor grid); the table records both predictors' errors. The
defaults were the most accurate setting of this tool's runtime in docs/PERFORMANCE.md.`,
		Example: `  ofa latency-table --supernet runs/demo/supernet/supernet.safetensors --out runs/demo/latency-mine.json
  ofa latency-table --supernet S --batch 64 --repeats 50 --out latency-b64.json
  go build -tags onnxruntime -o ofa-ort ./cmd/ofa && ./ofa-ort latency-table --supernet S --runtime onnxruntime --out latency-ort.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --supernet and --out are required", errUsage)
			}
			if err := cfg.Validate(3); err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			if cfg.Runtime == latency.RuntimeONNXRuntime && !ortrun.Built {
				return fmt.Errorf("%w: --runtime %s: %w", errUsage, cfg.Runtime, ortrun.ErrNotBuilt)
			}
			m, err := modelfile.Load(modelPath)
			if err != nil {
				return err
			}
			if m.Arch.Expanded() {
				return fmt.Errorf("%w: %s is an expanded model; time its supernet", errUsage, modelPath)
			}
			t, err := timing.Measure(m.Arch, cfg, a.progress("timing block shapes"))
			if err != nil {
				return err
			}
			if err := t.Save(out); err != nil {
				return err
			}
			a.say("latency table %s: %d block shapes, stem %.4f ms, batch %d, %s of %d samples by the %s clock, runtime %s",
				out, len(t.Blocks), t.StemMS, t.Batch, t.Statistic, t.Repeats, t.Clock, t.RuntimeDescription)
			for _, c := range t.Checks {
				a.say("  %-44s predicted %.4f ms, measured %.4f ms (IQR %.4f, %+.1f%%)", c.Subnet, c.PredictedMS, c.MeasuredMS, c.IQRMS, c.ErrorPct)
			}
			a.say("mean absolute error of predicted vs measured whole-model latency: %.1f%% (predictor %s; grid %.1f%%, fit %.1f%%)",
				t.MeanAbsErrorPct, t.Predictor, t.GridMeanAbsErrorPct, t.Fit.MeanAbsErrorPct)
			a.say("pairs of block shapes timed in the order of their MACs: %.1f%%; checks predicted in the measured order: %.1f%%",
				100*t.BlockOrder, 100*t.CheckOrder)
			a.emit(map[string]any{"command": "latency-table", "file": out, "table": t})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "supernet", "", "supernet checkpoint whose block shapes to time")
	fs.StringVar(&out, "out", "", "output JSON file")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "examples per forward pass")
	fs.IntVar(&cfg.Repeats, "repeats", cfg.Repeats, "timed samples per shape")
	fs.StringVar(&cfg.Statistic, "statistic", cfg.Statistic, "what is kept of each shape's samples: median or min")
	fs.StringVar(&cfg.Predictor, "predictor", cfg.Predictor, "grid (look blocks up in the measured grid) or fit (a line in heads and width fitted to it)")
	fs.StringVar(&cfg.Clock, "clock", cfg.Clock, "wall, or cpu: the process's CPU time (Linux; needs a single-threaded forward pass)")
	fs.IntVar(&cfg.Checks, "checks", cfg.Checks, "random subnets whose predicted latency is checked against a measurement")
	fs.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "where to time: ofa (this tool's own inference) or onnxruntime (the exported ONNX graph; needs -tags onnxruntime)")
	fs.IntVar(&cfg.Threads, "threads", 0, "onnxruntime intra-op threads (0: GOMAXPROCS, as the tool's own runtime)")
	fs.StringVar(&cfg.ORTLib, "onnxruntime-lib", "", "onnxruntime shared library for --runtime onnxruntime (default $"+ortrun.LibEnv+", else the npm package's)")
	return cmd
}
