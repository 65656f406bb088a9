package train

import (
	"fmt"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

var _ sampler.Sampler = Fixed(nil)

// BenchmarkTrainStepShards compares one shard (kernels use both cores) with two shards
// (one per core, kernels serial) on the largest subnet.
func BenchmarkTrainStepShards(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			benchSteps(b, n, func(a arch.Arch) sampler.Sampler { return Fixed{arch.Largest(a)} })
		})
	}
}

// BenchmarkTrainStepLargest: one training step of the reference ViT's largest subnet at batch 64.
func BenchmarkTrainStepLargest(b *testing.B) {
	benchSteps(b, Default().Shards, func(a arch.Arch) sampler.Sampler { return Fixed{arch.Largest(a)} })
}

// BenchmarkTrainStepSmallest: one training step of the smallest subnet (ofa bench --subnet
// smallest) at batch 64, sliced into a model of its own as ofa bench times it, and inside
// the whole supernet (ofa bench --in-supernet).
func BenchmarkTrainStepSmallest(b *testing.B) {
	b.Run("sliced", func(b *testing.B) {
		benchStepsOf(b, Default().Shards, smallestBenchSubnet(), func(a arch.Arch) sampler.Sampler { return Fixed{arch.Largest(a)} })
	})
	b.Run("in-supernet", func(b *testing.B) {
		benchSteps(b, Default().Shards, func(arch.Arch) sampler.Sampler { return Fixed{smallestBenchSubnet()} })
	})
}

// smallestBenchSubnet is ofa bench --subnet smallest on arch.Default: two layers, one head,
// MLP 64.
func smallestBenchSubnet() arch.Subnet {
	return arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 64}, {Layer: 1, Heads: 1, MLP: 64}}}
}

// BenchmarkTrainStepSandwich: a sandwich step (largest, smallest, two random subnets).
func BenchmarkTrainStepSandwich(b *testing.B) {
	benchSteps(b, Default().Shards, func(arch.Arch) sampler.Sampler {
		smp, err := sampler.New(sampler.Config{Kind: sampler.KindSandwich, Random: 2}, arch.DefaultSpace())
		if err != nil {
			b.Fatal(err)
		}
		return smp
	})
}

// benchSteps times training steps of the reference ViT on the embedded data with the
// subnets newSampler draws, reporting samples per second (examples of the batch, not
// counting each sampled subnet).
func benchSteps(b *testing.B, shards int, newSampler func(arch.Arch) sampler.Sampler) {
	benchStepsOf(b, shards, arch.Largest(arch.Default()), newSampler)
}

// benchStepsOf is benchSteps on the model subnet slice of the reference ViT makes
// (supernet.Slice).
func benchStepsOf(b *testing.B, shards int, slice arch.Subnet, newSampler func(arch.Arch) sampler.Sampler) {
	trainSet, _, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		b.Fatal(err)
	}
	a := arch.Default()
	p, _ := supernet.NewParams(a, tensor.Float32, 1)
	if a, p, err = supernet.Slice(a, p, slice); err != nil {
		b.Fatal(err)
	}
	cfg := Default()
	cfg.Shards = shards
	lc := data.DefaultLoaderConfig()
	lc.BatchSize, lc.DropLast = cfg.BatchSize, true
	tl, _ := data.NewLoader(trainSet, lc)
	tr, err := New(Setup{Arch: a, Params: p, Sampler: newSampler(a), Train: tl, Ops: nn.Fused{}, Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.TrainStep()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.TrainStep(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*cfg.BatchSize)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkInference: forward passes of the reference ViT at batch 256.
func BenchmarkInference(b *testing.B) { benchmarkInference(b, arch.Largest) }

// BenchmarkInferenceSmallest: forward passes of the smallest subnet at batch 256.
func BenchmarkInferenceSmallest(b *testing.B) {
	benchmarkInference(b, func(arch.Arch) arch.Subnet { return smallestBenchSubnet() })
}

func benchmarkInference(b *testing.B, subnet func(arch.Arch) arch.Subnet) {
	_, testSet, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		b.Fatal(err)
	}
	a := arch.Default()
	p, _ := supernet.NewParams(a, tensor.Float32, 1)
	l, _ := data.NewLoader(testSet.Head(256), data.LoaderConfig{BatchSize: 256, Mean: 0.3, Std: 0.35})
	ev := NewEvaluator(a, p, nn.Fused{}, l, 256)
	defer ev.Close()
	s := subnet(a)
	ev.Evaluate(s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ev.Evaluate(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "samples/s")
}
