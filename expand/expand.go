// Package expand turns a model of N layers into one of M > N block positions without new
// layer weights: several positions reuse one layer's attention and MLP parameters, and each
// reused position gets small feature transforms of its own (per-channel affine maps that
// also gate its residual branches, an optional low-rank residual map and optional MiniViT
// head mixing) plus its own LayerNorms, so shared layers can behave differently at each
// position. Freshly expanded, every extra position is the identity (its branch gates start
// at zero), so the expanded model computes exactly what the original computed.
package expand

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/supernet"
)

// ErrPlan is wrapped by errors about reuse plans and transforms.
var ErrPlan = errors.New("expand")

// Plan maps each position to the stored layer it runs.
type Plan []int

// ParsePlan reads a plan for a model of n layers: "repeat:k" (each layer k times in a row:
// 0,0,1,1,...), "cycle:k" (the whole stack k times: 0,1,...,0,1,...) or an explicit list
// "0,0,1,1,2".
func ParsePlan(spec string, n int) (Plan, error) {
	spec = strings.TrimSpace(spec)
	kind, arg, found := strings.Cut(spec, ":")
	if found && (kind == "repeat" || kind == "cycle") {
		k, err := strconv.Atoi(arg)
		if err != nil || k < 2 || k > 16 {
			return nil, fmt.Errorf("%w: plan %q: the count must be 2..16", ErrPlan, spec)
		}
		var p Plan
		if kind == "repeat" {
			for l := 0; l < n; l++ {
				for i := 0; i < k; i++ {
					p = append(p, l)
				}
			}
		} else {
			for i := 0; i < k; i++ {
				for l := 0; l < n; l++ {
					p = append(p, l)
				}
			}
		}
		return p, p.Validate(n)
	}
	var p Plan
	for _, f := range strings.Split(spec, ",") {
		l, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%w: plan %q: %q is not a layer index (want repeat:k, cycle:k or a list like 0,0,1,1)", ErrPlan, spec, f)
		}
		p = append(p, l)
	}
	return p, p.Validate(n)
}

// Validate checks that the plan uses only layers 0..n-1, every one of them, and has more
// positions than layers (so at least two positions share a layer).
func (p Plan) Validate(n int) error {
	if len(p) <= n {
		return fmt.Errorf("%w: plan %v has %d positions for %d layers; want more positions than layers", ErrPlan, []int(p), len(p), n)
	}
	if len(p) > 16*n {
		return fmt.Errorf("%w: plan has %d positions, at most %d allowed for %d layers", ErrPlan, len(p), 16*n, n)
	}
	used := make([]bool, n)
	for i, l := range p {
		if l < 0 || l >= n {
			return fmt.Errorf("%w: plan position %d uses layer %d, the model has layers 0..%d", ErrPlan, i, l, n-1)
		}
		used[l] = true
	}
	for l, u := range used {
		if !u {
			return fmt.Errorf("%w: plan %v never uses layer %d", ErrPlan, []int(p), l)
		}
	}
	return nil
}

// String is the explicit list form.
func (p Plan) String() string {
	s := make([]string, len(p))
	for i, l := range p {
		s[i] = strconv.Itoa(l)
	}
	return strings.Join(s, ",")
}

// Transforms says which feature transforms the expansion adds.
type Transforms struct {
	// LowRank is the rank of the low-rank residual map (0: none).
	LowRank int `mapstructure:"low_rank" json:"low_rank"`
	// HeadMix adds MiniViT head mixing on attention logits and probabilities.
	HeadMix bool `mapstructure:"head_mix" json:"head_mix"`
	// All puts transforms on every position; by default only reused positions (every use
	// of a layer after its first) get them. Reused positions always get the affine maps,
	// which carry their branch gates.
	All bool `mapstructure:"all" json:"all"`
}

// Validate checks ranges against width d.
func (t Transforms) Validate(d int) error {
	if t.LowRank < 0 || t.LowRank > d {
		return fmt.Errorf("%w: expand.transforms.low_rank: got %d, want 0..%d", ErrPlan, t.LowRank, d)
	}
	return nil
}

// ValidateGate checks a starting branch gate of reused positions: a finite value in [0, 1]
// (0: closed, the default; 1: the reused block fully open).
func ValidateGate(gate float64) error {
	if !(gate >= 0 && gate <= 1) {
		return fmt.Errorf("%w: expand.init_gate: got %v, want a number in [0, 1] (0 keeps expansion exact)", ErrPlan, gate)
	}
	return nil
}

// Expand builds the expanded model of (a, p) for the plan; it computes exactly what (a, p)
// computes (every reused position starts closed).
func Expand(a arch.Arch, p *supernet.Params, plan Plan, t Transforms) (arch.Arch, *supernet.Params, error) {
	return ExpandGated(a, p, plan, t, 0)
}

// ExpandGated is Expand with the reused positions' branch gates (their affine attention and
// MLP scales) starting at gate (see ValidateGate) instead of 0. With gate 0 it is Expand;
// any other gate opens the reused positions from the start, so the expanded model no
// longer computes what (a, p) computes and fine-tuning starts from a different function.
func ExpandGated(a arch.Arch, p *supernet.Params, plan Plan, t Transforms, gate float64) (arch.Arch, *supernet.Params, error) {
	if err := ValidateGate(gate); err != nil {
		return arch.Arch{}, nil, err
	}
	if a.Expanded() {
		return arch.Arch{}, nil, fmt.Errorf("%w: the model is already expanded", ErrPlan)
	}
	if err := plan.Validate(len(a.Layers)); err != nil {
		return arch.Arch{}, nil, err
	}
	if err := t.Validate(a.Dim); err != nil {
		return arch.Arch{}, nil, err
	}
	ea := a.Clone()
	seen := make([]bool, len(a.Layers))
	for _, l := range plan {
		pos := arch.Position{Layer: l}
		if seen[l] || t.All {
			// a reused position (every use of a layer after its first) always gets the
			// affine maps: their branch scales start at zero, so it starts as the identity
			pos.Affine, pos.LowRank, pos.HeadMix = true, t.LowRank, t.HeadMix
		}
		seen[l] = true
		ea.Positions = append(ea.Positions, pos)
	}
	if err := ea.Validate(); err != nil {
		return arch.Arch{}, nil, err
	}
	ep, err := supernet.ExpandGated(a, p, ea, gate)
	if err != nil {
		return arch.Arch{}, nil, fmt.Errorf("%w: expanding to plan %s: %w", ErrPlan, plan, err)
	}
	return ea, ep, nil
}
