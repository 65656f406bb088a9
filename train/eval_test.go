package train

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// tinyArch is a 2-layer ViT on 4x4 images (5 tokens of width 8), cheap enough for huge batches.
func tinyArch() arch.Arch {
	a := arch.Default()
	a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth = 4, 4, 2, 2
	a.Dim, a.HeadDim = 8, 4
	a.Layers = arch.Uniform(2, arch.Layer{Heads: 2, MLP: 16})
	return a
}

// splitBatcher serves a split of n examples as one padded batch of batch examples (as
// data.Loader does when batch >= n), allocated once.
type splitBatcher struct {
	b data.Batch
}

func newSplitBatcher(a arch.Arch, n, batch int) *splitBatcher {
	size := a.InChannels * a.InHeight * a.InWidth
	s := &splitBatcher{b: data.Batch{X: make([]float32, batch*size), Labels: make([]int, batch), Size: n}}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range batch {
		s.b.Labels[i] = -1
		if i < n {
			s.b.Labels[i] = r.IntN(a.Classes)
			for j := range size {
				s.b.X[i*size+j] = float32(r.NormFloat64())
			}
		}
	}
	return s
}

func (s *splitBatcher) BatchesPerEpoch() int { return 1 }

func (s *splitBatcher) Batch(_, _ int, dst *data.Batch) { *dst = s.b }

func tinyParams(t *testing.T, a arch.Arch) *supernet.Params {
	t.Helper()
	p, err := supernet.NewParams(a, tensor.Float32, 7)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// allocated returns the bytes f allocates (runtime.MemStats.TotalAlloc counts every
// allocation, whatever the garbage collector does).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestEvalGraphCappedAtSplit: a batch far larger than the split builds graphs for the
// split, not the batch (it once built them for the batch: `ofa eval --batch 10000000` ran
// out of memory on 1,000 examples).
func TestEvalGraphCappedAtSplit(t *testing.T) {
	a := tinyArch()
	p := tinyParams(t, a)
	const n, batch = 37, 20000
	d := newSplitBatcher(a, n, batch)
	ev := NewEvaluator(a, p, nn.Fused{}, d, batch)
	defer ev.Close()
	if _, _, err := ev.Evaluate(arch.Largest(a)); err != nil {
		t.Fatal(err)
	}
	if got := ev.GraphBatch(); got != n {
		t.Fatalf("graphs built for %d examples, want the split's %d", got, n)
	}
	// the same through Evaluate, measured: graphs for 20,000 examples would allocate
	// 20,000 x EvalBytesPerExample (about 145 MB); for 37 they take a few MB with the graph
	var res []SubnetEval
	bytes := allocated(func() {
		var err error
		if res, err = Evaluate(a, p, nn.Fused{}, d, batch, []Named{{"largest", arch.Largest(a)}}); err != nil {
			t.Fatal(err)
		}
	})
	if res[0].Examples != n {
		t.Fatalf("%d examples evaluated, want %d", res[0].Examples, n)
	}
	if limit := uint64(8 << 20); bytes > limit {
		t.Fatalf("evaluating %d examples with batch %d allocated %d bytes, want at most %d", n, batch, bytes, limit)
	}
}

// TestCheckEvalBatch: batches over the memory budget are refused naming the key and the
// limit; train.Config refuses them once the architecture is known.
func TestCheckEvalBatch(t *testing.T) {
	a := arch.Default()
	limit := MaxEvalBatch(a)
	if want := int(EvalMemoryBudget / EvalBytesPerExample(a)); limit != want || limit < 1000 || limit > 10000 {
		t.Fatalf("MaxEvalBatch(reference) = %d, want %d, in 1000..10000", limit, want)
	}
	for _, c := range []struct {
		batch int
		key   string
		ok    bool
	}{
		{250, "train.eval_batch", true},
		{limit, "--batch", true},
		{limit + 1, "--batch", false},
		{65536, "train.eval_batch", false},
		{10000000, "--batch", false},
		{0, "--batch", false},
	} {
		err := CheckEvalBatch(a, c.batch, c.key)
		if c.ok {
			if err != nil {
				t.Errorf("batch %d: %v", c.batch, err)
			}
			continue
		}
		if !errors.Is(err, ErrEvalBatch) || !strings.Contains(err.Error(), c.key+": got ") ||
			!strings.Contains(err.Error(), "want 1.."+strconv.Itoa(limit)) {
			t.Errorf("batch %d: error %v, want ErrEvalBatch naming %s and the limit %d", c.batch, err, c.key, limit)
		}
	}

	cfg := Default()
	if err := cfg.ValidateFor("train", a); err != nil {
		t.Fatal(err)
	}
	cfg.EvalBatch = limit + 1
	if err := cfg.Validate("train"); err != nil {
		t.Fatalf("Validate without the architecture: %v", err)
	}
	if err := cfg.ValidateFor("train", a); !errors.Is(err, ErrConfig) || !errors.Is(err, ErrEvalBatch) || !strings.Contains(err.Error(), "train.eval_batch") {
		t.Fatalf("ValidateFor: error %v, want ErrConfig and ErrEvalBatch naming train.eval_batch", err)
	}
	cfg.EvalBatch = 65536
	if err := cfg.Validate("train"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "train.eval_batch") {
		t.Fatalf("Validate: error %v, want ErrConfig naming train.eval_batch", err)
	}

	// the evaluator itself refuses graphs over the budget (with a batch the caller did not check)
	huge := arch.Default()
	huge.InHeight, huge.InWidth, huge.PatchHeight, huge.PatchWidth = 224, 224, 4, 4 // 3,137 tokens
	if MaxEvalBatch(huge) >= 16 {
		t.Fatalf("MaxEvalBatch(%d tokens) = %d, want < 16", huge.Tokens(), MaxEvalBatch(huge))
	}
	ev := newEvaluator(huge, nil, nn.Fused{}, newSplitBatcher(huge, 16, 16), 16, 1)
	if _, _, _, err := ev.evaluate("largest", arch.Largest(huge)); !errors.Is(err, ErrEvalBatch) || !strings.Contains(err.Error(), "largest") {
		t.Fatalf("error %v, want ErrEvalBatch naming the subnet", err)
	}
}

// TestEvalBytesPerExampleMeasured: the estimate covers the measured allocation per extra
// example (the difference between two batch sizes, so fixed costs cancel) and exceeds it by
// less than half, for a dense and for an expanded model with every transform.
func TestEvalBytesPerExampleMeasured(t *testing.T) {
	dense := arch.Default()
	dense.Layers = arch.Uniform(2, arch.Layer{Heads: 4, MLP: 256})
	expanded := dense.Clone()
	for i := range 4 {
		expanded.Positions = append(expanded.Positions, arch.Position{Layer: i / 2, Affine: true, LowRank: 4, HeadMix: true})
	}
	for _, a := range []arch.Arch{dense, expanded} {
		p := tinyParams(t, a)
		measure := func(batch int) uint64 {
			d := newSplitBatcher(a, batch, batch)
			return allocated(func() {
				if _, err := Evaluate(a, p, nn.Fused{}, d, batch, []Named{{"largest", arch.Largest(a)}}); err != nil {
					t.Fatal(err)
				}
			})
		}
		const b1, b2 = 16, 80
		per := float64(measure(b2)-measure(b1)) / (b2 - b1)
		est := float64(EvalBytesPerExample(a))
		if est < per || est > 1.5*per {
			t.Errorf("expanded %v: estimate %.0f bytes per example, measured %.0f; want within [1, 1.5] times", a.Expanded(), est, per)
		}
	}
}

// TestEvaluateNonFinite: finite weights whose logits overflow make evaluation fail with
// ErrNonFinite naming the subnet (it once reported "loss NaN" and succeeded).
func TestEvaluateNonFinite(t *testing.T) {
	a := tinyArch()
	p := tinyParams(t, a)
	w := p.Get("head.weight").Data().([]float32)
	for i := range w {
		w[i] = 3e38 * float32(1-2*(i%2))
	}
	d := newSplitBatcher(a, 10, 10)
	s := arch.Largest(a)
	res, err := Evaluate(a, p, nn.Fused{}, d, 10, []Named{{"largest", s}})
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "largest ("+s.Key()+")") {
		t.Fatalf("Evaluate: results %+v, error %v; want ErrNonFinite naming the subnet", res, err)
	}
	ev := NewEvaluator(a, p, nn.Fused{}, d, 10)
	defer ev.Close()
	if _, _, err := ev.Evaluate(s); !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), s.Key()) {
		t.Fatalf("Evaluator.Evaluate: error %v, want ErrNonFinite naming the subnet", err)
	}
}
