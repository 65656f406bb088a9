package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"
)

// synthetic is a Batcher of random inputs and labels (benchmarks measure the model, not
// the data pipeline).
type synthetic struct {
	batch, size, classes, batches int
}

func (s synthetic) BatchesPerEpoch() int { return s.batches }

func (s synthetic) Batch(epoch, index int, dst *data.Batch) {
	r := rand.New(rand.NewPCG(uint64(epoch), uint64(index)))
	if len(dst.X) != s.batch*s.size {
		dst.X, dst.Labels = make([]float32, s.batch*s.size), make([]int, s.batch)
	}
	for i := range dst.X {
		dst.X[i] = float32(r.NormFloat64())
	}
	for i := range dst.Labels {
		dst.Labels[i] = r.IntN(s.classes)
	}
	dst.Size = s.batch
}

// benchResult is one `ofa bench` measurement.
type benchResult struct {
	Config          string  `json:"config"`
	Subnet          string  `json:"subnet"`
	BLAS            string  `json:"blas"`
	Ops             string  `json:"ops"`
	Threads         int     `json:"threads"`
	TrainBatch      int     `json:"train_batch"`
	TrainSamplesSec float64 `json:"train_samples_per_sec"`
	TrainRuns       []float64
	InferBatch      int     `json:"infer_batch"`
	InferSamplesSec float64 `json:"infer_samples_per_sec"`
	InferRuns       []float64
	AllocsPerStep   float64 `json:"allocs_per_step"`
	BytesPerStep    float64 `json:"bytes_per_step"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	// GraphMB is the live heap a compiled training graph (with its buffers), the weights
	// and the optimizer state take after warm-up.
	GraphMB float64 `json:"graph_mb"`
	Params  int64   `json:"params"`
	MACs    int64   `json:"macs"`
}

func (a *app) benchCmd() *cobra.Command {
	var batch, inferBatch, steps, repeats int
	var subnetArg string
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure training and inference samples/s of the model (synthetic data, this machine)",
		Example: `  ofa bench                       # the reference ViT: 16 patches + cls, dim 64, 4 heads, MLP 256, 4 layers
  ofa bench --subnet smallest --json
  ofa bench --ops composed        # gorgonia's stock operations, for comparison`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			ar, space, err := cfg.Model.Arch(arch.TaskImage, 1, 28, 28, 10)
			if err != nil {
				return err
			}
			s, err := arch.NamedSubnet(subnetArg, ar, &space)
			if err != nil {
				return fmt.Errorf("%w: --subnet: %w", errUsage, err)
			}
			res, err := bench(ar, s, cfg.Ops, batch, inferBatch, steps, repeats)
			if err != nil {
				return err
			}
			res.Config = fmt.Sprintf("dim %d, head dim %d, %d tokens, classes %d", ar.Dim, ar.HeadDim, ar.Tokens(), ar.Classes)
			a.say("model %s, subnet %s (%d params, %.2f MMACs/example), BLAS %s, ops %s, %d threads",
				res.Config, res.Subnet, res.Params, float64(res.MACs)/1e6, res.BLAS, res.Ops, res.Threads)
			a.say("training : %8.0f samples/s (batch %d; median of %d runs of %d steps: %s)", res.TrainSamplesSec, batch, repeats, steps, runs(res.TrainRuns))
			a.say("inference: %8.0f samples/s (batch %d; median of %d runs: %s)", res.InferSamplesSec, inferBatch, repeats, runs(res.InferRuns))
			a.say("steady-state training step: %.0f allocations, %.1f KB allocated; training graph + weights + optimizer %.1f MB live; peak RSS %.0f MB",
				res.AllocsPerStep, res.BytesPerStep/1024, res.GraphMB, res.PeakRSSMB)
			a.emit(res)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&batch, "batch", 64, "training batch size")
	fs.IntVar(&inferBatch, "infer-batch", 256, "inference batch size")
	fs.IntVar(&steps, "steps", 20, "timed steps (or forward passes) per run")
	fs.IntVar(&repeats, "repeats", 5, "runs; the median is reported")
	fs.StringVar(&subnetArg, "subnet", "largest", "largest, smallest, middle or a JSON subnet")
	fs.String("ops", "", "fused or composed (ops)")
	fk.add(fs, "ops", "ops")
	return cmd
}

func runs(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, " ")
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// bench times training steps and inference passes of subnet s.
func bench(ar arch.Arch, s arch.Subnet, opsName string, batch, inferBatch, steps, repeats int) (*benchResult, error) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	p, err := supernet.NewParams(ar, tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	c := ar.SubnetCost(s)
	res := &benchResult{Subnet: s.Key(), BLAS: nn.Backend(), Ops: opsName, Threads: runtime.GOMAXPROCS(0), TrainBatch: batch,
		InferBatch: inferBatch, Params: c.Params, MACs: c.MACs}
	cfg := train.Default()
	cfg.BatchSize, cfg.Steps, cfg.WarmupSteps = batch, 1<<30, 0
	syn := synthetic{batch: batch, size: ar.InChannels * ar.InHeight * ar.InWidth, classes: ar.Classes, batches: 1 << 20}
	tr, err := train.New(train.Setup{Arch: ar, Params: p, Sampler: train.Fixed{s}, Train: syn, Ops: pipeline.Ops(opsName), Config: cfg})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	for i := 0; i < 3; i++ { // warm up: compile, allocate buffers
		if _, err := tr.TrainStep(); err != nil {
			return nil, err
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.GraphMB = float64(ms.HeapAlloc-heap0) / (1 << 20)
	mallocs, bytes := ms.Mallocs, ms.TotalAlloc
	for r := 0; r < repeats; r++ {
		start := time.Now()
		for i := 0; i < steps; i++ {
			if _, err := tr.TrainStep(); err != nil {
				return nil, err
			}
		}
		res.TrainRuns = append(res.TrainRuns, float64(steps*batch)/time.Since(start).Seconds())
	}
	runtime.ReadMemStats(&ms)
	n := float64(steps * repeats)
	res.AllocsPerStep, res.BytesPerStep = float64(ms.Mallocs-mallocs)/n, float64(ms.TotalAlloc-bytes)/n
	res.TrainSamplesSec = medianOf(res.TrainRuns)

	isyn := synthetic{batch: inferBatch, size: syn.size, classes: ar.Classes, batches: steps}
	ev := train.NewEvaluator(ar, p, pipeline.Ops(opsName), isyn, inferBatch)
	defer ev.Close()
	if _, _, err := ev.Evaluate(s); err != nil { // warm up
		return nil, err
	}
	for r := 0; r < repeats; r++ {
		start := time.Now()
		if _, _, err := ev.Evaluate(s); err != nil {
			return nil, err
		}
		res.InferRuns = append(res.InferRuns, float64(steps*inferBatch)/time.Since(start).Seconds())
	}
	res.InferSamplesSec = medianOf(res.InferRuns)
	res.PeakRSSMB = peakRSSMB()
	return res, nil
}

// peakRSSMB reads the process's peak resident set size (Linux), 0 elsewhere.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
