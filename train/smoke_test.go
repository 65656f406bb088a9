package train

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

type printHook struct{ t *testing.T }

func (h printHook) OnStep(tr *Trainer, s StepStats) error {
	if s.Step%50 == 0 {
		h.t.Logf("step %d loss %.3f acc %.3f lr %.2g gn %.2f %.1f ms %d graphs", s.Step, s.Loss, s.TrainAcc, s.LR, s.GradNorm, s.Seconds*1000, tr.GraphsBuilt())
	}
	return nil
}
func (h printHook) OnEval(tr *Trainer, e EvalStats) error {
	for _, s := range e.Subnets {
		h.t.Logf("eval step %d %s acc %.4f loss %.3f (%.1fs)", e.Step, s.Name, s.Accuracy, s.Loss, e.Seconds)
	}
	return nil
}

func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	trainSet, testSet, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	a := arch.Default()
	sp := arch.DefaultSpace()
	p, _ := supernet.NewParams(a, tensor.Float32, 1)
	cfg := Default()
	cfg.Epochs = 2
	if v := os.Getenv("SMOKE_LR"); v != "" {
		cfg.LR, _ = strconv.ParseFloat(v, 64)
	}
	scfg := sampler.DefaultConfig()
	if v := os.Getenv("SMOKE_RANDOM"); v != "" {
		scfg.Random, _ = strconv.Atoi(v)
	}
	lc := data.DefaultLoaderConfig()
	lc.BatchSize = cfg.BatchSize
	lc.DropLast = true
	tl, err := data.NewLoader(trainSet, lc)
	if err != nil {
		t.Fatal(err)
	}
	ec := lc
	ec.Shuffle, ec.DropLast, ec.BatchSize = false, false, cfg.EvalBatch
	el, _ := data.NewLoader(testSet, ec)
	smp, err := sampler.New(scfg, sp)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(Setup{Arch: a, Params: p, Sampler: smp, Train: tl, Eval: el, Ops: nn.Fused{}, Config: cfg,
		EvalSubnets: []Named{{"largest", sp.Largest()}, {"middle", sp.Middle()}, {"smallest", sp.Smallest()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background(), printHook{t}); err != nil {
		t.Fatal(err)
	}
}
