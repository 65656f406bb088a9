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
