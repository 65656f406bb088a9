package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
)

func (a *app) benchCmd() *cobra.Command {
	var batch, inferBatch, steps, repeats int
	var subnetArg, input string
	var inSupernet bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure training and inference samples/s of the model (synthetic data, this machine)",
		Example: `  ofa bench                       # the reference ViT: 16 patches + cls, dim 64, 4 heads, MLP 256, 4 layers
  ofa bench --subnet smallest --json
  ofa bench --subnet smallest --in-supernet   # trained inside the whole supernet
  ofa bench --ops composed        # gorgonia's stock operations, for comparison`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loader(fk).Load()
			if err != nil {
				return err
			}
			c, h, w, err := parseInput(input)
			if err != nil {
				return fmt.Errorf("%w: --input: %w", errUsage, err)
			}
			ar, space, err := cfg.Model.Arch(arch.TaskImage, c, h, w, 10)
			if err != nil {
				return err
			}
			s, err := arch.NamedSubnet(subnetArg, ar, &space)
			if err != nil {
				return fmt.Errorf("%w: --subnet: %w", errUsage, err)
			}
			if err := train.CheckEvalBatch(ar, inferBatch, "--infer-batch"); err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			res, err := pipeline.Bench(ar, s, cfg.Ops, batch, inferBatch, steps, repeats, inSupernet)
			if err != nil {
				return err
			}
			res.Config = fmt.Sprintf("dim %d, head dim %d, %d tokens, classes %d", ar.Dim, ar.HeadDim, ar.Tokens(), ar.Classes)
			where := "sliced into a model of its own"
			if inSupernet {
				where = "inside the supernet"
			}
			a.say("model %s, subnet %s (%d params, %.2f MMACs/example, %s), BLAS %s, ops %s, %d threads",
				res.Config, res.Subnet, res.Params, float64(res.MACs)/1e6, where, res.BLAS, res.Ops, res.Threads)
			a.say("training : %8.0f samples/s (batch %d; median of %d runs of %d steps: %s)", res.TrainSamplesSec, batch, repeats, steps, runs(res.TrainRuns))
			a.say("inference: %8.0f samples/s (batch %d; median of %d runs: %s)", res.InferSamplesSec, inferBatch, repeats, runs(res.InferRuns))
			a.say("steady-state training step: %.0f allocations, %.1f KB allocated; training graph + weights + optimizer %.1f MB live; peak RSS %.0f MB",
				res.AllocsPerStep, res.BytesPerStep/1024, res.GraphMB, res.PeakRSSMB)
			a.emit(withCommand("bench", res))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&batch, "batch", 64, "training batch size")
	fs.IntVar(&inferBatch, "infer-batch", 256, "inference batch size")
	fs.IntVar(&steps, "steps", 20, "timed steps (or forward passes) per run")
	fs.IntVar(&repeats, "repeats", 5, "runs; the median is reported")
	fs.StringVar(&subnetArg, "subnet", "largest", "largest, smallest, middle or a JSON subnet")
	fs.StringVar(&input, "input", "1x28x28", "input channels x height x width, e.g. 3x32x32 (with --patch 4: 65 tokens)")
	fs.Int("patch", 7, "patch size (model.patch_size)")
	fk.add(fs, "patch", "model.patch_size")
	fs.BoolVar(&inSupernet, "in-supernet", false, "train the subnet inside the whole supernet (its optimizer updates every weight) instead of as a model of its own")
	fs.String("ops", "", "fused or composed")
	fk.add(fs, "ops", "ops")
	return cmd
}

// parseInput reads "CxHxW" (e.g. 3x32x32).
func parseInput(s string) (c, h, w int, err error) {
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("got %q, want channels x height x width, e.g. 3x32x32", s)
	}
	v := make([]int, 3)
	for i, p := range parts {
		if v[i], err = strconv.Atoi(p); err != nil || v[i] < 1 || v[i] > 4096 {
			return 0, 0, 0, fmt.Errorf("got %q, want three whole numbers from 1 to 4096, e.g. 3x32x32", s)
		}
	}
	return v[0], v[1], v[2], nil
}

func runs(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, " ")
}
