//go:build mpi

// Command mpiexchange times the gradient exchange of data-parallel training: the
// allgather in rank order that train/ does once per subnet and step, for the gradients of
// the reference supernet (the default configuration's model on 28x28 images, every weight,
// one shard per rank) and of larger models. Run it under mpirun; rank 0 prints one JSON
// object per size: the mean time of --repeats allgathers after --warmup untimed ones, each
// started together (a barrier first, not timed), and the bytes each rank receives.
//
//	go build -tags mpi -o /tmp/mpiexchange ./bench/mpiexchange
//	mpirun -np 2 /tmp/mpiexchange [--repeats 50] [--params 5000000]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/pipeline"
)

func main() {
	repeats := flag.Int("repeats", 50, "timed allgathers per size")
	warmup := flag.Int("warmup", 5, "untimed allgathers before them")
	extra := flag.Int("params", 5_000_000, "also time a model of this many parameters (0: none)")
	flag.Parse()
	w, err := cluster.Detect()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpiexchange:", err)
		os.Exit(1)
	}
	failed := true
	defer func() { cluster.Finish(w, failed) }()
	a, _, err := pipeline.DefaultConfig().Model.Arch(arch.TaskImage, 1, 28, 28, 10)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpiexchange:", err)
		return
	}
	sizes := []struct {
		name   string
		params int64
	}{{"reference supernet", a.ModelCost().Params}}
	if *extra > 0 {
		sizes = append(sizes, struct {
			name   string
			params int64
		}{fmt.Sprintf("%d parameters", *extra), int64(*extra)})
	}
	for _, s := range sizes {
		// a shard's record: 16 bytes of loss and count, then the float32 gradients
		send := make([]byte, 16+4*s.params)
		recv := make([]byte, int64(w.Size())*int64(len(send)))
		var total time.Duration
		for i := range *warmup + *repeats {
			if err := w.Barrier(); err != nil {
				fmt.Fprintln(os.Stderr, "mpiexchange:", err)
				return
			}
			start := time.Now()
			if err := w.Allgather(send, recv); err != nil {
				fmt.Fprintln(os.Stderr, "mpiexchange:", err)
				return
			}
			if i >= *warmup {
				total += time.Since(start)
			}
		}
		if w.Rank() == 0 {
			ms := total.Seconds() * 1000 / float64(*repeats)
			b, _ := json.Marshal(map[string]any{"model": s.name, "params": s.params, "ranks": w.Size(), "world": w.Name(),
				"bytes_received": len(recv), "ms_per_allgather": ms, "gb_per_s": float64(len(recv)) / (ms / 1000) / 1e9})
			fmt.Println(string(b))
		}
	}
	failed = false
}
