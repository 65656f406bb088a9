package supernet

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Runner is one subnet's compiled forward graph for batches of a fixed size: it cuts
// inputs into patches, runs the graph and hands back the logits. Evaluation, export
// checks, latency timing and predictions run models through it (training and importance
// scoring build their own graphs, which also differentiate).
type Runner struct {
	Net *Net
	a   arch.Arch
	vm  G.VM
}

// NewRunner compiles subnet s of (a, p) for batches of batch examples. p must be float32.
func NewRunner(a arch.Arch, p *Params, s arch.Subnet, batch int, ops nn.Ops) (*Runner, error) {
	if batch < 1 {
		return nil, fmt.Errorf("supernet: runner batch %d, want >= 1", batch)
	}
	return NewRunnerOn(a, p, s, NewPatches(a, batch, tensor.Float32), ops)
}

// NewRunnerOn compiles subnet s of (a, p) on an input tensor made by NewPatches, which
// several runners may share (the evaluation's graphs of one batch size read one tensor).
func NewRunnerOn(a arch.Arch, p *Params, s arch.Subnet, patches *tensor.Dense, ops nn.Ops) (*Runner, error) {
	g := G.NewGraph()
	net, err := Build(g, a, p, s, patches, ops)
	if err != nil {
		return nil, err
	}
	return &Runner{Net: net, a: a, vm: G.NewTapeMachine(g)}, nil
}

// Resize makes the runner compute subnet s, which must have the same active layers as the
// one it was built for (Net.Resize: fused operations only).
func (r *Runner) Resize(s arch.Subnet) error { return r.Net.Resize(s) }

// Run executes the graph once on whatever Net.Patches holds.
func (r *Runner) Run() error {
	r.vm.Reset()
	return r.vm.RunAll()
}

// Logits runs n examples of x (n*C*H*W values, row-major images) and returns the logits,
// (batch, classes) row-major; rows past n are padding. The slice is the graph's own and
// changes with the next run.
func (r *Runner) Logits(x []float32, n int) ([]float32, error) {
	if n > r.Net.Batch {
		return nil, fmt.Errorf("supernet: %d examples for a runner of batch %d", n, r.Net.Batch)
	}
	if err := Patchify(r.a, x, n, r.Net.Patches); err != nil {
		return nil, err
	}
	if err := r.Run(); err != nil {
		return nil, err
	}
	return r.Net.Logits.Value().Data().([]float32), nil
}

// Close releases the graph.
func (r *Runner) Close() { r.vm.Close() }
