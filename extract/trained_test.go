package extract

import (
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// TestTrainedSubnetsJoinTheSearch: a subnet the supernet was trained as at the budget
// joins the search and wins when it is the most accurate on validation; one over the
// budget is left out with a warning naming it, and without a search none is compared.
func TestTrainedSubnetsJoinTheSearch(t *testing.T) {
	a := testArch()
	p := randomParams(t, a, tensor.Float32)
	var vb data.Batch
	calib(t, 8).Batch(0, 0, &vb)
	target := budget.Target{ParamsMultiple: 2}
	b := Resolve(target, a)
	cm := CostModel{Arch: a}
	// an uneven 2-layer subnet within the budget that the random search is unlikely to draw
	trained := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 3, MLP: 13}, {Layer: 1, Heads: 1, MLP: 7}}}
	over := arch.Largest(a)
	if !b.Fits(cm.Of(trained)) || b.Fits(cm.Of(over)) {
		t.Fatalf("test setup: budget %s, trained %+v, largest %+v", b, cm.Of(trained), cm.Of(over))
	}
	evaluated := 0
	in := Input{Arch: a, Params: p, VerifyBatch: vb, Scores: score(t, a, p, DefaultCriteria()),
		Fitness: func(*supernet.Params) (Fitness, func()) {
			return func(s arch.Subnet) (float64, error) {
				evaluated++
				if s.Equal(trained) {
					return 0.9, nil
				}
				return 0.5, nil
			}, func() {}
		}}
	cfg := DefaultConfig()
	cfg.Floors.MinMLP = 4
	res, err := Extract(in, cfg, Selection{Target: &target, Trained: []arch.Subnet{trained, over, trained}})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if !res.Subnet.Equal(trained) || !m.ChoseTrained || len(m.Trained) != 1 || !m.Trained[0].Equal(trained) {
		t.Fatalf("chose %s (chose_trained %v, trained %v), want the trained %s once", res.Subnet.Key(), m.ChoseTrained, m.Trained, trained.Key())
	}
	if !strings.Contains(strings.Join(m.Warnings, "\n"), over.Key()+" left out of the search: costs") {
		t.Errorf("warnings %q name no over-budget trained subnet %s", m.Warnings, over.Key())
	}

	// the same selection without the trained subnets finds something else
	res, err = Extract(in, cfg, Selection{Target: &target})
	if err != nil {
		t.Fatal(err)
	}
	if res.Subnet.Equal(trained) || res.Manifest.ChoseTrained {
		t.Fatalf("without trained subnets the search found %s; pick a rarer test subnet", res.Subnet.Key())
	}

	// no search: the trained subnets are not compared, and the manifest says so
	cfg.Search.Generations = 0
	cfg.Order = OrderImportance
	res, err = Extract(in, cfg, Selection{Target: &target, Trained: []arch.Subnet{trained}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.ChoseTrained || len(res.Manifest.Trained) != 0 || !strings.Contains(strings.Join(res.Manifest.Warnings, "\n"), "were not compared") {
		t.Fatalf("without a search: chose_trained %v, trained %v, warnings %q", res.Manifest.ChoseTrained, res.Manifest.Trained, res.Manifest.Warnings)
	}
}
