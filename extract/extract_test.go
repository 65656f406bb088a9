package extract

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gonum.org/v1/gonum/diff/fd"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func testArch() arch.Arch {
	a := arch.Default()
	a.Dim, a.HeadDim = 24, 6
	a.Layers = arch.Uniform(3, arch.Layer{Heads: 4, MLP: 20})
	return a
}

// randomParams perturbs every tensor so no unit is trivially unimportant.
func randomParams(t testing.TB, a arch.Arch, dt tensor.Dtype) *supernet.Params {
	p, err := supernet.NewParams(a, dt, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range p.Names() {
		w := p.Get(n)
		for i := 0; i < w.Shape().TotalSize(); i++ {
			supernet.SetAt(w, i, supernet.At(w, i)+0.2*r.NormFloat64())
		}
	}
	return p
}

func calib(t testing.TB, batch int) *data.Loader {
	tr, _, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	l, err := data.NewLoader(tr.Head(4*batch), data.LoaderConfig{BatchSize: batch, Mean: data.FashionMNISTMean, Std: data.FashionMNISTStd})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func forward64(t testing.TB, a arch.Arch, p *supernet.Params, s arch.Subnet, b data.Batch) []float64 {
	t.Helper()
	g := G.NewGraph()
	net, err := supernet.Build(g, a, p, s, supernet.NewPatches(a, len(b.Labels), p.Dtype()), nn.Fused{})
	if err != nil {
		t.Fatal(err)
	}
	if err := supernet.Patchify(a, b.X, b.Size, net.Patches); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	out := []float64{}
	switch z := net.Logits.Value().Data().(type) {
	case []float64:
		out = append(out, z...)
	case []float32:
		for _, v := range z {
			out = append(out, float64(v))
		}
	}
	return out
}

// TestReorderKeepsOutputs: permuting heads and neurons changes no output (float64).
func TestReorderKeepsOutputs(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float64)
	var b data.Batch
	calib(t, 8).Batch(0, 0, &b)
	before := forward64(t, a, p, arch.Largest(a), b)
	r := rand.New(rand.NewPCG(1, 2))
	o := Identity(a)
	for l := range o.Heads {
		r.Shuffle(len(o.Heads[l]), func(i, j int) { o.Heads[l][i], o.Heads[l][j] = o.Heads[l][j], o.Heads[l][i] })
		r.Shuffle(len(o.Neurons[l]), func(i, j int) { o.Neurons[l][i], o.Neurons[l][j] = o.Neurons[l][j], o.Neurons[l][i] })
	}
	q := p.Clone()
	if err := Reorder(a, q, o); err != nil {
		t.Fatal(err)
	}
	after := forward64(t, a, q, arch.Largest(a), b)
	for i := range before {
		if math.Abs(before[i]-after[i]) > 1e-12*(1+math.Abs(before[i])) {
			t.Fatalf("logit %d changed: %v -> %v", i, before[i], after[i])
		}
	}
	if same := q.Get("blocks.0.mlp.fc1.weight").Data().([]float64)[0] == p.Get("blocks.0.mlp.fc1.weight").Data().([]float64)[0]; same && o.Neurons[0][0] != 0 {
		t.Fatal("reordering moved nothing")
	}
	// the moments of an optimizer follow the same permutation
	m := map[string][]float32{"blocks.1.mlp.fc1.bias": make([]float32, 20)}
	for i := range m["blocks.1.mlp.fc1.bias"] {
		m["blocks.1.mlp.fc1.bias"][i] = float32(i)
	}
	if err := Reorder(a, p.Clone(), o, m); err != nil {
		t.Fatal(err)
	}
	for i, v := range m["blocks.1.mlp.fc1.bias"] {
		if int(v) != o.Neurons[1][i] {
			t.Fatalf("moment %d = %v, want %d", i, v, o.Neurons[1][i])
		}
	}
}

func score(t testing.TB, a arch.Arch, p *supernet.Params, c Criteria) *Scores {
	t.Helper()
	s, err := Score(a, p, Calibration{Data: calib(t, 16), Batches: 2}, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDeadUnitsScoreZero: a head or neuron whose output weights are zero scores 0 under
// every criterion and is ordered last.
func TestDeadUnitsScoreZero(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	dh := a.HeadDim
	proj := p.Get("blocks.1.attn.proj.weight").Data().([]float32) // (D, H*dh)
	qkv := p.Get("blocks.1.attn.qkv.weight").Data().([]float32)   // (3*H*dh, D)
	for o := 0; o < a.Dim; o++ {
		for j := 0; j < dh; j++ {
			proj[o*4*dh+2*dh+j] = 0 // head 2 of layer 1 writes nothing
		}
	}
	qkvb := p.Get("blocks.1.attn.qkv.bias").Data().([]float32)
	for r := 2*4*dh + 2*dh; r < 2*4*dh+3*dh; r++ {
		for c := 0; c < a.Dim; c++ {
			qkv[r*a.Dim+c] = 0 // and its values vanish (for the qkv and weight criteria)
		}
		qkvb[r] = 0
	}
	fc2 := p.Get("blocks.0.mlp.fc2.weight").Data().([]float32) // (D, M)
	for o := 0; o < a.Dim; o++ {
		fc2[o*20+7] = 0 // neuron 7 of layer 0 writes nothing
	}
	for _, hc := range []string{HeadTaylor, HeadAttnOut, HeadQKV, HeadWeight} {
		for _, nc := range []string{NeuronTaylor, NeuronActivation, NeuronWeight} {
			s := score(t, a, p, Criteria{Heads: hc, Neurons: nc, Layers: LayerUpdate})
			if s.Heads[1][2] != 0 || s.Neurons[0][7] != 0 {
				t.Errorf("%s/%s: dead head scores %g, dead neuron %g", hc, nc, s.Heads[1][2], s.Neurons[0][7])
			}
			o := ByImportance(s)
			if o.Heads[1][3] != 2 || o.Neurons[0][19] != 7 {
				t.Errorf("%s/%s: dead units not ordered last: %v %v", hc, nc, o.Heads[1], o.Neurons[0])
			}
		}
	}
}

// TestTaylorScoreIsGateGradient: the Taylor score of a head equals |dLoss/dgate| measured
// by finite differences on the loss.
func TestTaylorScoreIsGateGradient(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	l := calib(t, 16)
	s, err := Score(a, p, Calibration{Data: l, Batches: 1}, Criteria{Heads: HeadTaylor, Neurons: NeuronTaylor, Layers: LayerUpdate})
	if err != nil {
		t.Fatal(err)
	}
	// scaling head 1 of layer 2 by (1±eps) through its projection columns is the gate
	var b data.Batch
	l.Batch(0, 0, &b)
	loss := func(scale float64) float64 {
		q := p.Clone()
		proj := q.Get("blocks.2.attn.proj.weight").Data().([]float32)
		dh := a.HeadDim
		for o := 0; o < a.Dim; o++ {
			for j := 0; j < dh; j++ {
				proj[o*4*dh+dh+j] *= float32(scale)
			}
		}
		pg, err := newProbedGraph(a, q, arch.Largest(a), 16)
		if err != nil {
			t.Fatal(err)
		}
		defer pg.close()
		v, err := pg.run(b)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	num := math.Abs(fd.Derivative(loss, 1, &fd.Settings{Formula: fd.Central, Step: 1e-2}))
	if got := s.Heads[2][1]; math.Abs(got-num) > 0.02*num+1e-4 {
		t.Fatalf("taylor score %g, finite difference %g", got, num)
	}
}

// TestExportIsSubsetAndMatches: the exported weights are exactly slices of the original
// supernet's (at the manifest's unit indices), and its logits equal the supernet's.
func TestExportIsSubsetAndMatches(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	l := calib(t, 16)
	var vb data.Batch
	l.Batch(0, 3, &vb)
	cfg := DefaultConfig()
	cfg.CalibrationBatches = 2
	cfg.Order = OrderImportance // no validation data here to compare orders on
	res, err := Extract(Input{Arch: a, Params: p, Calibration: l, VerifyBatch: vb}, cfg,
		Selection{Ratios: &Ratios{Heads: []float64{0.5, 0.75, 0.25}, MLP: []float64{0.3, 1, 0.5}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{res.Arch.Layers[0].Heads, res.Arch.Layers[1].Heads, res.Arch.Layers[2].Heads}; got[0] != 2 || got[1] != 3 || got[2] != 1 {
		t.Fatalf("kept heads %v", got)
	}
	if res.Arch.Layers[0].MLP != 6 || res.Arch.Layers[1].MLP != 20 || res.Arch.Layers[2].MLP != 10 {
		t.Fatalf("kept widths %+v", res.Arch.Layers)
	}
	dh, d := a.HeadDim, a.Dim
	for i, kl := range res.Manifest.Layers {
		src := p.Get(blockName(kl.Layer, "attn.qkv.weight")).Data().([]float32)
		dst := res.Params.Get(blockName(i, "attn.qkv.weight")).Data().([]float32)
		h := len(kl.Heads)
		for g := 0; g < 3; g++ {
			for k, orig := range kl.Heads {
				for j := 0; j < dh; j++ {
					for c := 0; c < d; c++ {
						want := src[(g*4*dh+orig*dh+j)*d+c]
						got := dst[(g*h*dh+k*dh+j)*d+c]
						if want != got {
							t.Fatalf("layer %d head %d (supernet head %d): qkv differs", i, k, orig)
						}
					}
				}
			}
		}
		fc1 := p.Get(blockName(kl.Layer, "mlp.fc1.weight")).Data().([]float32)
		efc1 := res.Params.Get(blockName(i, "mlp.fc1.weight")).Data().([]float32)
		for k, orig := range kl.Neurons {
			for c := 0; c < d; c++ {
				if fc1[orig*d+c] != efc1[k*d+c] {
					t.Fatalf("layer %d neuron %d (supernet neuron %d): fc1 differs", i, k, orig)
				}
			}
		}
	}
	if res.Manifest.Verification.MaxAbsDiff > 1e-5 {
		t.Fatalf("verification %+v", res.Manifest.Verification)
	}
	// a corrupted export is caught
	w := res.Params.Get("blocks.1.mlp.fc2.bias").Data().([]float32)
	w[0] += 0.1
	if _, err := Verify(a, res.Reordered, res.Subnet, res.Arch, res.Params, vb); !errors.Is(err, ErrMismatch) {
		t.Fatalf("tampered export: %v", err)
	}
}

func blockName(l int, n string) string { return "blocks." + string(rune('0'+l)) + "." + n }

// TestThresholdsKeepExactlyAbove: threshold mode keeps exactly the units whose normalised
// score exceeds the threshold.
func TestThresholdsKeepExactlyAbove(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	s := score(t, a, p, DefaultCriteria())
	rs := ByImportance(s).Apply(s)
	th := []float64{0.3, 0.5, 0.8}
	sub, err := ByThresholds(a, rs, th, th)
	if err != nil {
		t.Fatal(err)
	}
	for l := range a.Layers {
		wantH, wantM := 0, 0
		for _, v := range Normalized(s.Heads[l]) {
			if v > th[l] {
				wantH++
			}
		}
		for _, v := range Normalized(s.Neurons[l]) {
			if v > th[l] {
				wantM++
			}
		}
		if sub.Layers[l].Heads != wantH || sub.Layers[l].MLP != wantM {
			t.Fatalf("layer %d kept %d heads, %d neurons; want %d, %d", l, sub.Layers[l].Heads, sub.Layers[l].MLP, wantH, wantM)
		}
	}
	if _, err := ByThresholds(a, rs, []float64{1, 0, 0}, th); err == nil || !strings.Contains(err.Error(), "thresholds.heads[0]") {
		t.Fatalf("threshold 1: %v", err)
	}
}

// TestBadSelections: bad ratios, lengths and budgets are refused with the field named.
func TestBadSelections(t *testing.T) {
	a := testArch()
	for _, c := range []struct {
		h, m []float64
		want string
	}{
		{[]float64{0.5, 0.5}, []float64{1, 1, 1}, "ratios.heads: got 2 values, the model has 3 layers"},
		{[]float64{0.5, 0, 1}, []float64{1, 1, 1}, "ratios.heads[1]"},
		{[]float64{0.5, 1, 1}, []float64{1, 1.5, 1}, "ratios.mlp[1]"},
		{[]float64{0.5, 1, 1}, []float64{1, math.NaN(), 1}, "ratios.mlp[1]"},
	} {
		if _, err := ByRatios(a, c.h, c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ratios %v %v: %v, want %q", c.h, c.m, err, c.want)
		}
	}
	p := randomParams(t, a, tensor.Float32)
	s := score(t, a, p, DefaultCriteria())
	_, err := Greedy(CostModel{Arch: a}, s, Budget{Params: 100}, DefaultFloors(), DepthImportance)
	if err == nil || !strings.Contains(err.Error(), "smallest achievable") {
		t.Fatalf("impossible budget: %v", err)
	}
}

// TestBudgetsAreMet: greedy and evolutionary selections fit params, MAC and combined budgets.
func TestBudgetsAreMet(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	s := ByImportance(score(t, a, p, DefaultCriteria())).Apply(score(t, a, p, DefaultCriteria()))
	cm := CostModel{Arch: a}
	full := cm.Of(arch.Largest(a))
	for _, b := range []Budget{{Params: full.Params / 2}, {Params: full.Params / 4}, {MACs: full.MACs / 3},
		{Params: full.Params / 2, MACs: full.MACs / 4}} {
		g, err := Greedy(cm, s, b, DefaultFloors(), DepthImportance)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Fits(cm.Of(g)) {
			t.Fatalf("greedy %s over budget %s: %+v", g.Key(), b, cm.Of(g))
		}
		// the search with a fake fitness (prefers more parameters) stays within budget
		fit := func(x arch.Subnet) (float64, error) { return float64(cm.Of(x).Params), nil }
		best, hist, err := Evolve(cm, s, b, DefaultFloors(), DepthImportance, DefaultSearch(), []arch.Subnet{g}, fit)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Fits(best.Cost) || len(hist) != DefaultSearch().Generations+1 || best.Accuracy < float64(cm.Of(g).Params) {
			t.Fatalf("search %+v (%d generations) for budget %s", best, len(hist), b)
		}
	}
}

// TestTargetResolve: a params multiple is relative to the supernet's size.
func TestTargetResolve(t *testing.T) {
	a := testArch()
	b := Resolve(budget.Target{ParamsMultiple: 4, MACs: 1000}, a)
	if b.Params != a.ModelCost().Params/4 || b.MACs != 1000 {
		t.Fatalf("resolved %+v", b)
	}
}
