package supernet

// The weight layout: how every tensor of a model is named and where each attention head and
// MLP neuron sits inside its layer's tensors. This file is the one place that knows it;
// other packages slice, reorder and expand models through the whole-tensor operations here
// (Slice, Permute, Expand) and name tensors through Layer and Position.

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/ofa-go/ofa/arch"
	"gorgonia.org/tensor"
)

// ErrPermutation is wrapped by errors about unit orders that are not permutations.
var ErrPermutation = errors.New("not a permutation of the layer's units")

// names of the tensors outside the blocks (the stem and the classifier)
const (
	patchEmbedWeight = "patch_embed.weight"
	patchEmbedBias   = "patch_embed.bias"
	classToken       = "cls_token"
	posEmbed         = "pos_embed"
	normWeight       = "norm.weight"
	normBias         = "norm.bias"
	headWeight       = "head.weight"
	headBias         = "head.bias"
)

// NormNames are the checkpoint names of a block's two LayerNorms. A supernet's or an
// extracted model's layer holds its own; in an expanded model every position holds them.
type NormNames struct {
	// Prefix starts every name, "blocks.3." or "positions.5.".
	Prefix                 string
	Norm1Weight, Norm1Bias string
	Norm2Weight, Norm2Bias string
}

func normNames(prefix string) NormNames {
	return NormNames{Prefix: prefix,
		Norm1Weight: prefix + "norm1.weight", Norm1Bias: prefix + "norm1.bias",
		Norm2Weight: prefix + "norm2.weight", Norm2Bias: prefix + "norm2.bias"}
}

// LayerNames are the checkpoint names of stored layer i's tensors, "blocks.i.*". The norms
// exist only in models that are not expanded.
type LayerNames struct {
	NormNames
	QKVWeight, QKVBias   string // (3*H*dh, D), (3*H*dh): the q, k and v row groups, each H heads of dh rows
	ProjWeight, ProjBias string // (D, H*dh), (D)
	FC1Weight, FC1Bias   string // (M, D), (M)
	FC2Weight, FC2Bias   string // (D, M), (D)
}

// Layer names the tensors of stored layer i.
func Layer(i int) LayerNames {
	p := "blocks." + strconv.Itoa(i) + "."
	return LayerNames{NormNames: normNames(p),
		QKVWeight: p + "attn.qkv.weight", QKVBias: p + "attn.qkv.bias",
		ProjWeight: p + "attn.proj.weight", ProjBias: p + "attn.proj.bias",
		FC1Weight: p + "mlp.fc1.weight", FC1Bias: p + "mlp.fc1.bias",
		FC2Weight: p + "mlp.fc2.weight", FC2Bias: p + "mlp.fc2.bias"}
}

// PositionNames are the checkpoint names of position i's own tensors in an expanded model,
// "positions.i.*": its norms and the feature transforms its arch.Position asks for.
type PositionNames struct {
	NormNames
	AffineInScale, AffineInShift     string // (D) each, on the block input
	AffineAttnScale, AffineAttnShift string // (D) each, on the attention branch (its gate)
	AffineMLPScale, AffineMLPShift   string // (D) each, on the MLP branch (its gate)
	LowRankDown, LowRankUp           string // (r, D), (D, r)
	HeadMixPre, HeadMixPost          string // (H, H) each
}

// Position names the tensors of position i of an expanded model.
func Position(i int) PositionNames {
	p := "positions." + strconv.Itoa(i) + "."
	return PositionNames{NormNames: normNames(p),
		AffineInScale: p + "affine.in_scale", AffineInShift: p + "affine.in_shift",
		AffineAttnScale: p + "affine.attn_scale", AffineAttnShift: p + "affine.attn_shift",
		AffineMLPScale: p + "affine.mlp_scale", AffineMLPShift: p + "affine.mlp_shift",
		LowRankDown: p + "lowrank.down", LowRankUp: p + "lowrank.up",
		HeadMixPre: p + "headmix.pre", HeadMixPost: p + "headmix.post"}
}

// Spec lists every tensor of architecture a in checkpoint order (see docs/FORMAT.md).
func Spec(a arch.Arch) []TensorSpec {
	d, dh := a.Dim, a.HeadDim
	var s []TensorSpec
	add := func(name string, init Init, decay bool, shape ...int) {
		s = append(s, TensorSpec{Name: name, Shape: shape, Init: init, Decay: decay})
	}
	norms := func(n NormNames, which int) {
		w, b := n.Norm1Weight, n.Norm1Bias
		if which == 2 {
			w, b = n.Norm2Weight, n.Norm2Bias
		}
		add(w, InitOnes, false, d)
		add(b, InitZeros, false, d)
	}
	add(patchEmbedWeight, InitNormal, true, d, a.PatchSize())
	add(patchEmbedBias, InitZeros, false, d)
	add(classToken, InitNormal, false, d)
	add(posEmbed, InitNormal, false, a.Tokens(), d)
	for i, l := range a.Layers {
		n := Layer(i)
		hd := l.Heads * dh
		if !a.Expanded() {
			norms(n.NormNames, 1)
		}
		add(n.QKVWeight, InitNormal, true, 3*hd, d)
		add(n.QKVBias, InitZeros, false, 3*hd)
		add(n.ProjWeight, InitNormal, true, d, hd)
		add(n.ProjBias, InitZeros, false, d)
		if !a.Expanded() {
			norms(n.NormNames, 2)
		}
		add(n.FC1Weight, InitNormal, true, l.MLP, d)
		add(n.FC1Bias, InitZeros, false, l.MLP)
		add(n.FC2Weight, InitNormal, true, d, l.MLP)
		add(n.FC2Bias, InitZeros, false, d)
	}
	for i, pos := range a.Positions {
		n := Position(i)
		norms(n.NormNames, 1)
		norms(n.NormNames, 2)
		if pos.Affine {
			add(n.AffineInScale, InitOnes, false, d)
			add(n.AffineInShift, InitZeros, false, d)
			add(n.AffineAttnScale, InitOnes, false, d)
			add(n.AffineAttnShift, InitZeros, false, d)
			add(n.AffineMLPScale, InitOnes, false, d)
			add(n.AffineMLPShift, InitZeros, false, d)
		}
		if pos.LowRank > 0 {
			add(n.LowRankDown, InitNormal, false, pos.LowRank, d)
			add(n.LowRankUp, InitZeros, false, d, pos.LowRank)
		}
		if pos.HeadMix {
			h := a.Layers[pos.Layer].Heads
			add(n.HeadMixPre, InitIdentity, false, h, h)
			add(n.HeadMixPost, InitIdentity, false, h, h)
		}
	}
	add(normWeight, InitOnes, false, d)
	add(normBias, InitZeros, false, d)
	add(headWeight, InitNormal, true, a.Classes, d)
	add(headBias, InitZeros, false, a.Classes)
	return s
}

// stemNames are the tensors that no unit choice changes; a subnet uses them whole.
var stemNames = []string{patchEmbedWeight, patchEmbedBias, classToken, posEmbed, normWeight, normBias, headWeight, headBias}

// unitTensor is a layer tensor whose heads or neurons are a middle axis: viewed row-major
// as (outer, units, inner), unit u of group o is the inner contiguous elements at offset
// (o*units + u)*inner. Slicing keeps the leading units of that axis; permuting reorders it.
type unitTensor struct {
	name         string
	heads        bool // the units are heads (else MLP neurons)
	outer, inner int
}

// unitTensors lists, for one layer, every tensor a head or neuron owns a part of. The
// layer's norms and the proj and fc2 biases (D) belong to no unit.
func unitTensors(a arch.Arch, n LayerNames) []unitTensor {
	d, dh := a.Dim, a.HeadDim
	return []unitTensor{
		{n.QKVWeight, true, 3, dh * d}, // (3*H*dh, D) viewed as (3, H, dh*D): q, k, v groups of H heads
		{n.QKVBias, true, 3, dh},       // (3*H*dh) viewed as (3, H, dh)
		{n.ProjWeight, true, d, dh},    // (D, H*dh) viewed as (D, H, dh): each head's columns
		{n.FC1Weight, false, 1, d},     // (M, D) viewed as (1, M, D): each neuron's row
		{n.FC1Bias, false, 1, 1},       // (M) viewed as (1, M, 1)
		{n.FC2Weight, false, d, 1},     // (D, M) viewed as (D, M, 1): each neuron's column
	}
}

// units is the number of units (heads or neurons) of layer l that u is made of.
func (u unitTensor) units(l arch.Layer) int {
	if u.heads {
		return l.Heads
	}
	return l.MLP
}

// leading is the block that copies the first k of units units of u into a tensor of k units.
func (u unitTensor) leading(k, units int) block {
	// (outer, units, inner)[:, :k, :] -> (outer, k, inner)
	return block{n: k * u.inner, rows: u.outer, dstStride: k * u.inner, srcStride: units * u.inner}
}

// reorder is the blocks that move unit perm[i] of u to position i.
func (u unitTensor) reorder(perm []int) []block {
	stride := len(perm) * u.inner
	bs := make([]block, len(perm))
	for i, j := range perm {
		// (outer, units, inner)[:, j, :] -> [:, i, :]
		bs[i] = block{dst: i * u.inner, src: j * u.inner, n: u.inner, rows: u.outer, dstStride: stride, srcStride: stride}
	}
	return bs
}

// block is a strided region of a row-major tensor copied to another: rows runs of n
// contiguous elements, run r read at src + r*srcStride and written at dst + r*dstStride.
type block struct {
	dst, src, n, rows    int
	dstStride, srcStride int
}

// whole is the block of an entire tensor of n elements.
func whole(n int) []block { return []block{{n: n, rows: 1}} }

func copyBlocks[T float32 | float64](dst, src []T, bs []block) {
	for _, b := range bs {
		for r := 0; r < b.rows; r++ {
			d, s := b.dst+r*b.dstStride, b.src+r*b.srcStride
			copy(dst[d:d+b.n], src[s:s+b.n])
		}
	}
}

// copyTensor copies the blocks from src to dst, tensors of one element type.
func copyTensor(dst, src *tensor.Dense, bs []block) {
	switch d := dst.Data().(type) {
	case []float32:
		s, ok := src.Data().([]float32)
		if !ok {
			panic("supernet: copying between tensors of different element types")
		}
		copyBlocks(d, s, bs)
	case []float64:
		s, ok := src.Data().([]float64)
		if !ok {
			panic("supernet: copying between tensors of different element types")
		}
		copyBlocks(d, s, bs)
	default:
		panic("supernet: unsupported weight type")
	}
}

// permuteInPlace applies blocks that read a copy of v's old values.
func permuteInPlace[T float32 | float64](v []T, bs []block) {
	old := append([]T(nil), v...)
	copyBlocks(v, old, bs)
}

func permuteTensor(t *tensor.Dense, bs []block) {
	switch d := t.Data().(type) {
	case []float32:
		permuteInPlace(d, bs)
	case []float64:
		permuteInPlace(d, bs)
	default:
		panic("supernet: unsupported weight type")
	}
}

// fillTensor sets every element of t to v.
func fillTensor(t *tensor.Dense, v float64) {
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(v)
		}
	case []float64:
		for i := range d {
			d[i] = v
		}
	default:
		panic("supernet: unsupported weight type")
	}
}

// conform checks that p holds exactly the tensors of a, with a's shapes.
func (p *Params) conform(a arch.Arch) error {
	spec := Spec(a)
	if len(spec) != p.Len() {
		return fmt.Errorf("%w: %d tensors, the architecture has %d", ErrParams, p.Len(), len(spec))
	}
	for _, s := range spec {
		t := p.Get(s.Name)
		if t == nil {
			return fmt.Errorf("%w: tensor %q is missing", ErrParams, s.Name)
		}
		if !t.Shape().Eq(tensor.Shape(s.Shape)) {
			return fmt.Errorf("%w: tensor %q has shape %v, the architecture needs %v", ErrParams, s.Name, t.Shape(), s.Shape)
		}
	}
	return nil
}

// zeros allocates the tensors of a, all zero.
func zeros(a arch.Arch, dt tensor.Dtype) *Params {
	spec := Spec(a)
	p := &Params{names: make([]string, 0, len(spec)), byName: make(map[string]*tensor.Dense, len(spec))}
	for _, s := range spec {
		p.names = append(p.names, s.Name)
		p.byName[s.Name] = tensor.New(tensor.WithShape(s.Shape...), tensor.Of(dt))
	}
	return p
}

// Slice copies subnet s out of the model (a, p) into a physically smaller model: its layers
// are s's layers with s's sizes, and each tensor is the part of the corresponding tensor of p
// that s uses (the leading heads of each of the q, k and v row groups and of the projection's
// columns, the leading MLP neurons), so the result computes exactly what (a, p) computes
// for s. p is not changed and shares no memory with the result.
func Slice(a arch.Arch, p *Params, s arch.Subnet) (arch.Arch, *Params, error) {
	if a.Expanded() {
		return arch.Arch{}, nil, fmt.Errorf("supernet: cannot slice an expanded model")
	}
	if err := s.Validate(a); err != nil {
		return arch.Arch{}, nil, err
	}
	if err := p.conform(a); err != nil {
		return arch.Arch{}, nil, err
	}
	out := a.Clone()
	out.Layers = make([]arch.Layer, len(s.Layers))
	for i, l := range s.Layers {
		out.Layers[i] = arch.Layer{Heads: l.Heads, MLP: l.MLP}
	}
	q := zeros(out, p.Dtype())
	copyWhole := func(dst, src string) {
		copyTensor(q.Get(dst), p.Get(src), whole(p.Get(src).Shape().TotalSize()))
	}
	for _, name := range stemNames {
		copyWhole(name, name)
	}
	for i, l := range s.Layers {
		src, dst := Layer(l.Layer), Layer(i)
		for _, pair := range [][2]string{
			{dst.Norm1Weight, src.Norm1Weight}, {dst.Norm1Bias, src.Norm1Bias},
			{dst.Norm2Weight, src.Norm2Weight}, {dst.Norm2Bias, src.Norm2Bias},
			{dst.ProjBias, src.ProjBias}, {dst.FC2Bias, src.FC2Bias},
		} {
			copyWhole(pair[0], pair[1])
		}
		full, kept := a.Layers[l.Layer], out.Layers[i]
		dt := unitTensors(out, dst)
		for j, u := range unitTensors(a, src) {
			copyTensor(q.Get(dt[j].name), p.Get(u.name), []block{u.leading(u.units(kept), u.units(full))})
		}
	}
	return out, q, nil
}

// Permute reorders the units of every layer of p in place: heads[l][i] and neurons[l][i]
// are the current indices of the head and the neuron of layer l that move to position i.
// Each head moves its query, key and value rows and bias entries and its output-projection
// columns; each neuron its fc1 row and bias entry and its fc2 column. The model computes
// the same function afterwards (up to floating-point summation order); only which units
// the leading slices select changes. Each map of extra holds values shaped like the
// weights of the same names (an optimizer's moments); those of the moved tensors follow
// the same permutation.
func Permute(a arch.Arch, p *Params, heads, neurons [][]int, extra ...map[string][]float32) error {
	if a.Expanded() {
		return fmt.Errorf("supernet: cannot permute the units of an expanded model")
	}
	if err := p.conform(a); err != nil {
		return err
	}
	if len(heads) != len(a.Layers) || len(neurons) != len(a.Layers) {
		return fmt.Errorf("supernet: %w: orders for %d/%d layers, the model has %d", ErrPermutation, len(heads), len(neurons), len(a.Layers))
	}
	for l, ly := range a.Layers {
		if !isPermutation(heads[l], ly.Heads) || !isPermutation(neurons[l], ly.MLP) {
			return fmt.Errorf("supernet: %w: layer %d has %d heads and %d neurons", ErrPermutation, l, ly.Heads, ly.MLP)
		}
	}
	for l := range a.Layers {
		for _, u := range unitTensors(a, Layer(l)) {
			size := p.Get(u.name).Shape().TotalSize()
			for _, e := range extra {
				if v, ok := e[u.name]; ok && len(v) != size {
					return fmt.Errorf("%w: %d values beside tensor %q of %d", ErrParams, len(v), u.name, size)
				}
			}
		}
	}
	for l := range a.Layers {
		for _, u := range unitTensors(a, Layer(l)) {
			perm := neurons[l]
			if u.heads {
				perm = heads[l]
			}
			bs := u.reorder(perm)
			permuteTensor(p.Get(u.name), bs)
			for _, e := range extra {
				if v, ok := e[u.name]; ok {
					permuteInPlace(v, bs)
				}
			}
		}
	}
	return nil
}

func isPermutation(perm []int, n int) bool {
	if len(perm) != n {
		return false
	}
	seen := make([]bool, n)
	for _, i := range perm {
		if i < 0 || i >= n || seen[i] {
			return false
		}
		seen[i] = true
	}
	return true
}

// expandSeed initialises the transforms of an expanded model (only the low-rank maps'
// "down" matrices are random; their "up" matrices start at zero).
const expandSeed = 11

// Expand returns the weights of ea, an expansion of the model (a, p) by layer reuse: ea has
// a's layers and sizes plus positions. The layers' attention and MLP weights and the stem
// are p's (stored once, shared by every position running the layer), each position's norms
// start as copies of its layer's, and the transforms start at identity. A reused position
// (a use of a layer after its first) must have the affine maps: its attention and MLP
// scales start at zero, which closes its branches, so the expanded model computes exactly
// what (a, p) computes. p is not changed and shares no memory with the result.
func Expand(a arch.Arch, p *Params, ea arch.Arch) (*Params, error) {
	return ExpandGated(a, p, ea, 0)
}

// ExpandGated is Expand with the reused positions' attention and MLP scales (their branch
// gates) starting at gate instead of 0: with gate 1 a reused position starts as a full
// second run of its layer's block (with its own copy of the layer's norms). Only gate 0
// keeps the expanded model's function equal to the original's.
func ExpandGated(a arch.Arch, p *Params, ea arch.Arch, gate float64) (*Params, error) {
	if math.IsNaN(gate) || math.IsInf(gate, 0) {
		return nil, fmt.Errorf("supernet: branch gate %v of reused positions is not finite", gate)
	}
	if a.Expanded() {
		return nil, fmt.Errorf("supernet: the model is already expanded")
	}
	if !ea.Expanded() {
		return nil, fmt.Errorf("supernet: the target architecture has no positions")
	}
	base := ea.Clone()
	base.Positions = nil
	if base.JSON() != a.JSON() {
		return nil, fmt.Errorf("supernet: the expanded architecture's layers and sizes differ from the model's")
	}
	if err := p.conform(a); err != nil {
		return nil, err
	}
	ep, err := NewParams(ea, p.Dtype(), expandSeed)
	if err != nil {
		return nil, err
	}
	for _, name := range ep.Names() {
		// the stem and the layers' attention and MLP weights keep their names; the
		// positions' tensors are the only ones p lacks
		if src := p.Get(name); src != nil {
			copyTensor(ep.Get(name), src, whole(src.Shape().TotalSize()))
		}
	}
	seen := make([]bool, len(a.Layers))
	for i, pos := range ea.Positions {
		dst, src := Position(i), Layer(pos.Layer)
		for _, pair := range [][2]string{
			{dst.Norm1Weight, src.Norm1Weight}, {dst.Norm1Bias, src.Norm1Bias},
			{dst.Norm2Weight, src.Norm2Weight}, {dst.Norm2Bias, src.Norm2Bias},
		} {
			copyTensor(ep.Get(pair[0]), p.Get(pair[1]), whole(a.Dim))
		}
		if seen[pos.Layer] {
			if !pos.Affine {
				return nil, fmt.Errorf("supernet: position %d reuses layer %d without the affine maps that gate its branches", i, pos.Layer)
			}
			fillTensor(ep.Get(dst.AffineAttnScale), gate)
			fillTensor(ep.Get(dst.AffineMLPScale), gate)
		}
		seen[pos.Layer] = true
	}
	return ep, nil
}
