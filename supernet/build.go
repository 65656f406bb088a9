// Package supernet defines the elastic Transformer: its weights (Params, named as in the
// checkpoint) and Build, which turns an architecture, its weights and one subnet into a
// gorgonia graph. A subnet uses leading slices of the stored weights (the first heads, the
// first MLP neurons), so extraction can put the most important units first and every
// subnet then runs on the best ones.
package supernet

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Net is one subnet's forward graph.
type Net struct {
	// Input holds a batch of flattened patches, (B*P, PatchSize); fill Patches before running.
	Input *G.Node
	// Patches is the tensor behind Input.
	Patches *tensor.Dense
	// Logits is (B, Classes).
	Logits *G.Node
	// Blocks are the residual stream after each block run, in order (a position of an
	// expanded model, each run of a repeated layer), each (B*T, D): hidden-state
	// distillation matches them with a teacher's.
	Blocks G.Nodes
	// Weights are the weight nodes this subnet uses, in the fixed parameter order.
	Weights G.Nodes
	// WeightNames names Weights (checkpoint keys).
	WeightNames []string
	// Batch is the number of examples per run.
	Batch int

	arch      arch.Arch
	subnet    arch.Subnet
	layers    []*layerSpecs // per active layer, the specs its ops read at every run
	resizable bool
}

// layerSpecs are the size-dependent specs of one block's ops.
type layerSpecs struct {
	qkv, proj, fc1, fc2 *nn.LinearSpec
	attn                *nn.AttentionSpec
}

func (l *layerSpecs) set(a arch.Arch, heads, mlp int) {
	hd := heads * a.HeadDim
	l.qkv.Out, l.attn.Heads, l.proj.In = hd, heads, hd
	l.fc1.Out, l.fc2.In = mlp, mlp
}

// Subnet is the subnet the graph computes now.
func (n *Net) Subnet() arch.Subnet { return n.subnet }

// Resize makes the graph compute another subnet with the same active layers (any numbers
// of heads and neurons up to the stored sizes), without rebuilding it. Only graphs built
// with ops that read their sizes at run time (nn.Fused) can be resized.
func (n *Net) Resize(s arch.Subnet) error {
	if err := s.Validate(n.arch); err != nil {
		return err
	}
	if len(s.Layers) != len(n.subnet.Layers) {
		return fmt.Errorf("supernet: cannot resize a %d-layer graph to %d layers", len(n.subnet.Layers), len(s.Layers))
	}
	for i, l := range s.Layers {
		if l.Layer != n.subnet.Layers[i].Layer {
			return fmt.Errorf("supernet: cannot resize: layer %d of the graph is stored layer %d, not %d", i, n.subnet.Layers[i].Layer, l.Layer)
		}
		if l.Runs() != n.subnet.Layers[i].Runs() {
			return fmt.Errorf("supernet: cannot resize: layer %d of the graph runs %d times, not %d", i, n.subnet.Layers[i].Runs(), l.Runs())
		}
	}
	if s.Equal(n.subnet) {
		return nil
	}
	if !n.resizable {
		return fmt.Errorf("supernet: this graph's ops fix their sizes when built; build a new graph for %s", s.Key())
	}
	for i, l := range s.Layers {
		n.layers[i].set(n.arch, l.Heads, l.MLP)
	}
	n.subnet = s.Clone()
	return nil
}

// LayerKey identifies the graphs that Resize can move between: the active stored layers
// and how often each runs ("0,1" or "0x2,1x2").
func LayerKey(s arch.Subnet) string {
	k := make([]byte, 0, 3*len(s.Layers))
	for i, l := range s.Layers {
		if i > 0 {
			k = append(k, ',')
		}
		k = fmt.Appendf(k, "%d", l.Layer)
		if l.Runs() > 1 {
			k = fmt.Appendf(k, "x%d", l.Runs())
		}
	}
	return string(k)
}

// NewPatches allocates the input tensor for batches of the given size: (batch*P, PatchSize).
func NewPatches(a arch.Arch, batch int, dt tensor.Dtype) *tensor.Dense {
	return tensor.New(tensor.WithShape(batch*a.Patches(), a.PatchSize()), tensor.Of(dt))
}

// LayerProbe exposes one block's internals for importance scoring.
type LayerProbe struct {
	// Layer is the stored layer index.
	Layer int
	// QKV is the q/k/v projection output (B*T, 3*h*dh); Context the attention output
	// softmax(QKᵀ/√dh)V before the projection (B*T, h*dh); Hidden the GELU output (B*T, m).
	QKV, Context, Hidden *G.Node
	// HeadGates (h) and NeuronGates (m) are input nodes holding ones that scale each head's
	// context and each neuron's activation; their gradients are Taylor importance scores.
	HeadGates, NeuronGates *G.Node
	// In and Out are the residual stream before and after the block (B*T, D).
	In, Out *G.Node
}

// BuildProbed is Build with gates and probes on every active block (for extraction).
func BuildProbed(g *G.ExprGraph, a arch.Arch, p *Params, s arch.Subnet, patches *tensor.Dense, ops nn.Ops) (*Net, []*LayerProbe, error) {
	if a.Expanded() {
		return nil, nil, fmt.Errorf("supernet: probes are for supernets and extracted models, not expanded ones")
	}
	if s.Repeats() {
		return nil, nil, fmt.Errorf("supernet: probes score each layer once; subnet %s repeats a layer", s.Key())
	}
	var probes []*LayerProbe
	net, err := build(g, a, p, s, patches, ops, &probes)
	if net != nil {
		net.resizable = false // gates have the sizes of s
	}
	return net, probes, err
}

// Build adds the forward pass of subnet s of the model (a, p) to graph g, using ops for every
// operation. The input is the patches tensor (B*P, PatchSize) from NewPatches; several graphs
// may share one (they run one at a time).
func Build(g *G.ExprGraph, a arch.Arch, p *Params, s arch.Subnet, patches *tensor.Dense, ops nn.Ops) (*Net, error) {
	return build(g, a, p, s, patches, ops, nil)
}

func build(g *G.ExprGraph, a arch.Arch, p *Params, s arch.Subnet, patches *tensor.Dense, ops nn.Ops, probes *[]*LayerProbe) (*Net, error) {
	if err := s.Validate(a); err != nil {
		return nil, err
	}
	np, t := a.Patches(), a.Tokens()
	sh := patches.Shape()
	if len(sh) != 2 || sh[0]%np != 0 || sh[0] == 0 || sh[1] != a.PatchSize() || patches.Dtype() != p.Dtype() {
		return nil, fmt.Errorf("supernet: input %v %v, want (B*%d, %d) %v", sh, patches.Dtype(), np, a.PatchSize(), p.Dtype())
	}
	batch := sh[0] / np
	b := &builder{Builder: nn.Builder{Ops: ops}, g: g, p: p, used: map[string]*G.Node{}, probes: probes}
	net := &Net{Batch: batch, Patches: patches, arch: a, subnet: s.Clone()}
	if r, ok := ops.(interface{ Resizable() bool }); ok {
		net.resizable = r.Resizable()
	}
	net.Input = G.NodeFromAny(g, patches, G.WithName("patches"))

	// (B*P, PatchSize) -> (B*P, D)
	x := b.Linear("patch_embed", net.Input, b.w(patchEmbedWeight), b.w(patchEmbedBias),
		&nn.LinearSpec{Out: a.Dim, In: a.PatchSize(), NoInputGrad: true})
	// (B*P, D) -> (B*T, D)
	x = b.Tokens("tokens", x, b.w(classToken), b.w(posEmbed), np)

	if a.Expanded() {
		for i, pos := range a.Positions {
			l := a.Layers[pos.Layer]
			pn := Position(i)
			x = b.block(a, x, blockSpec{
				weights: Layer(pos.Layer), norms: pn.NormNames, transforms: pn,
				heads: l.Heads, mlp: l.MLP, pos: pos, specs: newLayerSpecs(a, l.Heads, l.MLP),
			})
			net.Blocks = append(net.Blocks, x)
		}
	} else {
		for _, l := range s.Layers {
			ln := Layer(l.Layer)
			specs := newLayerSpecs(a, l.Heads, l.MLP)
			net.layers = append(net.layers, specs)
			// a repeated block runs again with the same weights, norms and sizes; the weight
			// nodes are shared, so their gradients sum over the runs
			for r := 0; r < l.Runs(); r++ {
				x = b.block(a, x, blockSpec{weights: ln, norms: ln.NormNames, heads: l.Heads, mlp: l.MLP, specs: specs, layer: l.Layer})
				net.Blocks = append(net.Blocks, x)
			}
		}
	}
	x = b.LayerNorm("norm", x, b.w(normWeight), b.w(normBias), a.NormEps)
	x = b.ClassToken("cls", x, t) // (B, D)
	net.Logits = b.Linear("head", x, b.w(headWeight), b.w(headBias), &nn.LinearSpec{Out: a.Classes, In: a.Dim})
	if a.Expanded() {
		net.resizable = false
	}
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("supernet: building subnet %s: %w", s.Key(), err)
	}
	for _, name := range p.Names() {
		if n, ok := b.used[name]; ok {
			net.Weights = append(net.Weights, n)
			net.WeightNames = append(net.WeightNames, name)
		}
	}
	return net, nil
}

type builder struct {
	nn.Builder
	g      *G.ExprGraph
	p      *Params
	used   map[string]*G.Node
	probes *[]*LayerProbe // non-nil: add gates and record probes
}

// ones is an input node of n ones, used as gates.
func (b *builder) ones(name string, n int) *G.Node {
	t := tensor.New(tensor.WithShape(n), tensor.Of(b.p.Dtype()))
	for i := 0; i < n; i++ {
		setAt(t, i, 1)
	}
	return G.NodeFromAny(b.g, t, G.WithName(name))
}

// w returns the graph node wrapping the named weight (one node per weight per graph, so a
// weight used at several positions accumulates all their gradients).
func (b *builder) w(name string) *G.Node {
	if n, ok := b.used[name]; ok {
		return n
	}
	t := b.p.Get(name)
	if t == nil {
		// Spec and Build name the same tensors; a miss is a bug, not bad input.
		panic(fmt.Sprintf("supernet: weight %q is not in the parameter store", name))
	}
	n := G.NodeFromAny(b.g, t, G.WithName(name))
	b.used[name] = n
	return n
}

type blockSpec struct {
	weights    LayerNames    // the layer's attention and MLP weights
	norms      NormNames     // the layer's norms, or the position's in an expanded model
	transforms PositionNames // the position's transforms (expanded models only)
	heads      int
	mlp        int
	pos        arch.Position // transforms (expanded models only)
	specs      *layerSpecs
	layer      int
}

func newLayerSpecs(a arch.Arch, heads, mlp int) *layerSpecs {
	l := &layerSpecs{
		qkv:  &nn.LinearSpec{Groups: 3, In: a.Dim},
		proj: &nn.LinearSpec{Out: a.Dim},
		fc1:  &nn.LinearSpec{In: a.Dim},
		fc2:  &nn.LinearSpec{Out: a.Dim},
		attn: &nn.AttentionSpec{Tokens: a.Tokens(), HeadDim: a.HeadDim},
	}
	l.set(a, heads, mlp)
	return l
}

// block is one pre-LayerNorm Transformer block on x (B*T, D):
//
//	x = x + proj(attention(qkv(norm1(x))))
//	x = x + fc2(gelu(fc1(norm2(x))))
//
// with, in expanded models, the position's transforms around it.
func (b *builder) block(a arch.Arch, x *G.Node, s blockSpec) *G.Node {
	w, n, t := s.weights, s.norms, s.transforms
	// node names: the layer's, the norms' and the transforms' prefixes
	wp, np, tp := w.Prefix, n.Prefix, t.Prefix
	var probe *LayerProbe
	if b.probes != nil {
		probe = &LayerProbe{Layer: s.layer, In: x}
		*b.probes = append(*b.probes, probe)
	}
	h := b.LayerNorm(np+"norm1", x, b.w(n.Norm1Weight), b.w(n.Norm1Bias), a.NormEps)
	if s.pos.Affine {
		h = b.Affine(tp+"affine.in", h, b.w(t.AffineInScale), b.w(t.AffineInShift))
	}
	// (B*T, D) -> (B*T, 3*h*dh)
	qkv := b.Linear(wp+"attn.qkv", h, b.w(w.QKVWeight), b.w(w.QKVBias), s.specs.qkv)
	s.specs.attn.HeadMix = s.pos.HeadMix
	var mixPre, mixPost *G.Node
	if s.pos.HeadMix {
		mixPre, mixPost = b.w(t.HeadMixPre), b.w(t.HeadMixPost)
	}
	// (B*T, 3*h*dh) -> (B*T, h*dh)
	att := b.Attention(wp+"attn", qkv, s.specs.attn, mixPre, mixPost)
	if probe != nil {
		probe.QKV, probe.Context = qkv, att
		probe.HeadGates = b.ones(wp+"attn.gates", s.heads)
		att = b.Gate(wp+"attn.gate", att, probe.HeadGates, a.HeadDim)
	}
	// (B*T, h*dh) -> (B*T, D)
	att = b.Linear(wp+"attn.proj", att, b.w(w.ProjWeight), b.w(w.ProjBias), s.specs.proj)
	if s.pos.Affine {
		att = b.Affine(tp+"affine.attn", att, b.w(t.AffineAttnScale), b.w(t.AffineAttnShift))
	}
	x = b.Add(wp+"residual1", x, att)
	h = b.LayerNorm(np+"norm2", x, b.w(n.Norm2Weight), b.w(n.Norm2Bias), a.NormEps)
	// (B*T, D) -> (B*T, mlp)
	h = b.Linear(wp+"mlp.fc1", h, b.w(w.FC1Weight), b.w(w.FC1Bias), s.specs.fc1)
	h = b.GELU(wp+"mlp.act", h)
	if probe != nil {
		probe.Hidden = h
		probe.NeuronGates = b.ones(wp+"mlp.gates", s.mlp)
		h = b.Gate(wp+"mlp.gate", h, probe.NeuronGates, 1)
	}
	// (B*T, mlp) -> (B*T, D)
	h = b.Linear(wp+"mlp.fc2", h, b.w(w.FC2Weight), b.w(w.FC2Bias), s.specs.fc2)
	if s.pos.Affine {
		h = b.Affine(tp+"affine.mlp", h, b.w(t.AffineMLPScale), b.w(t.AffineMLPShift))
	}
	x = b.Add(wp+"residual2", x, h)
	if r := s.pos.LowRank; r > 0 {
		// x + (x Aᵀ) Bᵀ: (B*T, D) -> (B*T, r) -> (B*T, D)
		lr := b.Linear(tp+"lowrank.down", x, b.w(t.LowRankDown), nil, &nn.LinearSpec{Out: r, In: a.Dim})
		lr = b.Linear(tp+"lowrank.up", lr, b.w(t.LowRankUp), nil, &nn.LinearSpec{Out: a.Dim, In: r})
		x = b.Add(tp+"lowrank", x, lr)
	}
	if probe != nil {
		probe.Out = x
	}
	return x
}
