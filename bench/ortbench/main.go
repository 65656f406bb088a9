//go:build onnxruntime && cgo

// Command ortbench times inference of the model `ofa bench` times, exported to ONNX and run
// in onnxruntime, the way `ofa bench` times the tool's own inference: the median samples/s
// of --repeats runs of --steps forward passes of --batch examples (synthetic input copied
// into the input buffer before every pass, as a caller would). bench/compare.sh runs it
// next to `ofa bench`. It prints one JSON object.
//
//	go build -tags onnxruntime -o bench/out/ortbench ./bench/ortbench
//	bench/out/ortbench --batch 256 --threads 2 [--subnet smallest]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/export/onnx/ortrun"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// result is the JSON line; the field names match `ofa bench --json` where they mean the same.
type result struct {
	Runtime         string    `json:"runtime"`
	Subnet          string    `json:"subnet"`
	Threads         int       `json:"threads"`
	InferBatch      int       `json:"infer_batch"`
	InferSamplesSec float64   `json:"infer_samples_per_sec"`
	InferRuns       []float64 `json:"infer_runs"`
	MACs            int64     `json:"macs"`
}

func main() {
	batch := flag.Int("batch", 256, "examples per forward pass")
	steps := flag.Int("steps", 20, "forward passes per run")
	repeats := flag.Int("repeats", 5, "runs; the median is reported")
	threads := flag.Int("threads", 0, "intra-op threads (0: GOMAXPROCS)")
	subnet := flag.String("subnet", "largest", "largest, smallest, middle or a JSON subnet (as ofa bench --subnet)")
	lib := flag.String("onnxruntime-lib", "", "onnxruntime shared library (default $"+ortrun.LibEnv+", else the npm package's)")
	flag.Parse()
	if err := run(*batch, *steps, *repeats, *threads, *subnet, *lib); err != nil {
		fmt.Fprintln(os.Stderr, "ortbench:", err)
		os.Exit(1)
	}
}

func run(batch, steps, repeats, threads int, subnetArg, lib string) error {
	if batch < 1 || steps < 1 || repeats < 1 || threads < 0 {
		return fmt.Errorf("--batch %d, --steps %d, --repeats %d, --threads %d: want the first three >= 1 and threads >= 0", batch, steps, repeats, threads)
	}
	version, err := ortrun.Init(lib)
	if err != nil {
		return err
	}
	// the model of `ofa bench`: the default configuration's architecture, weights of seed 1
	cfg := pipeline.DefaultConfig()
	ar, space, err := cfg.Model.Arch(arch.TaskImage, 1, 28, 28, 10)
	if err != nil {
		return err
	}
	s, err := arch.NamedSubnet(subnetArg, ar, &space)
	if err != nil {
		return fmt.Errorf("--subnet: %w", err)
	}
	p, err := supernet.NewParams(ar, tensor.Float32, 1)
	if err != nil {
		return err
	}
	model, err := onnx.Export(ar, p, s, onnx.Options{Kind: "supernet"})
	if err != nil {
		return err
	}
	sess, err := ortrun.NewSession(model,
		ortrun.IO{Name: onnx.InputName, Shape: []int64{int64(batch), int64(ar.InChannels), int64(ar.InHeight), int64(ar.InWidth)}},
		ortrun.IO{Name: onnx.OutputName, Shape: []int64{int64(batch), int64(ar.Classes)}}, ortrun.Options{Threads: threads})
	if err != nil {
		return err
	}
	defer sess.Close()
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, len(sess.Input()))
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	pass := func() error {
		copy(sess.Input(), data)
		return sess.Run()
	}
	for i := 0; i < 3; i++ { // warm up, as ofa bench does
		if err := pass(); err != nil {
			return err
		}
	}
	res := result{Runtime: "onnxruntime " + version, Subnet: s.Key(), Threads: threads, InferBatch: batch,
		MACs: ar.SubnetCost(s).MACs}
	if res.Threads == 0 {
		res.Threads = runtime.GOMAXPROCS(0)
	}
	for k := 0; k < repeats; k++ {
		start := time.Now()
		for i := 0; i < steps; i++ {
			if err := pass(); err != nil {
				return err
			}
		}
		res.InferRuns = append(res.InferRuns, float64(steps*batch)/time.Since(start).Seconds())
	}
	res.InferSamplesSec = extract.Median(res.InferRuns)
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
