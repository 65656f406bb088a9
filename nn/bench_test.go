package nn

import (
	"testing"

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
func BenchmarkLayerNorm(b *testing.B) {
	benchKernel(b, &layerNormKernel{eps: 1e-6}, []int{benchRows, 64}, []int{64}, []int{64})
}
