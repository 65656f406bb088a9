package expand

import (
	"fmt"
	"strconv"
	"strings"
)

// Config is the "expand" section of the configuration: the reuse plan and the transforms.
type Config struct {
	// Plan is "repeat:k", "cycle:k" or an explicit list of layer indices, one per position.
	Plan       string     `mapstructure:"plan"`
	Transforms Transforms `mapstructure:"transforms"`
	// InitGate is where the reused positions' branch gates (affine attention and MLP
	// scales) start, in [0, 1]. 0, the default, closes them: the expanded model starts as
	// exactly the original. A larger value starts them open (1: the reused block runs in
	// full), which fine-tuning may need when it is short.
	InitGate float64 `mapstructure:"init_gate"`
	// WidthForDepth makes `ofa run` extract the model it expands with half the layers of
	// the budget's plain extraction (rounded up, but at least two; an extraction of two
	// layers keeps its depth: pipeline.WideLayers), each as wide as the budget allows
	// (extract.WideFloors), so that the plan trades width for depth at equal unique
	// parameters: fewer, wider layers, each reused. false expands an extraction with the
	// plain extraction's depth, a little smaller to make room for the transforms.
	WidthForDepth bool `mapstructure:"width_for_depth"`
}

// DefaultConfig repeats every layer twice, with affine maps, a rank-4 residual map and
// head mixing on the reused positions, and has `ofa run` trade width for depth (the best
// expansion of docs/RESULTS.md's expansion study).
func DefaultConfig() Config {
	return Config{Plan: "repeat:2", Transforms: Transforms{LowRank: 4, HeadMix: true}, WidthForDepth: true}
}

// Validate checks the transforms against model width d, the starting gate, and that the
// plan is well formed (for a plan naming layers, the layer count is checked when the plan is applied).
func (c Config) Validate(d int) error {
	if err := c.Transforms.Validate(d); err != nil {
		return err
	}
	if err := ValidateGate(c.InitGate); err != nil {
		return err
	}
	// a plan of the "repeat:k"/"cycle:k" form can be checked without the model; a
	// one-layer model is the smallest it will meet
	if strings.HasPrefix(c.Plan, "repeat:") || strings.HasPrefix(c.Plan, "cycle:") {
		if _, err := ParsePlan(c.Plan, 1); err != nil {
			return fmt.Errorf("expand.plan: %w", err)
		}
		return nil
	}
	for _, f := range strings.Split(c.Plan, ",") {
		if l, err := strconv.Atoi(strings.TrimSpace(f)); err != nil || l < 0 {
			return fmt.Errorf("%w: expand.plan: %q: %q is not a layer index (want repeat:k, cycle:k or a list like 0,0,1,1)", ErrPlan, c.Plan, f)
		}
	}
	return nil
}

// ParseTransforms reads the --transforms form "lowrank:8,headmix,all" (affine maps are
// always on reused positions, so "affine" alone or "" means only them).
func ParseTransforms(s string) (Transforms, error) {
	var t Transforms
	if strings.TrimSpace(s) == "" || s == "affine" {
		return t, nil
	}
	for _, f := range strings.Split(s, ",") {
		name, arg, _ := strings.Cut(strings.TrimSpace(f), ":")
		switch name {
		case "affine":
		case "lowrank", "low_rank":
			r, err := strconv.Atoi(arg)
			if err != nil || r < 1 {
				return t, fmt.Errorf("%w: transforms: %q needs a rank, e.g. lowrank:8", ErrPlan, f)
			}
			t.LowRank = r
		case "headmix", "head_mix":
			t.HeadMix = true
		case "all":
			t.All = true
		default:
			return t, fmt.Errorf("%w: transforms: unknown transform %q (want affine, lowrank:R, headmix, all)", ErrPlan, name)
		}
	}
	return t, nil
}
