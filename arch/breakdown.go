package arch

// LayerCost is one stored layer's share of a model: its sizes, parameters and MACs, and
// the positions that run it (expanded models).
type LayerCost struct {
	Layer  int   `json:"layer"`
	Heads  int   `json:"heads"`
	MLP    int   `json:"mlp"`
	Params int64 `json:"params"`
	MACs   int64 `json:"macs"`
	// Uses lists the positions running this layer (expanded models).
	Uses []int `json:"positions,omitempty"`
}

// PositionCost is one position of an expanded model: its own norms and transforms'
// parameters, and the MACs it runs (its layer's block plus its transforms).
type PositionCost struct {
	Position
	Index  int   `json:"position"`
	Params int64 `json:"params"`
	MACs   int64 `json:"macs"`
}

// Breakdown splits a's cost by stored layer and, for expanded models, by position. The
// layers' parameters exclude the norms an expanded model keeps per position.
func (a Arch) Breakdown() ([]LayerCost, []PositionCost) {
	var layers []LayerCost
	for i, l := range a.Layers {
		c := a.BlockCost(l.Heads, l.MLP)
		lc := LayerCost{Layer: i, Heads: l.Heads, MLP: l.MLP, Params: c.Params, MACs: c.MACs}
		if a.Expanded() {
			lc.Params -= 4 * int64(a.Dim) // norms belong to positions
		}
		layers = append(layers, lc)
	}
	var positions []PositionCost
	for p, pos := range a.Positions {
		c := a.PositionTransformCost(pos)
		positions = append(positions, PositionCost{Position: pos, Index: p, Params: c.Params,
			MACs: c.MACs + a.BlockCost(a.Layers[pos.Layer].Heads, a.Layers[pos.Layer].MLP).MACs})
		layers[pos.Layer].Uses = append(layers[pos.Layer].Uses, p)
	}
	return layers, positions
}
