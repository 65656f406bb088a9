package arch

// Cost is the exact size of a model (or a subnet of one) and the multiply-accumulates of
// one forward pass on one example. MACs count every matrix product (patch embedding, q/k/v,
// attention scores, attention-weighted values, output projection, both MLP layers, low-rank
// and head-mixing transforms, classifier); element-wise work (norms, GELU, softmax, adds,
// affine transforms) is not counted, as is usual for MAC counts.
type Cost struct {
	// Params counts unique stored parameters: a tensor shared by several positions counts once.
	Params int64 `json:"params"`
	// MACs per example for one forward pass.
	MACs int64 `json:"macs"`
}

// Add returns c + o.
func (c Cost) Add(o Cost) Cost { return Cost{Params: c.Params + o.Params, MACs: c.MACs + o.MACs} }

// StemCost is the cost outside the blocks: patch embedding, class token, positions,
// final norm and classifier.
func (a Arch) StemCost() Cost {
	d, t, p := int64(a.Dim), int64(a.Tokens()), int64(a.Patches())
	ps, c := int64(a.PatchSize()), int64(a.Classes)
	params := ps*d + d + // patch_embed
		d + t*d + // cls_token, pos_embed
		2*d + // final norm
		c*d + c // head
	macs := p*ps*d + c*d
	return Cost{Params: params, MACs: macs}
}

// BlockCost is the cost of one block with the given heads and MLP width, norms included.
func (a Arch) BlockCost(heads, mlp int) Cost {
	d, t, hd, m := int64(a.Dim), int64(a.Tokens()), int64(heads*a.HeadDim), int64(mlp)
	params := 2*d + // norm1
		3*hd*d + 3*hd + // qkv
		d*hd + d + // proj
		2*d + // norm2
		m*d + m + // fc1
		d*m + d // fc2
	macs := t*d*3*hd + // qkv
		2*t*t*hd + // scores and weighted values
		t*hd*d + // proj
		2*t*d*m // fc1, fc2
	return Cost{Params: params, MACs: macs}
}

// PositionTransformCost is the cost of one expanded position's own parameters (its two
// norms and transforms) and the MACs its transforms add.
func (a Arch) PositionTransformCost(p Position) Cost {
	d, t := int64(a.Dim), int64(a.Tokens())
	h := int64(a.Layers[p.Layer].Heads)
	c := Cost{Params: 4 * d} // norm1, norm2
	if p.Affine {
		c.Params += 6 * d
	}
	if p.LowRank > 0 {
		r := int64(p.LowRank)
		c.Params += 2 * r * d
		c.MACs += 2 * t * d * r
	}
	if p.HeadMix {
		c.Params += 2 * h * h
		c.MACs += 2 * h * h * t * t
	}
	return c
}

// SubnetCost is the cost of running subnet s of a (not expanded): a repeated block's
// parameters count once and its MACs once per run.
func (a Arch) SubnetCost(s Subnet) Cost {
	c := a.StemCost()
	for _, l := range s.Layers {
		b := a.BlockCost(l.Heads, l.MLP)
		b.MACs *= int64(l.Runs())
		c = c.Add(b)
	}
	return c
}

// ModelCost is the cost of the whole model: every stored layer once for Params; for an
// expanded model, block MACs once per position and each position's norms and transforms.
func (a Arch) ModelCost() Cost {
	if !a.Expanded() {
		return a.SubnetCost(Largest(a))
	}
	d := int64(a.Dim)
	c := a.StemCost()
	for _, l := range a.Layers {
		// the layer's shared weights, without its norms (positions own the norms)
		b := a.BlockCost(l.Heads, l.MLP)
		c.Params += b.Params - 4*d
	}
	for _, p := range a.Positions {
		l := a.Layers[p.Layer]
		c.MACs += a.BlockCost(l.Heads, l.MLP).MACs
		c = c.Add(a.PositionTransformCost(p))
	}
	return c
}
