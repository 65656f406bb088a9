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

// TestRunnerResize: a runner resized to a narrower subnet with the same layers computes
// the reference model of that subnet, as the evaluation's cached graphs do.
func TestRunnerResize(t *testing.T) {
	a := tinyArch()
	p := randomParams(t, a, tensor.Float32, 7)
	r, err := NewRunnerOn(a, p, arch.Largest(a), NewPatches(a, 2, tensor.Float32), nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := arch.Largest(a)
	for i := range s.Layers {
		s.Layers[i].Heads, s.Layers[i].MLP = 1, s.Layers[i].MLP/2
	}
	if err := r.Resize(s); err != nil {
		t.Fatal(err)
	}
	images := randomImages(a, 2, 9)
	z, err := r.Logits(images, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]float64, 2)
	for i := range got {
		for _, v := range z[i*a.Classes : (i+1)*a.Classes] {
			got[i] = append(got[i], float64(v))
		}
	}
	want := reference(a, p).forward(images, 2, s)
	assertClose(t, "resized runner", got, want, 1e-4)
	full := reference(a, p).forward(images, 2, arch.Largest(a))
	if got[0][0] == full[0][0] && got[1][1] == full[1][1] {
		t.Fatal("the resized runner computes the largest subnet still")
	}
}
