package main

import (
	"fmt"

	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/spf13/cobra"
)

func (a *app) latencyCmd() *cobra.Command {
	var modelPath, out string
	cfg := extract.DefaultLatencyConfig()
	cmd := &cobra.Command{
		Use:   "latency-table",
		Short: "Time every block shape of a supernet on this machine and save a latency lookup table",
		Example: `  ofa latency-table --supernet runs/fmnist/supernet.safetensors --out latency.json
  ofa latency-table --supernet S --batch 64 --repeats 50 --out latency-b64.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --supernet and --out are required", errUsage)
			}
			m, err := modelfile.Load(modelPath)
			if err != nil {
				return err
			}
			if m.Arch.Expanded() {
				return fmt.Errorf("%w: %s is an expanded model; time its supernet", errUsage, modelPath)
			}
			t, err := extract.MeasureLatency(m.Arch, cfg, a.progress("timing block shapes"))
			if err != nil {
				return err
			}
			if err := t.Save(out); err != nil {
				return err
			}
			a.say("latency table %s: %d block shapes, stem %.4f ms, batch %d, BLAS %s", out, len(t.Blocks), t.StemMS, t.Batch, t.BLAS)
			for _, c := range t.Checks {
				a.say("  %-44s predicted %.4f ms, measured %.4f ms (%+.1f%%)", c.Subnet, c.PredictedMS, c.MeasuredMS, c.ErrorPct)
			}
			a.say("mean absolute error of predicted vs measured whole-model latency: %.1f%%", t.MeanAbsErrorPct)
			a.emit(map[string]any{"command": "latency-table", "file": out, "table": t})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "supernet", "", "supernet checkpoint whose block shapes to time")
	fs.StringVar(&out, "out", "", "output JSON file")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "examples per forward pass")
	fs.IntVar(&cfg.Repeats, "repeats", cfg.Repeats, "timed runs per shape (the median is kept)")
	fs.IntVar(&cfg.Checks, "checks", cfg.Checks, "random subnets whose predicted latency is checked against a measurement")
	return cmd
}
