package arch

import "fmt"

// Position is one block position of an expanded model: which stored layer's attention and
// MLP weights it runs, and which small per-position feature transforms it adds so that
// positions sharing a layer can behave differently. Every position of an expanded model
// has its own two LayerNorms (initialised from its layer's). All transforms start at
// identity, so a freshly expanded model computes what its layers computed before.
type Position struct {
	// Layer is the index into Arch.Layers whose weights this position uses.
	Layer int `json:"layer"`
	// Affine adds per-channel scale and shift on the block input and on both residual
	// branch outputs (6 x Dim parameters).
	Affine bool `json:"affine,omitempty"`
	// LowRank, if > 0, adds a rank-r residual linear map on the block output:
	// y <- y + (y A) B with A: Dim x r, B: r x Dim, B starting at zero (2 x r x Dim parameters).
	LowRank int `json:"low_rank,omitempty"`
	// HeadMix adds heads x heads mixing matrices on the attention logits (before softmax)
	// and on the attention probabilities (after softmax), as in MiniViT (2 x heads^2).
	HeadMix bool `json:"head_mix,omitempty"`
}

func (p Position) clone() Position { return p }

func validatePositions(a Arch) error {
	if len(a.Positions) > maxLayers*16 {
		return fmt.Errorf("%w: positions: got %d, want at most %d", ErrArch, len(a.Positions), maxLayers*16)
	}
	used := make([]bool, len(a.Layers))
	for i, p := range a.Positions {
		if p.Layer < 0 || p.Layer >= len(a.Layers) {
			return fmt.Errorf("%w: positions[%d].layer: got %d, want 0..%d", ErrArch, i, p.Layer, len(a.Layers)-1)
		}
		if p.LowRank < 0 || p.LowRank > a.Dim {
			return fmt.Errorf("%w: positions[%d].low_rank: got %d, want 0..%d", ErrArch, i, p.LowRank, a.Dim)
		}
		used[p.Layer] = true
	}
	for l, u := range used {
		if !u {
			return fmt.Errorf("%w: positions: layer %d is stored but no position uses it", ErrArch, l)
		}
	}
	return nil
}
