package train

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

func testArch() (arch.Arch, arch.Space) {
	a := arch.Default()
	a.Layers = arch.Uniform(2, arch.Layer{Heads: 4, MLP: 64})
	return a, arch.Space{HeadChoices: []int{2, 4}, MLPChoices: []int{32, 64}, DepthChoices: []int{1, 2}}
}

type fixture struct {
	a     arch.Arch
	sp    arch.Space
	train *data.Images
	test  *data.Images
	cfg   Config
	aug   data.Augment
	world cluster.World // nil: one process
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	tr, te, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	a, sp := testArch()
	cfg := Default()
	cfg.Epochs, cfg.BatchSize, cfg.WarmupSteps, cfg.EvalBatch = 1, 32, 5, 100
	return fixture{a: a, sp: sp, train: tr.Head(512), test: te.Head(200), cfg: cfg, aug: data.Augment{CropPad: 2, HFlip: true}}
}

func (f fixture) trainer(t testing.TB, p *supernet.Params) *Trainer {
	t.Helper()
	tr, err := New(f.setup(t, p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// setup is the fixture's trainer setup with weights p.
func (f fixture) setup(t testing.TB, p *supernet.Params) Setup {
	t.Helper()
	lc := data.DefaultLoaderConfig()
	lc.BatchSize, lc.DropLast, lc.Seed = f.cfg.BatchSize, true, f.cfg.Seed
	lc.Augment = f.aug
	tl, err := data.NewLoader(f.train, lc)
	if err != nil {
		t.Fatal(err)
	}
	ec := lc
	ec.Shuffle, ec.DropLast, ec.BatchSize, ec.Augment = false, false, f.cfg.EvalBatch, data.Augment{}
	el, err := data.NewLoader(f.test, ec)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := sampler.New(sampler.Config{Kind: "sandwich", Seed: 3, Random: 1}, f.sp)
	if err != nil {
		t.Fatal(err)
	}
	return Setup{Arch: f.a, Params: p, Sampler: smp, Train: tl, Eval: el, Ops: nn.Fused{}, Config: f.cfg, World: f.world,
		EvalSubnets: []Named{{"largest", f.sp.Largest()}, {"smallest", f.sp.Smallest()}}}
}

func (f fixture) params(t testing.TB) *supernet.Params {
	p, err := supernet.NewParams(f.a, tensor.Float32, 7)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func steps(t testing.TB, tr *Trainer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := tr.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
}

func sameBits(t *testing.T, what string, a, b *supernet.Params) {
	t.Helper()
	for _, name := range a.Names() {
		x, y := a.Get(name).Data().([]float32), b.Get(name).Data().([]float32)
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				t.Fatalf("%s: %s[%d] differs: %v vs %v", what, name, i, x[i], y[i])
			}
		}
	}
}

// TestDeterministic: the same seed and configuration give bit-identical weights.
func TestDeterministic(t *testing.T) {
	f := newFixture(t)
	p1, p2 := f.params(t), f.params(t)
	steps(t, f.trainer(t, p1), 8)
	steps(t, f.trainer(t, p2), 8)
	sameBits(t, "two runs", p1, p2)
	p3 := f.params(t)
	f.cfg.Seed = 99
	steps(t, f.trainer(t, p3), 8)
	if p3.Get("head.weight").Data().([]float32)[0] == p1.Get("head.weight").Data().([]float32)[0] {
		t.Fatal("a different data seed gave the same weights")
	}
}

// TestStopResume: N steps, save, load into a fresh trainer, M steps gives the weights of
// N+M steps in one go, bit for bit.
func TestStopResume(t *testing.T) {
	f := newFixture(t)
	const n, m = 5, 6
	straight := f.params(t)
	steps(t, f.trainer(t, straight), n+m)

	first := f.params(t)
	tr := f.trainer(t, first)
	steps(t, tr, n)
	path := filepath.Join(t.TempDir(), "resume.safetensors")
	model := &modelfile.Model{Kind: modelfile.KindSupernet, Arch: f.a, Space: &f.sp, Params: tr.Params(),
		Preprocess: modelfile.Preprocess{Mean: data.FashionMNISTMean, Std: data.FashionMNISTStd}}
	st := tr.State()
	if err := modelfile.SaveResume(path, &modelfile.Resume{Model: model, Step: st.Step, OptimT: st.OptimT, M: st.M, V: st.V,
		RunConfig: `{"note":"test"}`}); err != nil {
		t.Fatal(err)
	}
	r, err := modelfile.LoadResume(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Step != n || r.RunConfig != `{"note":"test"}` {
		t.Fatalf("resume step %d config %q", r.Step, r.RunConfig)
	}
	tr2 := f.trainer(t, r.Model.Params)
	if err := tr2.Restore(State{Step: r.Step, OptimT: r.OptimT, M: r.M, V: r.V}); err != nil {
		t.Fatal(err)
	}
	steps(t, tr2, m)
	sameBits(t, "resumed", straight, r.Model.Params)
}

// TestNonFiniteLossStops: when the loss overflows, the step stops with ErrNonFinite naming
// the step, and the weights stay those before the failing step.
func TestNonFiniteLossStops(t *testing.T) {
	f := newFixture(t)
	p := f.params(t)
	tr := f.trainer(t, p)
	steps(t, tr, 2)
	// classifier weights near float32's maximum make the logits overflow
	w := p.Get("head.weight").Data().([]float32)
	for i := range w {
		w[i] = 3e38 * float32(1-2*(i%2))
	}
	before := p.Clone()
	_, err := tr.TrainStep()
	if tr.Step() != 2 {
		t.Fatalf("step counter moved to %d", tr.Step())
	}
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "at step") {
		t.Fatalf("error %v, want ErrNonFinite naming the step", err)
	}
	sameBits(t, "weights after the failed step", before, p)
}

// TestLearns: 512 examples and 96 steps lift test accuracy to several times chance (a
// ViT learns slowly at first; the documented full runs measure real accuracy).
func TestLearns(t *testing.T) {
	f := newFixture(t)
	f.cfg.Epochs = 6
	f.cfg.LR = 2e-3
	f.aug = data.Augment{}
	tr := f.trainer(t, f.params(t))
	var last EvalStats
	hook := evalCapture{fn: func(e EvalStats) { last = e }}
	if err := tr.Run(context.Background(), hook); err != nil {
		t.Fatal(err)
	}
	if len(last.Subnets) != 2 {
		t.Fatalf("eval results: %+v", last)
	}
	for _, s := range last.Subnets {
		t.Logf("%s: accuracy %.3f loss %.3f", s.Name, s.Accuracy, s.Loss)
		if s.Accuracy < 0.3 {
			t.Errorf("%s reached %.3f test accuracy, want > 0.3 (chance is 0.10)", s.Name, s.Accuracy)
		}
	}
}

type evalCapture struct{ fn func(EvalStats) }

func (evalCapture) OnStep(*Trainer, StepStats) error       { return nil }
func (h evalCapture) OnEval(_ *Trainer, e EvalStats) error { h.fn(e); return nil }

// TestInterrupt: a cancelled context stops the run after the current step, calling the
// hooks' OnInterrupt first.
func TestInterrupt(t *testing.T) {
	f := newFixture(t)
	tr := f.trainer(t, f.params(t))
	ctx, cancel := context.WithCancel(context.Background())
	h := &interruptHook{cancelAt: 3, cancel: cancel}
	err := tr.Run(ctx, h)
	if !errors.Is(err, ErrInterrupted) || tr.Step() != 3 || h.savedAt != 3 {
		t.Fatalf("err %v, step %d, interrupt hook at %d", err, tr.Step(), h.savedAt)
	}
}

type interruptHook struct {
	cancelAt int
	cancel   func()
	savedAt  int
}

func (h *interruptHook) OnStep(_ *Trainer, s StepStats) error {
	if s.Step == h.cancelAt {
		h.cancel()
	}
	return nil
}
func (h *interruptHook) OnEval(*Trainer, EvalStats) error { return nil }
func (h *interruptHook) OnInterrupt(t *Trainer) error     { h.savedAt = t.Step(); return nil }

// TestAdamWHandComputed checks one and two updates against values computed by hand from
// the AdamW formulas (PyTorch's torch.optim.AdamW conventions).
func TestAdamWHandComputed(t *testing.T) {
	o := NewAdamW([]int{2, 1}, []bool{true, false}, 0.9, 0.999, 1e-8, 0.1)
	p := [][]float32{{1, -2}, {0.5}}
	g := [][]float32{{0.1, -0.3}, {2}}
	if err := o.Step(p, g, 0.01); err != nil {
		t.Fatal(err)
	}
	// step 1: m̂ = g, v̂ = g², update = lr·g/(|g|+eps) ≈ lr·sign(g); decay p·(1-lr·wd) first
	want := []float64{1*(1-0.001) - 0.01*0.1/(0.1+1e-8), -2*(1-0.001) + 0.01*0.3/(0.3+1e-8), 0.5 - 0.01*2/(2+1e-8)}
	got := []float32{p[0][0], p[0][1], p[1][0]}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			t.Fatalf("step 1 value %d: got %.8f, want %.8f", i, got[i], want[i])
		}
	}
	// step 2 with gradient 0 for the first value: m = 0.9*0.1*0.1... compute explicitly
	g2 := [][]float32{{0, 0}, {0}}
	p1 := float64(p[0][0])
	if err := o.Step(p, g2, 0.01); err != nil {
		t.Fatal(err)
	}
	m := 0.9 * (0.1 * 0.1)                           // β1·m1, m1 = (1-β1)·g
	v := 0.999 * (0.001 * 0.01)                      // β2·v1, v1 = (1-β2)·g²
	mh, vh := m/(1-0.9*0.9), v/(1-0.999*0.999)       // bias corrections
	w := p1*(1-0.001) - 0.01*mh/(math.Sqrt(vh)+1e-8) // decay then step
	if math.Abs(float64(p[0][0])-w) > 1e-6 {
		t.Fatalf("step 2: got %.8f, want %.8f", p[0][0], w)
	}
}

// TestClipGlobalNorm scales all gradients together.
func TestClipGlobalNorm(t *testing.T) {
	g := [][]float32{{3}, {4}}
	if n := ClipGlobalNorm(g, 1); n != 5 {
		t.Fatalf("norm %v, want 5", n)
	}
	if math.Abs(float64(g[0][0])-0.6) > 1e-7 || math.Abs(float64(g[1][0])-0.8) > 1e-7 {
		t.Fatalf("clipped to %v", g)
	}
}

// TestSchedule: warmup is linear, then cosine from peak to min.
func TestSchedule(t *testing.T) {
	s := Schedule{Peak: 1, Min: 0.1, Warmup: 4, Total: 14}
	for _, c := range []struct {
		step int
		want float64
	}{{0, 0.25}, {3, 1}, {4, 1}, {9, 0.55}, {14, 0.1}, {100, 0.1}} {
		if got := s.At(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("At(%d) = %v, want %v", c.step, got, c.want)
		}
	}
}

// TestConfigValidate names the key.
func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.LR = -1 }, "train.lr"},
		{func(c *Config) { c.BatchSize = 0 }, "train.batch_size"},
		{func(c *Config) { c.Alpha = 2 }, "train.alpha"},
		{func(c *Config) { c.Epochs, c.Steps = 0, 0 }, "train.epochs"},
		{func(c *Config) { c.MinLR = 1 }, "train.min_lr"},
	} {
		cfg := Default()
		c.mut(&cfg)
		if err := cfg.Validate("train"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to name %s", err, c.want)
		}
	}
	if err := Default().Validate("finetune"); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsLines: every metrics line is JSON with its type, step and epoch.
func TestMetricsLines(t *testing.T) {
	f := newFixture(t)
	f.cfg.Steps = 16
	tr := f.trainer(t, f.params(t))
	path := filepath.Join(t.TempDir(), "m.jsonl")
	h, err := NewMetricsHook(path, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	h.Close()
	b, _ := os.ReadFile(path)
	types := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Type  string   `json:"type"`
			Step  *int     `json:"step"`
			Epoch *float64 `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Step == nil || r.Epoch == nil {
			t.Fatalf("line %q: %v", line, err)
		}
		types[r.Type]++
	}
	if types["step"] != 4 || types["eval"] != 1 {
		t.Fatalf("record types %v", types)
	}
}

// TestTeacherMustMatch: a teacher with other classes or another input is refused.
func TestTeacherMustMatch(t *testing.T) {
	f := newFixture(t)
	for _, mut := range []func(*arch.Arch){
		func(a *arch.Arch) { a.Classes = 3 },
		func(a *arch.Arch) { a.InHeight, a.InWidth = 35, 35 },
	} {
		ta := f.a.Clone()
		mut(&ta)
		tp, err := supernet.NewParams(ta, tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := data.NewLoader(f.train, data.LoaderConfig{BatchSize: 32, DropLast: true, Mean: 0.3, Std: 0.35})
		_, err = New(Setup{Arch: f.a, Params: f.params(t), Sampler: Fixed{arch.Largest(f.a)}, Train: l, Ops: nn.Fused{}, Config: f.cfg,
			Teacher: &Teacher{Arch: ta, Params: tp, Subnet: arch.Largest(ta)}})
		if err == nil || !strings.Contains(err.Error(), "teacher") {
			t.Fatalf("mismatched teacher accepted: %v", err)
		}
	}
}

// TestFinetuneWithTeacher: a student distils from an external teacher and improves.
func TestFinetuneWithTeacher(t *testing.T) {
	f := newFixture(t)
	f.cfg.Epochs, f.cfg.Alpha, f.cfg.Temperature = 3, 0.5, 2
	teacher := f.params(t)
	tt := f.trainer(t, teacher)
	steps(t, tt, 40)
	student := f.a.Clone()
	student.Layers = []arch.Layer{{Heads: 2, MLP: 32}}
	sp, _ := supernet.NewParams(student, tensor.Float32, 4)
	l, _ := data.NewLoader(f.train, data.LoaderConfig{BatchSize: 32, Shuffle: true, DropLast: true, Mean: 0.3, Std: 0.35})
	tr, err := New(Setup{Arch: student, Params: sp, Sampler: Fixed{arch.Largest(student)}, Train: l, Ops: nn.Fused{}, Config: f.cfg,
		Teacher: &Teacher{Arch: f.a, Params: teacher, Subnet: arch.Largest(f.a)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	first, err := tr.TrainStep()
	if err != nil {
		t.Fatal(err)
	}
	var last StepStats
	for i := 0; i < 30; i++ {
		if last, err = tr.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
	if !(last.Loss < first.Loss) {
		t.Fatalf("distillation loss did not fall: %.4f -> %.4f", first.Loss, last.Loss)
	}
}

// TestTransformLRScale: transform_lr_scale moves an expanded model's feature transforms
// that many times as far in a step (AdamW's first step is about lr·sign(g)) and leaves
// every other weight exactly where the unscaled run puts it; out-of-range scales are
// refused naming the key.
func TestTransformLRScale(t *testing.T) {
	f := newFixture(t)
	a := f.a.Clone()
	a.Positions = []arch.Position{{Layer: 0}, {Layer: 0, Affine: true, LowRank: 2, HeadMix: true}, {Layer: 1}}
	init, err := supernet.NewParams(a, tensor.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	run := func(scale float64) *supernet.Params {
		p := init.Clone()
		cfg := f.cfg
		cfg.ClipNorm, cfg.TransformLRScale = 0, scale
		l, _ := data.NewLoader(f.train, data.LoaderConfig{BatchSize: 32, Shuffle: true, DropLast: true, Mean: 0.3, Std: 0.35})
		tr, err := New(Setup{Arch: a, Params: p, Sampler: Fixed{arch.Largest(a)}, Train: l, Ops: nn.Fused{}, Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		steps(t, tr, 1)
		return p
	}
	plain, scaled := run(1), run(4)
	transforms, moved := 0, 0
	for _, name := range init.Names() {
		x0, x1, x4 := init.Get(name).Data().([]float32), plain.Get(name).Data().([]float32), scaled.Get(name).Data().([]float32)
		if !strings.HasPrefix(name, "positions.1.") || strings.Contains(name, "norm") {
			for i := range x1 {
				if math.Float32bits(x1[i]) != math.Float32bits(x4[i]) {
					t.Fatalf("%s[%d] is not a transform but moved differently: %v vs %v", name, i, x1[i], x4[i])
				}
			}
			continue
		}
		transforms++
		for i := range x1 {
			d1, d4 := float64(x1[i]-x0[i]), float64(x4[i]-x0[i])
			if math.Abs(d4-4*d1) > 1e-5+1e-3*math.Abs(d4) {
				t.Fatalf("%s[%d]: moved %g with scale 4, %g with scale 1", name, i, d4, d1)
			}
			if d1 != 0 {
				moved++
			}
		}
	}
	if transforms != 10 || moved == 0 {
		t.Fatalf("%d transform tensors (want 10), %d values moved", transforms, moved)
	}
	for _, bad := range []float64{0, -1, 1001, math.NaN()} {
		cfg := Default()
		cfg.TransformLRScale = bad
		if err := cfg.Validate("finetune"); err == nil || !strings.Contains(err.Error(), "finetune.transform_lr_scale") {
			t.Errorf("scale %v: %v, want an error naming finetune.transform_lr_scale", bad, err)
		}
	}
}

// TestHiddenDistill: with hidden_distill a student equal to its teacher has a zero hidden
// term (the first step's loss is bit for bit the logits-only loss, so the teacher's hidden
// states reach the targets); a different student pays a positive hidden term and its
// gradient moves the weights; the uniform position map sends the last position to the
// teacher's last block; and the option without an external teacher is refused.
func TestHiddenDistill(t *testing.T) {
	f := newFixture(t)
	f.cfg.Alpha, f.cfg.Temperature = 0.5, 1
	teacher := f.params(t)
	run := func(student *supernet.Params, a arch.Arch, hidden float64) (StepStats, *supernet.Params) {
		cfg := f.cfg
		cfg.HiddenDistill = hidden
		p := student.Clone()
		l, _ := data.NewLoader(f.train, data.LoaderConfig{BatchSize: 32, Shuffle: true, DropLast: true, Mean: 0.3, Std: 0.35})
		tr, err := New(Setup{Arch: a, Params: p, Sampler: Fixed{arch.Largest(a)}, Train: l, Ops: nn.Fused{}, Config: cfg,
			Teacher: &Teacher{Arch: f.a, Params: teacher, Subnet: arch.Largest(f.a)}})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		st, err := tr.TrainStep()
		if err != nil {
			t.Fatal(err)
		}
		return st, p
	}
	same0, _ := run(teacher, f.a, 0)
	same5, _ := run(teacher, f.a, 5)
	if math.Float64bits(same0.Loss) != math.Float64bits(same5.Loss) {
		t.Fatalf("a student equal to its teacher: loss %v with hidden distillation, %v without", same5.Loss, same0.Loss)
	}
	student := f.a.Clone()
	student.Layers = student.Layers[:1]
	sp, _ := supernet.NewParams(student, tensor.Float32, 4)
	other0, p0 := run(sp, student, 0)
	other5, p5 := run(sp, student, 5)
	if !(other5.Loss > other0.Loss) {
		t.Fatalf("a 1-layer student: loss %v with hidden distillation, %v without", other5.Loss, other0.Loss)
	}
	moved := false
	for _, name := range p0.Names() {
		a, b := p0.Get(name).Float32s(), p5.Get(name).Float32s()
		for i := range a {
			moved = moved || a[i] != b[i]
		}
	}
	if !moved {
		t.Fatal("hidden distillation changed no weight")
	}
	for _, c := range [][4]int{{0, 1, 4, 3}, {0, 2, 4, 1}, {1, 2, 4, 3}, {0, 8, 4, 0}, {1, 8, 4, 0}, {2, 8, 4, 1}, {7, 8, 4, 3}, {0, 3, 4, 1}, {2, 3, 4, 3}} {
		if got := HiddenTarget(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("HiddenTarget(%d, %d, %d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
	cfg := f.cfg
	cfg.HiddenDistill = 1
	l, _ := data.NewLoader(f.train, data.LoaderConfig{BatchSize: 32, DropLast: true, Mean: 0.3, Std: 0.35})
	if _, err := New(Setup{Arch: f.a, Params: f.params(t), Sampler: Fixed{arch.Largest(f.a)}, Train: l, Ops: nn.Fused{}, Config: cfg}); err == nil ||
		!strings.Contains(err.Error(), "hidden_distill") {
		t.Fatalf("hidden distillation without a teacher: %v", err)
	}
}
