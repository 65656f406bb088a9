package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx/onnxpb"
	"github.com/ofa-go/ofa/supernet"
	"google.golang.org/protobuf/proto"
)

// GELU's tanh approximation, 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x³))), as in package nn.
const (
	geluC = 0.7978845608028654 // sqrt(2/pi)
	geluA = 0.044715
)

// graph accumulates the nodes and initializers of one exported model. Every node has one
// output, named like the node; weights are initializers named like the checkpoint's tensors
// and added once however many nodes read them. The first bad weight sets err.
type graph struct {
	a      arch.Arch
	p      *supernet.Params
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	values map[string]bool // every name defined so far: input, initializers, node outputs
	// initNames are the initializers added so far.
	initNames map[string]bool
	err       error
}

// buildGraph is the forward pass of supernet.Build as an ONNX graph, on a stream of tokens
// kept as a (B*T, D) matrix so every linear layer is one Gemm on the stored (out, in) weight.
func buildGraph(a arch.Arch, p *supernet.Params, s arch.Subnet) (*onnxpb.GraphProto, error) {
	g := &graph{a: a, p: p, values: map[string]bool{InputName: true}, initNames: map[string]bool{}}
	d, t, np := a.Dim, a.Tokens(), a.Patches()

	// patch embedding: Conv2d(C, D, kernel=stride=patch), whose weight is patch_embed.weight
	// reshaped to (D, C, ph, pw); (B, C, H, W) -> (B, D, H/ph, W/pw)
	pe := g.op("Conv", "patch_embed", []string{InputName,
		g.weightAs("patch_embed.weight", []int{d, a.PatchSize()}, d, a.InChannels, a.PatchHeight, a.PatchWidth),
		g.weight("patch_embed.bias", d)},
		attrInts("kernel_shape", a.PatchHeight, a.PatchWidth), attrInts("strides", a.PatchHeight, a.PatchWidth))
	// (B, D, gh, gw) -> (B, D, P) -> (B, P, D): patches in row-major grid order
	pe = g.op("Reshape", "patch_embed.flat", []string{pe, g.shape(-1, d, np)})
	pe = g.op("Transpose", "patch_embed.tokens", []string{pe}, attrInts("perm", 0, 2, 1))
	// class token broadcast over the batch: (1, 1, D) -> (B, 1, D)
	batch := g.op("Shape", "batch_size", []string{InputName}, attrInt("start", 0), attrInt("end", 1))
	clsShape := g.op("Concat", "cls_token.shape", []string{batch, g.ints("const.1_"+strconv.Itoa(d), 1, d)}, attrInt("axis", 0))
	cls := g.op("Expand", "cls_token.batch", []string{g.weightAs("cls_token", []int{d}, 1, 1, d), clsShape})
	// (B, T, D) with the class token first, plus positions (T, D)
	x := g.op("Concat", "tokens", []string{cls, pe}, attrInt("axis", 1))
	x = g.op("Add", "tokens.pos", []string{x, g.weight("pos_embed", t, d)})
	x = g.op("Reshape", "tokens.flat", []string{x, g.shape(-1, d)}) // (B*T, D)

	if a.Expanded() {
		for i, pos := range a.Positions {
			l := a.Layers[pos.Layer]
			x = g.block(x, blockSpec{
				name:    "positions." + strconv.Itoa(i) + ".",
				weights: "blocks." + strconv.Itoa(pos.Layer) + ".",
				norms:   "positions." + strconv.Itoa(i) + ".",
				heads:   l.Heads, mlp: l.MLP, full: l, pos: pos,
			})
		}
	} else {
		for _, l := range s.Layers {
			prefix := "blocks." + strconv.Itoa(l.Layer) + "."
			x = g.block(x, blockSpec{name: prefix, weights: prefix, norms: prefix,
				heads: l.Heads, mlp: l.MLP, full: a.Layers[l.Layer]})
		}
	}

	// LayerNorm acts per token, so the class token is picked first: (B*T, D) -> (B, T, D) -> (B, D)
	x = g.op("Reshape", "tokens.unflat", []string{x, g.shape(-1, t, d)})
	x = g.op("Gather", "cls", []string{x, g.index(0)}, attrInt("axis", 1))
	x = g.layerNorm("norm", x, "norm.")
	g.op("Gemm", OutputName, []string{x, g.weight("head.weight", a.Classes, d), g.weight("head.bias", a.Classes)},
		attrInt("transB", 1))
	if g.err != nil {
		return nil, g.err
	}
	return &onnxpb.GraphProto{
		Name:        proto.String("ofa"),
		Node:        g.nodes,
		Initializer: g.inits,
		Input:       []*onnxpb.ValueInfoProto{valueInfo(InputName, BatchDim, a.InChannels, a.InHeight, a.InWidth)},
		Output:      []*onnxpb.ValueInfoProto{valueInfo(OutputName, BatchDim, a.Classes)},
	}, nil
}

// blockSpec is one block of the exported graph.
type blockSpec struct {
	name    string     // prefix of the block's node names: "blocks.<layer>." or "positions.<p>."
	weights string     // prefix of the attention and MLP weights, "blocks.<layer>."
	norms   string     // prefix of the norms and transforms: the block's, or the position's
	heads   int        // leading heads used
	mlp     int        // leading MLP neurons used
	full    arch.Layer // the stored layer's sizes
	pos     arch.Position
}

// block is one pre-LayerNorm Transformer block on x (B*T, D):
//
//	x = x + proj(attention(qkv(norm1(x))))
//	x = x + fc2(gelu(fc1(norm2(x))))
//
// with, in expanded models, the position's transforms around it.
func (g *graph) block(x string, s blockSpec) string {
	a := g.a
	d, dh, t := a.Dim, a.HeadDim, a.Tokens()
	h, hd, fhd := s.heads, s.heads*a.HeadDim, s.full.Heads*a.HeadDim
	n, w := s.name, s.weights

	y := g.layerNorm(n+"norm1", x, s.norms+"norm1.")
	if s.pos.Affine {
		y = g.affine(n+"affine.in", y, s.norms+"affine.in_scale", s.norms+"affine.in_shift")
	}
	// the leading hd rows of each of the q, k and v blocks of the stored (3*fhd, D) weight
	qkvRows := func(r int) int { return (r/hd)*fhd + r%hd }
	qkv := g.op("Gemm", n+"attn.qkv", []string{y,
		g.slice(w+"attn.qkv.weight", []int{3 * fhd, d}, 3*hd, d, qkvRows, nil),
		g.slice(w+"attn.qkv.bias", []int{3 * fhd}, 3*hd, 1, qkvRows, nil)},
		attrInt("transB", 1)) // (B*T, 3*h*dh)
	qkv = g.op("Reshape", n+"attn.qkv.split", []string{qkv, g.shape(-1, t, 3, h, dh)})          // (B, T, 3, h, dh)
	qkv = g.op("Transpose", n+"attn.qkv.heads", []string{qkv}, attrInts("perm", 2, 0, 3, 1, 4)) // (3, B, h, T, dh)
	q := g.op("Gather", n+"attn.q", []string{qkv, g.index(0)}, attrInt("axis", 0))              // (B, h, T, dh)
	k := g.op("Gather", n+"attn.k", []string{qkv, g.index(1)}, attrInt("axis", 0))
	v := g.op("Gather", n+"attn.v", []string{qkv, g.index(2)}, attrInt("axis", 0))
	k = g.op("Transpose", n+"attn.k.t", []string{k}, attrInts("perm", 0, 1, 3, 2)) // (B, h, dh, T)
	sc := g.op("MatMul", n+"attn.scores", []string{q, k})                          // (B, h, T, T)
	sc = g.op("Mul", n+"attn.scores.scaled", []string{sc, g.scalar("const.attn_scale_dh"+strconv.Itoa(dh), 1/math.Sqrt(float64(dh)))})
	if s.pos.HeadMix {
		sc = g.mixHeads(n+"attn.headmix.pre", sc, s.norms+"headmix.pre", h)
	}
	att := g.op("Softmax", n+"attn.probs", []string{sc}, attrInt("axis", -1))
	if s.pos.HeadMix {
		att = g.mixHeads(n+"attn.headmix.post", att, s.norms+"headmix.post", h)
	}
	o := g.op("MatMul", n+"attn.context", []string{att, v})                              // (B, h, T, dh)
	o = g.op("Transpose", n+"attn.context.t", []string{o}, attrInts("perm", 0, 2, 1, 3)) // (B, T, h, dh)
	o = g.op("Reshape", n+"attn.context.flat", []string{o, g.shape(-1, hd)})             // (B*T, h*dh)
	o = g.op("Gemm", n+"attn.proj", []string{o,
		g.slice(w+"attn.proj.weight", []int{d, fhd}, d, hd, nil, nil),
		g.weight(w+"attn.proj.bias", d)}, attrInt("transB", 1)) // (B*T, D)
	if s.pos.Affine {
		o = g.affine(n+"affine.attn", o, s.norms+"affine.attn_scale", s.norms+"affine.attn_shift")
	}
	x = g.op("Add", n+"residual1", []string{x, o})

	y = g.layerNorm(n+"norm2", x, s.norms+"norm2.")
	y = g.op("Gemm", n+"mlp.fc1", []string{y,
		g.slice(w+"mlp.fc1.weight", []int{s.full.MLP, d}, s.mlp, d, nil, nil),
		g.slice(w+"mlp.fc1.bias", []int{s.full.MLP}, s.mlp, 1, nil, nil)}, attrInt("transB", 1)) // (B*T, mlp)
	y = g.gelu(n+"mlp.act", y)
	y = g.op("Gemm", n+"mlp.fc2", []string{y,
		g.slice(w+"mlp.fc2.weight", []int{d, s.full.MLP}, d, s.mlp, nil, nil),
		g.weight(w+"mlp.fc2.bias", d)}, attrInt("transB", 1)) // (B*T, D)
	if s.pos.Affine {
		y = g.affine(n+"affine.mlp", y, s.norms+"affine.mlp_scale", s.norms+"affine.mlp_shift")
	}
	x = g.op("Add", n+"residual2", []string{x, y})

	if r := s.pos.LowRank; r > 0 {
		// x + (x downᵀ) upᵀ: (B*T, D) -> (B*T, r) -> (B*T, D)
		lr := g.op("Gemm", n+"lowrank.project_down", []string{x, g.weight(s.norms+"lowrank.down", r, d)}, attrInt("transB", 1))
		lr = g.op("Gemm", n+"lowrank.project_up", []string{lr, g.weight(s.norms+"lowrank.up", d, r)}, attrInt("transB", 1))
		x = g.op("Add", n+"lowrank", []string{x, lr})
	}
	return x
}

// layerNorm normalises the last axis of x with the weights prefix+"weight" and prefix+"bias".
func (g *graph) layerNorm(name, x, prefix string) string {
	d := g.a.Dim
	return g.op("LayerNormalization", name, []string{x, g.weight(prefix+"weight", d), g.weight(prefix+"bias", d)},
		attrInt("axis", -1), attrFloat("epsilon", float32(g.a.NormEps)))
}

// affine is x*scale + shift with per-column (D) scale and shift.
func (g *graph) affine(name, x, scale, shift string) string {
	d := g.a.Dim
	x = g.op("Mul", name+".scale", []string{x, g.weight(scale, d)})
	return g.op("Add", name+".shift", []string{x, g.weight(shift, d)})
}

// mixHeads is MiniViT's head mixing dst_i = Σ_j m[i,j] src_j on x (B, h, T, T):
// (h, h) x (B, h, T*T) -> (B, h, T*T).
func (g *graph) mixHeads(name, x, weight string, h int) string {
	t := g.a.Tokens()
	x = g.op("Reshape", name+".flat", []string{x, g.shape(-1, h, t*t)})
	x = g.op("MatMul", name, []string{g.weight(weight, h, h), x})
	return g.op("Reshape", name+".unflat", []string{x, g.shape(-1, h, t, t)})
}

// gelu is GELU's tanh approximation from elementary ops (opset 17 has no Gelu).
func (g *graph) gelu(name, x string) string {
	x3 := g.op("Mul", name+".x2", []string{x, x})
	x3 = g.op("Mul", name+".x3", []string{x3, x})
	u := g.op("Mul", name+".ax3", []string{x3, g.scalar("const.gelu_a", geluA)})
	u = g.op("Add", name+".inner", []string{x, u})
	u = g.op("Mul", name+".scaled", []string{u, g.scalar("const.gelu_c", geluC)})
	u = g.op("Tanh", name+".tanh", []string{u})
	u = g.op("Add", name+".one_plus", []string{u, g.scalar("const.one", 1)})
	hx := g.op("Mul", name+".half_x", []string{x, g.scalar("const.half", 0.5)})
	return g.op("Mul", name, []string{hx, u})
}

// op adds a node with one output named name and returns that name.
func (g *graph) op(opType, name string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	g.define(name)
	g.nodes = append(g.nodes, &onnxpb.NodeProto{
		OpType: proto.String(opType), Name: proto.String(name),
		Input: inputs, Output: []string{name}, Attribute: attrs,
	})
	return name
}

// define records a new value name; names are fixed by this package, so a clash is a bug.
func (g *graph) define(name string) {
	if g.values[name] {
		panic("onnx: value " + name + " defined twice")
	}
	g.values[name] = true
}

// addInit defines an initializer name and reports whether it is new (and must be added).
func (g *graph) addInit(name string) bool {
	if g.initNames[name] {
		return false
	}
	g.define(name)
	g.initNames[name] = true
	return true
}

// weight is the whole stored tensor name, which must have the given shape.
func (g *graph) weight(name string, shape ...int) string {
	return g.slice(name, shape, shape[0], product(shape[1:]), nil, nil)
}

// weightAs is the whole stored tensor name of shape stored, as an initializer of another
// shape with the same row-major values.
func (g *graph) weightAs(name string, stored []int, shape ...int) string {
	if g.initNames[name] {
		return name
	}
	vals, ok := g.get(name, stored)
	if !ok || !g.addInit(name) {
		return name
	}
	g.inits = append(g.inits, floatTensor(name, shape, vals))
	return name
}

// slice adds initializer name holding rows x cols values of the stored tensor name (shape
// stored, 1-D or 2-D): element (r, c) is stored element (row(r), col(c)), identity maps by
// default, so leading slices need no maps. A 1-D slice has cols 1. The initializer keeps
// the checkpoint's name: a graph reads each stored tensor through one slice only (a
// subnet runs each stored layer once; an expanded model runs its layers whole), so a name
// added before is returned as it is, which is how shared layers are stored once.
func (g *graph) slice(name string, stored []int, rows, cols int, row, col func(int) int) string {
	if g.initNames[name] {
		return name
	}
	vals, ok := g.get(name, stored)
	if !ok {
		return name
	}
	shape := []int{rows, cols}
	scols := 1
	if len(stored) == 1 {
		shape = []int{rows}
	} else {
		scols = stored[1]
	}
	if !slices.Equal(shape, stored) || row != nil || col != nil {
		if row == nil {
			row = func(r int) int { return r }
		}
		if col == nil {
			col = func(c int) int { return c }
		}
		out := make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				out[r*cols+c] = vals[row(r)*scols+col(c)]
			}
		}
		vals = out
	}
	if !g.addInit(name) {
		return name
	}
	g.inits = append(g.inits, floatTensor(name, shape, vals))
	return name
}

// get returns the values of the stored tensor name after checking its shape; a missing or
// mis-shaped tensor sets the graph's error.
func (g *graph) get(name string, shape []int) ([]float32, bool) {
	if g.err != nil {
		return nil, false
	}
	t := g.p.Get(name)
	if t == nil {
		g.err = fmt.Errorf("%w: %w: tensor %q is missing", ErrExport, supernet.ErrParams, name)
		return nil, false
	}
	if !slices.Equal([]int(t.Shape()), shape) {
		g.err = fmt.Errorf("%w: %w: tensor %q has shape %v, the architecture needs %v", ErrExport, supernet.ErrParams, name, t.Shape(), shape)
		return nil, false
	}
	return g.p.Float32(name), true
}

// shape is an int64 shape constant for Reshape (-1 for the batch-dependent axis).
func (g *graph) shape(dims ...int) string {
	parts := make([]string, len(dims))
	for i, v := range dims {
		parts[i] = strconv.Itoa(v)
	}
	return g.ints("const.shape_"+strings.ReplaceAll(strings.Join(parts, "x"), "-1", "N"), dims...)
}

// ints is a 1-D int64 constant initializer, added once.
func (g *graph) ints(name string, vals ...int) string {
	if g.addInit(name) {
		g.inits = append(g.inits, &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(vals))},
			DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: int64s(vals)})
	}
	return name
}

// index is a scalar int64 constant, for Gather to drop the gathered axis.
func (g *graph) index(i int64) string {
	name := "const.index_" + strconv.FormatInt(i, 10)
	if g.addInit(name) {
		g.inits = append(g.inits, &onnxpb.TensorProto{Name: proto.String(name),
			DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{i}})
	}
	return name
}

// scalar is a float32 scalar constant, added once under name.
func (g *graph) scalar(name string, v float64) string {
	if g.addInit(name) {
		g.inits = append(g.inits, floatTensor(name, nil, []float32{float32(v)}))
	}
	return name
}

// floatTensor is a float32 initializer with little-endian raw data.
func floatTensor(name string, shape []int, vals []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	dims := make([]int64, len(shape))
	for i, s := range shape {
		dims[i] = int64(s)
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

// valueInfo declares a float32 graph input or output whose first axis is the symbolic batch.
func valueInfo(name, batch string, dims ...int) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
		{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: batch}}}}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{
			Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape}}}}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, vs ...int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: int64s(vs)}
}

func int64s(xs []int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func product(xs []int) int {
	n := 1
	for _, x := range xs {
		n *= x
	}
	return n
}
