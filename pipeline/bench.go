package pipeline

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
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

// BenchResult is one benchmark measurement (`ofa bench`).
type BenchResult struct {
	Config          string    `json:"config"`
	Subnet          string    `json:"subnet"`
	BLAS            string    `json:"blas"`
	Ops             string    `json:"ops"`
	Threads         int       `json:"threads"`
	TrainBatch      int       `json:"train_batch"`
	TrainSamplesSec float64   `json:"train_samples_per_sec"`
	TrainRuns       []float64 `json:"train_runs"`
	InferBatch      int       `json:"infer_batch"`
	InferSamplesSec float64   `json:"infer_samples_per_sec"`
	InferRuns       []float64 `json:"infer_runs"`
	AllocsPerStep   float64   `json:"allocs_per_step"`
	BytesPerStep    float64   `json:"bytes_per_step"`
	PeakRSSMB       float64   `json:"peak_rss_mb"`
	// GraphMB is the live heap a compiled training graph (with its buffers), the weights
	// and the optimizer state take after warm-up.
	GraphMB float64 `json:"graph_mb"`
	Params  int64   `json:"params"`
	MACs    int64   `json:"macs"`
	// InSupernet says the subnet was trained inside the whole supernet rather than as a
	// model of its own.
	InSupernet bool `json:"in_supernet"`
}

// Bench times training steps and inference passes of subnet s of a randomly initialised
// model of architecture ar on synthetic data (the model is measured, not the data
// pipeline): the median samples/s of repeats runs of steps steps, allocations per
// steady-state step, the live heap of a compiled graph and the peak resident set size.
//
// With inSupernet false the subnet is first sliced out into a model of its own
// (supernet.Slice), as an extracted model is trained and as a PyTorch model of the same
// sizes is built; with it true the subnet is trained inside the whole supernet, whose
// optimizer then also updates (with zero gradients) the weights the subnet does not use.
func Bench(ar arch.Arch, s arch.Subnet, opsName string, batch, inferBatch, steps, repeats int, inSupernet bool) (*BenchResult, error) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	p, err := supernet.NewParams(ar, tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	c := ar.SubnetCost(s)
	res := &BenchResult{Subnet: s.Key(), BLAS: nn.Backend(), Ops: opsName, Threads: runtime.GOMAXPROCS(0), TrainBatch: batch,
		InferBatch: inferBatch, Params: c.Params, MACs: c.MACs, InSupernet: inSupernet}
	if !inSupernet {
		if ar, p, err = supernet.Slice(ar, p, s); err != nil {
			return nil, err
		}
		s = arch.Largest(ar) // the supernet's weights are garbage now: GraphMB counts the slice's
	}
	cfg := train.Default()
	cfg.BatchSize, cfg.Steps, cfg.WarmupSteps = batch, 1<<30, 0
	syn := synthetic{batch: batch, size: ar.InChannels * ar.InHeight * ar.InWidth, classes: ar.Classes, batches: 1 << 20}
	tr, err := train.New(train.Setup{Arch: ar, Params: p, Sampler: train.Fixed{s}, Train: syn, Ops: Ops(opsName), Config: cfg})
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
	res.TrainSamplesSec = latency.Median(res.TrainRuns)

	isyn := synthetic{batch: inferBatch, size: syn.size, classes: ar.Classes, batches: steps}
	ev := train.NewEvaluator(ar, p, Ops(opsName), isyn, inferBatch)
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
	res.InferSamplesSec = latency.Median(res.InferRuns)
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
