package extract

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
)

// Feasible checks, before anything is scored, that budget b can be met at all: the
// cheapest subnet the floors allow (MinDepth layers at the floors' sizes) must fit. Every
// layer of a supernet has the same stored size, so which layers are kept does not change
// that subnet's cost.
func Feasible(cm CostModel, b Budget, f Floors) error {
	a := cm.Arch
	if err := f.Validate(a); err != nil {
		return err
	}
	smallest := arch.Subnet{}
	for l := 0; l < f.MinDepth; l++ {
		smallest.Layers = append(smallest.Layers, arch.SubLayer{Layer: l, Heads: f.MinHeads, MLP: f.MinMLP})
	}
	if c := cm.Of(smallest); !b.Fits(c) {
		return fmt.Errorf("%w: budget %s is impossible: the smallest achievable model (%s) has %d params, %d MACs%s",
			ErrExtract, b, smallest.Key(), c.Params, c.MACs, latencyNote(c))
	}
	return nil
}

// Unconstraining says, when budget b is met by the whole supernet, that the budget does
// not constrain anything (a remote budget larger than the model, say), so that callers can
// warn instead of silently returning the supernet; it is empty otherwise.
func Unconstraining(cm CostModel, b Budget) string {
	if c := cm.Of(arch.Largest(cm.Arch)); b.Fits(c) {
		return fmt.Sprintf("budget %s does not constrain the model: the whole supernet (%d params, %d MACs) fits it", b, c.Params, c.MACs)
	}
	return ""
}

// FarBelow is the share of its tightest limit under which an extraction counts as far
// below its budget: a budget is a ceiling, and a search that comes in far under it (a
// "2x" that came out 4x-sized) gives away accuracy the budget allowed.
const FarBelow = 0.8

// Undershoot is a warning when c uses less than FarBelow of budget b's tightest limit,
// else "".
func Undershoot(b Budget, c Cost) string {
	if u := b.Use(c); u > 0 && u < FarBelow {
		return fmt.Sprintf("the extraction is far below its budget %s: it uses %.0f%% of its tightest limit (%d params, %d MACs); "+
			"the floors, the search space or the depth choices left no larger subnet that fits", b, 100*u, c.Params, c.MACs)
	}
	return ""
}

// WideFloors returns floors under which at most layers layers of a fit params unique
// parameters (the stem included), so that an extraction to that budget keeps that many
// layers and spends the rest on width: the smallest per-layer size (heads, MLP) at which
// layers+1 layers no longer fit and layers still do, searched over heads from base's
// MinHeads and MLP widths from base's MinMLP up to the stored sizes. This is the
// "width for depth" selection of an expansion: fewer, wider layers that the plan reuses
// at more positions. It fails when no size keeps exactly that many layers.
func WideFloors(a arch.Arch, params int64, layers int, base Floors) (Floors, error) {
	if err := base.Validate(a); err != nil {
		return Floors{}, err
	}
	if layers < 1 || layers > len(a.Layers) {
		return Floors{}, fmt.Errorf("%w: width for depth: %d layers, want 1..%d", ErrExtract, layers, len(a.Layers))
	}
	room := params - a.StemCost().Params
	best, found := Floors{}, false
	var bestParams int64
	for h := base.MinHeads; h <= a.Layers[0].Heads; h++ {
		for m := base.MinMLP; m <= a.Layers[0].MLP; m++ {
			p := a.BlockCost(h, m).Params
			if int64(layers+1)*p > room && int64(layers)*p <= room && (!found || p < bestParams) {
				best, bestParams, found = Floors{MinHeads: h, MinMLP: m, MinDepth: layers}, p, true
			}
		}
	}
	if !found {
		return Floors{}, fmt.Errorf("%w: width for depth: no layer size keeps exactly %d layers within %d params", ErrExtract, layers, params)
	}
	return best, nil
}
