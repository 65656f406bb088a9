package supernet

import (
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"gorgonia.org/tensor"
)

// TestRunnerMatchesReference: a Runner's logits are the plain-Go reference model's, for a
// full batch and for a short one (padding rows ignored), run twice on one graph.
func TestRunnerMatchesReference(t *testing.T) {
	a := tinyArch()
	p := randomParams(t, a, tensor.Float32, 5)
	s := arch.Largest(a)
	r, err := NewRunner(a, p, s, 3, nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, n := range []int{3, 2} {
		images := randomImages(a, n, uint64(n))
		z, err := r.Logits(images, n)
		if err != nil {
			t.Fatal(err)
		}
		got := make([][]float64, n)
		for i := range got {
			for _, v := range z[i*a.Classes : (i+1)*a.Classes] {
				got[i] = append(got[i], float64(v))
			}
		}
		assertClose(t, "runner", got, reference(a, p).forward(images, n, s), 1e-4)
	}
	if _, err := r.Logits(randomImages(a, 4, 1), 4); err == nil {
		t.Fatal("a runner of batch 3 accepted 4 examples")
	}
}
