package train

import (
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// BenchmarkBuildTrainGraph: building and compiling one subnet's training graph.
func BenchmarkBuildTrainGraph(b *testing.B) {
	a := arch.Default()
	p, _ := supernet.NewParams(a, tensor.Float32, 1)
	in := graphInputs{
		patches: supernet.NewPatches(a, 64, tensor.Float32),
		labels:  tensor.New(tensor.WithShape(64, 10), tensor.Of(tensor.Float32)),
		soft:    tensor.New(tensor.WithShape(64, 10), tensor.Of(tensor.Float32)),
	}
	c := newGraphCache(a, p, nn.Fused{}, in, lossSpec{temperature: 1, alpha: 1}, 1)
	for i := 0; i < b.N; i++ {
		g, err := c.build(arch.Largest(a), roleStudent)
		if err != nil {
			b.Fatal(err)
		}
		g.vm.Close()
	}
}
