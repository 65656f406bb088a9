package extract

import (
	"fmt"
	"math"
	"strconv"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
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
	out := a.Clone()
	out.Layers = nil
	for _, l := range s.Layers {
		out.Layers = append(out.Layers, arch.Layer{Heads: l.Heads, MLP: l.MLP})
	}
	q, err := supernet.NewParams(out, p.Dtype(), 0)
	if err != nil {
		return arch.Arch{}, nil, err
	}
	copyAll := func(name string) { copyBlock(q.Get(name), p.Get(name), nil, nil) }
	for _, name := range []string{"patch_embed.weight", "patch_embed.bias", "cls_token", "pos_embed", "norm.weight", "norm.bias", "head.weight", "head.bias"} {
		copyAll(name)
	}
	dh := a.HeadDim
	for i, l := range s.Layers {
		src, dst := "blocks."+strconv.Itoa(l.Layer)+".", "blocks."+strconv.Itoa(i)+"."
		full := a.Layers[l.Layer]
		for _, n := range []string{"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.proj.bias", "mlp.fc2.bias"} {
			copyBlock(q.Get(dst+n), p.Get(src+n), nil, nil)
		}
		hd, fhd := l.Heads*dh, full.Heads*dh
		// q, k, v blocks: rows g*fhd .. g*fhd+hd of the supernet go to g*hd .. g*hd+hd
		qkvRows := func(r int) int { return (r/hd)*fhd + r%hd }
		copyBlock(q.Get(dst+"attn.qkv.weight"), p.Get(src+"attn.qkv.weight"), qkvRows, nil)
		copyBlock(q.Get(dst+"attn.qkv.bias"), p.Get(src+"attn.qkv.bias"), qkvRows, nil)
		copyBlock(q.Get(dst+"attn.proj.weight"), p.Get(src+"attn.proj.weight"), nil, nil)
		copyBlock(q.Get(dst+"mlp.fc1.weight"), p.Get(src+"mlp.fc1.weight"), nil, nil)
		copyBlock(q.Get(dst+"mlp.fc1.bias"), p.Get(src+"mlp.fc1.bias"), nil, nil)
		copyBlock(q.Get(dst+"mlp.fc2.weight"), p.Get(src+"mlp.fc2.weight"), nil, nil)
	}
	return out, q, nil
}

// copyBlock fills dst (rows x cols) from src: dst[r][c] = src[row(r)][col(c)], identity
// maps by default (leading slices).
func copyBlock(dst, src *tensor.Dense, row, col func(int) int) {
	ds, ss := dst.Shape(), src.Shape()
	rows, cols, scols := ds[0], 1, 1
	if len(ds) == 2 {
		cols, scols = ds[1], ss[1]
	}
	if row == nil {
		row = func(r int) int { return r }
	}
	if col == nil {
		col = func(c int) int { return c }
	}
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			supernet.SetAt(dst, r*cols+c, supernet.At(src, row(r)*scols+col(c)))
		}
	}
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
	g := G.NewGraph()
	net, err := supernet.Build(g, a, p, s, supernet.NewPatches(a, len(batch.Labels), tensor.Float32), nn.Fused{})
	if err != nil {
		return nil, err
	}
	if err := supernet.Patchify(a, batch.X, batch.Size, net.Patches); err != nil {
		return nil, err
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		return nil, err
	}
	z := net.Logits.Value().Data().([]float32)
	out := make([]float64, len(z))
	for i, x := range z {
		out[i] = float64(x)
	}
	return out, nil
}
