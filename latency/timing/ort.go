package timing

import (
	"fmt"
	"math/rand/v2"
	"runtime"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/export/onnx/ortrun"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// ortEngine times the exported ONNX graph of each model in onnxruntime (the library
// cfg.ORTLib, else ortrun.DefaultLibPath()) with cfg.Threads intra-op threads (0: as many
// as the tool's own runtime uses). In a binary without onnxruntime support it returns
// ortrun.ErrNotBuilt.
func ortEngine(cfg latency.Config) (*engine, error) {
	version, err := ortrun.Init(cfg.ORTLib)
	if err != nil {
		return nil, fmt.Errorf("%w: runtime %s: %w", latency.ErrLatency, latency.RuntimeONNXRuntime, err)
	}
	threads := cfg.Threads
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	load := func(a arch.Arch, batch int) (runner, error) { return loadORT(a, batch, threads) }
	return &engine{name: latency.RuntimeONNXRuntime, version: version, load: load, threads: threads,
		description: fmt.Sprintf("onnxruntime %s: the exported ONNX graph (opset %d) on the CPU execution provider, all graph optimisations, %d intra-op threads, sequential execution",
			version, onnx.Opset, threads)}, nil
}

// ortRunner is a session holding a fixed input batch.
type ortRunner struct{ s *ortrun.Session }

func (r ortRunner) Run() error { return r.s.Run() }
func (r ortRunner) Close()     { r.s.Close() }

// loadORT exports a randomly initialised model of architecture a (the same weights the
// tool's own runtime times) and loads it for batches of batch examples, filled with a fixed
// pseudo-random input.
func loadORT(a arch.Arch, batch, threads int) (runner, error) {
	p, err := supernet.NewParams(a, tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	kind := "supernet"
	if a.Expanded() {
		kind = "expanded"
	}
	model, err := onnx.Export(a, p, arch.Largest(a), onnx.Options{Kind: kind})
	if err != nil {
		return nil, err
	}
	s, err := ortrun.NewSession(model,
		ortrun.IO{Name: onnx.InputName, Shape: []int64{int64(batch), int64(a.InChannels), int64(a.InHeight), int64(a.InWidth)}},
		ortrun.IO{Name: onnx.OutputName, Shape: []int64{int64(batch), int64(a.Classes)}}, ortrun.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	in := s.Input()
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	return ortRunner{s: s}, nil
}
