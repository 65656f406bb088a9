package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAdamWSameBitsAsFormula: AdamW.Step (four values at a time in assembly where the CPU
// allows, the rest in Go) gives the same bits as its formula written out here in float64,
// over several steps, with and without weight decay and a learning-rate scale, for
// lengths with and without a tail of fewer than four values.
func TestAdamWSameBitsAsFormula(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	sizes := []int{1, 3, 4, 7, 64, 257}
	decay := []bool{true, false, true, false, true, true}
	o := NewAdamW(sizes, decay, 0.9, 0.999, 1e-8, 0.05)
	o.LRScale = []float64{1, 0.5, 2, 1, 0.1, 1}
	params, grads := make([][]float32, len(sizes)), make([][]float32, len(sizes))
	want, wm, wv := make([][]float32, len(sizes)), make([][]float32, len(sizes)), make([][]float32, len(sizes))
	for i, n := range sizes {
		params[i], grads[i] = make([]float32, n), make([]float32, n)
		wm[i], wv[i] = make([]float32, n), make([]float32, n)
		for j := range params[i] {
			params[i][j] = float32(r.NormFloat64())
		}
		want[i] = append([]float32(nil), params[i]...)
	}
	b1, b2 := 0.9, 0.999 // variables: 1-b1 rounds as update's does, unlike the constant 1-0.9
	for step := 1; step <= 5; step++ {
		lr := 1e-3 * float64(step)
		for i := range grads {
			for j := range grads[i] {
				grads[i][j] = float32(r.NormFloat64() * 0.1)
			}
		}
		if err := o.Step(params, grads, lr); err != nil {
			t.Fatal(err)
		}
		c1, c2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
		for i := range want {
			l := lr * o.LRScale[i]
			shrink := 1.0
			if decay[i] {
				shrink = 1 - l*0.05
			}
			for j := range want[i] {
				g := float64(grads[i][j])
				m := b1*float64(wm[i][j]) + (1-b1)*g
				v := b2*float64(wv[i][j]) + (1-b2)*g*g
				wm[i][j], wv[i][j] = float32(m), float32(v)
				want[i][j] = float32(float64(want[i][j])*shrink - l*(m/c1)/(math.Sqrt(v/c2)+1e-8))
			}
		}
		for i := range want {
			for j := range want[i] {
				if math.Float32bits(params[i][j]) != math.Float32bits(want[i][j]) ||
					math.Float32bits(o.M[i][j]) != math.Float32bits(wm[i][j]) || math.Float32bits(o.V[i][j]) != math.Float32bits(wv[i][j]) {
					t.Fatalf("step %d, parameter %d value %d: p %v m %v v %v, want %v %v %v",
						step, i, j, params[i][j], o.M[i][j], o.V[i][j], want[i][j], wm[i][j], wv[i][j])
				}
			}
		}
	}
}
