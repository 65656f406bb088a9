//go:build onnxruntime && cgo

// Command ortbench compares the tool's own inference with onnxruntime on the same model:
// the model `ofa bench` times (the default configuration's architecture, weights of seed 1),
// run by the evaluator `ofa bench` uses and, exported to ONNX, by onnxruntime with each of
// --threads intra-op threads. Each is timed as `ofa bench` times inference: samples/s of
// --steps forward passes of --batch examples of synthetic data (generated per batch for
// ofa's evaluator as in `ofa bench`; for onnxruntime copied into the input buffer before
// every pass, as a caller would). The implementations alternate run by run, --repeats runs
// each, so that a change in the machine's load falls on all of them; bench/compare.sh runs
// it. It prints one JSON object per implementation: the runs and their median.
//
//	go build -tags onnxruntime -o bench/out/ortbench ./bench/ortbench             # pure Go ofa
//	go build -tags 'onnxruntime openblas' -o bench/out/ortbench ./bench/ortbench  # OpenBLAS ofa
//	bench/out/ortbench --batch 256 [--threads 1,2] [--subnet smallest]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/export/onnx/ortrun"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"gorgonia.org/tensor"
)

// result is one implementation's JSON line; the field names match `ofa bench --json` where
// they mean the same.
type result struct {
	Impl            string    `json:"impl"`
	Runtime         string    `json:"runtime"`
	Subnet          string    `json:"subnet"`
	Threads         int       `json:"threads"`
	InferBatch      int       `json:"infer_batch"`
	InferSamplesSec float64   `json:"infer_samples_per_sec"`
	InferRuns       []float64 `json:"infer_runs"`
	MACs            int64     `json:"macs"`
}

// impl is one implementation: a warm-up and one timed run of steps passes.
type impl struct {
	res result
	run func() error
}

func main() {
	batch := flag.Int("batch", 256, "examples per forward pass")
	steps := flag.Int("steps", 20, "forward passes per run")
	repeats := flag.Int("repeats", 5, "runs of each implementation; the median is reported")
	threads := flag.String("threads", "1,2", "onnxruntime intra-op thread counts to time, comma-separated")
	subnet := flag.String("subnet", "largest", "largest, smallest, middle or a JSON subnet (as ofa bench --subnet)")
	lib := flag.String("onnxruntime-lib", "", "onnxruntime shared library (default $"+ortrun.LibEnv+", else the npm package's)")
	flag.Parse()
	if err := run(*batch, *steps, *repeats, *threads, *subnet, *lib); err != nil {
		fmt.Fprintln(os.Stderr, "ortbench:", err)
		os.Exit(1)
	}
}

func run(batch, steps, repeats int, threadList, subnetArg, lib string) error {
	if batch < 1 || steps < 1 || repeats < 1 {
		return fmt.Errorf("--batch %d, --steps %d, --repeats %d: want each >= 1", batch, steps, repeats)
	}
	var threads []int
	for _, f := range strings.Split(threadList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--threads %q: want thread counts >= 1, comma-separated", threadList)
		}
		threads = append(threads, n)
	}
	version, err := ortrun.Init(lib)
	if err != nil {
		return err
	}
	cfg := pipeline.DefaultConfig()
	ar, space, err := cfg.Model.Arch(arch.TaskImage, 1, 28, 28, 10)
	if err != nil {
		return err
	}
	s, err := arch.NamedSubnet(subnetArg, ar, &space)
	if err != nil {
		return fmt.Errorf("--subnet: %w", err)
	}
	if err := train.CheckEvalBatch(ar, batch, "--batch"); err != nil {
		return err
	}
	p, err := supernet.NewParams(ar, tensor.Float32, 1)
	if err != nil {
		return err
	}
	macs := ar.SubnetCost(s).MACs

	// ofa: the evaluator of `ofa bench` on synthetic batches
	syn := synthetic{batch: batch, size: ar.InChannels * ar.InHeight * ar.InWidth, classes: ar.Classes, batches: steps}
	ev := train.NewEvaluator(ar, p, pipeline.Ops(cfg.Ops), syn, batch)
	defer ev.Close()
	impls := []impl{{
		res: result{Impl: "ofa", Runtime: "ofa (" + nn.Backend() + ", ops " + cfg.Ops + ")", Subnet: s.Key(), Threads: runtime.GOMAXPROCS(0), InferBatch: batch, MACs: macs},
		run: func() error { _, _, err := ev.Evaluate(s); return err },
	}}

	// onnxruntime: the same subnet exported, one session per thread count
	model, err := onnx.Export(ar, p, s, onnx.Options{Kind: "supernet"})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	in := make([]float32, batch*syn.size)
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	for _, n := range threads {
		sess, err := ortrun.NewSession(model,
			ortrun.IO{Name: onnx.InputName, Shape: []int64{int64(batch), int64(ar.InChannels), int64(ar.InHeight), int64(ar.InWidth)}},
			ortrun.IO{Name: onnx.OutputName, Shape: []int64{int64(batch), int64(ar.Classes)}}, ortrun.Options{Threads: n})
		if err != nil {
			return err
		}
		defer sess.Close()
		impls = append(impls, impl{
			res: result{Impl: fmt.Sprintf("onnxruntime-%dt", n), Runtime: "onnxruntime " + version, Subnet: s.Key(), Threads: n, InferBatch: batch, MACs: macs},
			run: func() error {
				for i := 0; i < steps; i++ {
					copy(sess.Input(), in)
					if err := sess.Run(); err != nil {
						return err
					}
				}
				return nil
			},
		})
	}

	for i := range impls { // warm up, as ofa bench does
		if err := impls[i].run(); err != nil {
			return fmt.Errorf("%s: %w", impls[i].res.Impl, err)
		}
	}
	for k := 0; k < repeats; k++ {
		for i := range impls {
			start := time.Now()
			if err := impls[i].run(); err != nil {
				return fmt.Errorf("%s: %w", impls[i].res.Impl, err)
			}
			impls[i].res.InferRuns = append(impls[i].res.InferRuns, float64(steps*batch)/time.Since(start).Seconds())
		}
	}
	for _, im := range impls {
		im.res.InferSamplesSec = latency.Median(im.res.InferRuns)
		b, err := json.Marshal(im.res)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	}
	return nil
}

// synthetic is a Batcher of random inputs and labels, as `ofa bench` feeds its evaluator.
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
