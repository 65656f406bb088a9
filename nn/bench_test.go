package nn

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// benchKernel times forward+backward of one kernel at the reference ViT's shapes.
func benchKernel(b *testing.B, k kernel, shapes ...[]int) {
	c := opCase{shapes: shapes}
	in := c.inputs(tensor.Float32, 1)
	sh := make([]tensor.Shape, len(in))
	for i, t := range in {
		sh[i] = t.Shape()
	}
	os, err := k.outShape(sh)
	if err != nil {
		b.Fatal(err)
	}
	out := reuse(nil, os, tensor.Float32)
	dOut := reuse(nil, os, tensor.Float32)
	for i, v := range dOut.Data().([]float32) {
		dOut.Data().([]float32)[i] = v + 0.01
	}
	grads := make([]*tensor.Dense, len(in))
	for i, t := range in {
		grads[i] = reuse(nil, t.Shape(), tensor.Float32)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := k.forward(in, out); err != nil {
			b.Fatal(err)
		}
		if err := k.backward(in, out, dOut, grads); err != nil {
			b.Fatal(err)
		}
	}
}

const benchRows = 64 * 17 // batch 64, 17 tokens

func BenchmarkLinearQKV(b *testing.B) {
	benchKernel(b, &linearKernel{s: &LinearSpec{Groups: 3, Out: 64, In: 64}, hasBias: true}, []int{benchRows, 64}, []int{192, 64}, []int{192})
}
func BenchmarkLinearFC1(b *testing.B) {
	benchKernel(b, &linearKernel{s: &LinearSpec{Out: 256, In: 64}, hasBias: true}, []int{benchRows, 64}, []int{256, 64}, []int{256})
}
func BenchmarkLinearFC2(b *testing.B) {
	benchKernel(b, &linearKernel{s: &LinearSpec{Out: 64, In: 256}, hasBias: true}, []int{benchRows, 256}, []int{64, 256}, []int{64})
}
func BenchmarkAttention(b *testing.B) {
	benchKernel(b, &attentionKernel{s: &AttentionSpec{Tokens: 17, Heads: 4, HeadDim: 16}}, []int{benchRows, 192})
}
func BenchmarkGELU(b *testing.B) {
	benchKernel(b, geluKernel{}, []int{benchRows, 256})
}

// BenchmarkGELUTable is BenchmarkGELU by table interpolation (the path without the
// kernel), the baseline for the AVX2 kernel.
func BenchmarkGELUTable(b *testing.B) {
	x, dy, out := make([]float32, benchRows*256), make([]float32, benchRows*256), make([]float32, benchRows*256)
	for i := range x {
		x[i], dy[i] = float32(i%997)/100-5, 1
	}
	for i := 0; i < b.N; i++ {
		geluTableForward(0, x, out)
		geluTableBackward(0, x, dy, out)
	}
}
func BenchmarkLayerNorm(b *testing.B) {
	benchKernel(b, &layerNormKernel{eps: 1e-6}, []int{benchRows, 64}, []int{64}, []int{64})
}

// refCases are the reference ViT's operations at batch 64 (17 tokens, dim 64, 4 heads of
// 16, MLP 256), run through whole gorgonia graphs (forward and backward) so fused and
// composed versions are timed the same way.
func refCases() []opCase {
	rows := benchRows
	return []opCase{
		{name: "linear_qkv", shapes: [][]int{{rows, 64}, {192, 64}, {192}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) {
				return o.Linear(in[0], in[1], in[2], &LinearSpec{Groups: 3, Out: 64, In: 64})
			}},
		{name: "linear_fc1", shapes: [][]int{{rows, 64}, {256, 64}, {256}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) {
				return o.Linear(in[0], in[1], in[2], &LinearSpec{Out: 256, In: 64})
			}},
		{name: "layernorm", shapes: [][]int{{rows, 64}, {64}, {64}}, wrt: []int{0, 1, 2},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.LayerNorm(in[0], in[1], in[2], 1e-6) }},
		{name: "gelu", shapes: [][]int{{rows, 256}}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.GELU(in[0]) }},
		{name: "attention", shapes: [][]int{{rows, 192}}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) {
				return o.Attention(in[0], &AttentionSpec{Tokens: 17, Heads: 4, HeadDim: 16}, nil, nil)
			}},
		{name: "softce", shapes: [][]int{{64, 10}, {64, 10}}, oneHot: map[int]bool{1: true}, wrt: []int{0},
			build: func(o Ops, in []*G.Node) (*G.Node, error) { return o.SoftCrossEntropy(in[0], in[1], 1, 1) }},
	}
}

// BenchmarkOps times forward+backward graphs of each operation, fused vs composed.
func BenchmarkOps(b *testing.B) {
	for _, c := range refCases() {
		for _, impl := range []struct {
			name string
			ops  Ops
		}{{"fused", Fused{}}, {"composed", Composed{}}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				h := newHarnessLoss(b, impl.ops, c, c.inputs(tensor.Float32, 1), true, true)
				h.run(b)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					h.run(b)
				}
			})
		}
	}
}

// BenchmarkExp compares the softmax's float32 exponential with math.Exp on one row.
func BenchmarkExp(b *testing.B) {
	x := make([]float32, 1024)
	for i := range x {
		x[i] = -float32(i) * 0.01
	}
	y := make([]float32, 1024)
	b.Run("expShift32", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			expShift32(x, y, 0)
		}
	})
	b.Run("math.Exp", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var s float64
			for j, v := range x {
				e := math.Exp(float64(v))
				y[j] = float32(e)
				s += e
			}
		}
	})
}
