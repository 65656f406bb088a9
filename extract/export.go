package extract

import (
	"fmt"
	"math"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// Export copies subnet s out of the model (a, p) into a physically smaller model: its
// layers are s's layers with s's sizes, and every weight is the leading slice of the
// corresponding supernet weight that s uses, so the exported model computes exactly what
// the supernet computes for s.
func Export(a arch.Arch, p *supernet.Params, s arch.Subnet) (arch.Arch, *supernet.Params, error) {
	if err := s.Validate(a); err != nil {
		return arch.Arch{}, nil, err
	}
	if a.Expanded() {
		return arch.Arch{}, nil, fmt.Errorf("%w: cannot extract from an expanded model", ErrExtract)
	}
	if s.Repeats() {
		return arch.Arch{}, nil, fmt.Errorf("%w: subnet %s runs a layer more than once: extract it without repeats, then expand it (plan repeat:2, init gate 1)", ErrExtract, s.Key())
	}
	ea, ep, err := supernet.Slice(a, p, s)
	if err != nil {
		return arch.Arch{}, nil, fmt.Errorf("%w: exporting subnet %s: %w", ErrExtract, s.Key(), err)
	}
	return ea, ep, nil
}

// ErrMismatch is returned when an exported model does not reproduce the supernet.
var ErrMismatch = fmt.Errorf("%w: exported model differs from the supernet", ErrExtract)

// Verification is the result of comparing an exported model with its supernet.
type Verification struct {
	Examples   int     `json:"examples"`
	MaxAbsDiff float64 `json:"max_abs_diff"`
	Tolerance  float64 `json:"tolerance"`
}

// VerifyTolerance bounds |exported - supernet| per logit, relative to max(1, |logit|).
const VerifyTolerance = 1e-5

// Verify runs the supernet's subnet s and the exported model on one batch and checks that
// every logit agrees within VerifyTolerance.
func Verify(a arch.Arch, p *supernet.Params, s arch.Subnet, ea arch.Arch, ep *supernet.Params, batch data.Batch) (Verification, error) {
	n := batch.Size
	v := Verification{Examples: n, Tolerance: VerifyTolerance}
	want, err := logits(a, p, s, batch)
	if err != nil {
		return v, err
	}
	got, err := logits(ea, ep, arch.Largest(ea), batch)
	if err != nil {
		return v, err
	}
	worst := 0.0
	for i := 0; i < n*a.Classes; i++ {
		d := math.Abs(got[i] - want[i])
		v.MaxAbsDiff = math.Max(v.MaxAbsDiff, d)
		worst = math.Max(worst, d/math.Max(1, math.Abs(want[i])))
	}
	if worst > VerifyTolerance || math.IsNaN(worst) {
		return v, fmt.Errorf("%w: largest logit difference %.3g on %d examples (tolerance %g)", ErrMismatch, v.MaxAbsDiff, n, VerifyTolerance)
	}
	return v, nil
}

// logits runs subnet s of (a, p) on a batch.
func logits(a arch.Arch, p *supernet.Params, s arch.Subnet, batch data.Batch) ([]float64, error) {
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	r, err := supernet.NewRunner(a, p, s, len(batch.Labels), nn.Fused{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	z, err := r.Logits(batch.X, batch.Size)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(z))
	for i, x := range z {
		out[i] = float64(x)
	}
	return out, nil
}
