//go:build ignore

// Timemodel prints, for each model file, its unique parameters, MACs per example and
// measured forward latency on this machine (median of -repeats timed runs, batch -batch),
// one JSON object per line. scripts/expansion-study.sh uses it, since `ofa bench` times
// subnets of the configured supernet, not model files.
//
//	go run scripts/timemodel.go [-batch 1] [-repeats 30] MODEL.safetensors...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/latency/timing"
	"github.com/ofa-go/ofa/modelfile"
)

func main() {
	cfg := latency.DefaultConfig()
	flag.IntVar(&cfg.Batch, "batch", cfg.Batch, "examples per forward pass")
	flag.IntVar(&cfg.Repeats, "repeats", cfg.Repeats, "timed runs (the median is reported)")
	flag.Parse()
	if flag.NArg() == 0 || cfg.Batch < 1 || cfg.Repeats < 1 {
		fmt.Fprintln(os.Stderr, "usage: go run scripts/timemodel.go [-batch N>=1] [-repeats N>=1] MODEL.safetensors...")
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, path := range flag.Args() {
		m, err := modelfile.Load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "timemodel:", err)
			os.Exit(1)
		}
		ms, err := timing.TimeModel(m.Arch, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "timemodel: %s: %v\n", path, err)
			os.Exit(1)
		}
		c := m.Arch.ModelCost()
		positions := len(m.Arch.Positions)
		if positions == 0 { // not expanded: one position per layer
			positions = len(m.Arch.Layers)
		}
		if err := enc.Encode(map[string]any{"model": path, "params": c.Params, "macs": c.MACs, "positions": positions,
			"layers": len(m.Arch.Layers), "latency_ms": ms, "batch": cfg.Batch, "repeats": cfg.Repeats}); err != nil {
			fmt.Fprintln(os.Stderr, "timemodel:", err)
			os.Exit(1)
		}
	}
}
