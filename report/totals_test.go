package report

import (
	"strings"
	"testing"
)

func TestTotals(t *testing.T) {
	sn := Stage{Name: "supernet", Steps: 100, MACs: 60, Seconds: 10, Shared: true}
	teacher := Stage{Name: "dense", Steps: 50, MACs: 30, Seconds: 5, Shared: true}
	rows := []Row{
		{Budget: "2x", Variant: "extracted+finetune", Compute: []Stage{teacher, sn, {Name: "fine-tune", MACs: 4, Seconds: 1}}},
		{Budget: "2x", Variant: "scratch, equal steps", Compute: []Stage{teacher, {Name: "training", MACs: 40, Seconds: 4}}},
		{Budget: "4x", Variant: "extracted+finetune", Compute: []Stage{teacher, sn, {Name: "fine-tune", MACs: 2, Seconds: 1}}},
		{Budget: "4x", Variant: "scratch, equal steps", Compute: []Stage{teacher, {Name: "training", MACs: 20, Seconds: 2}}},
		{Budget: "8x", Variant: "extracted+finetune", Compute: []Stage{teacher, sn, {Name: "fine-tune", MACs: 1}}}, // no scratch row
	}
	c := Totals(rows, "extracted+finetune", "scratch, equal steps")
	if c == nil {
		t.Fatal("no totals")
	}
	// pipeline: 30 + 60 shared, 3 per budget; scratch: 30 shared, 30 per budget
	for _, x := range []struct {
		name      string
		got, want float64
	}{
		{"budgets", float64(c.Budgets), 2},
		{"pipeline shared", c.PipelineShared, 90}, {"pipeline per budget", c.PipelinePerBudget, 3}, {"pipeline", c.PipelineMACs, 96},
		{"scratch shared", c.AlternativeShared, 30}, {"scratch per budget", c.AlternativePerBudget, 30}, {"scratch", c.AlternativeMACs, 90},
		{"pipeline seconds", c.PipelineSeconds, 17}, {"scratch seconds", c.AlternativeSeconds, 11},
		// 90 + 3K <= 30 + 30K from K = 60/27 -> 3
		{"break-even", float64(c.BreakEven), 3},
	} {
		if x.got != x.want {
			t.Errorf("%s: got %g, want %g", x.name, x.got, x.want)
		}
	}
	if md := c.markdown(); !strings.Contains(md, "**3 budget(s)**") {
		t.Errorf("markdown does not state the break-even:\n%s", md)
	}
	if Totals(rows, "extracted+finetune", "no such variant") != nil {
		t.Error("totals without rows of the alternative")
	}
}

func TestBreakEven(t *testing.T) {
	for _, c := range []struct {
		ps, pk, as, ak float64
		want           int
	}{
		{10, 1, 0, 1, 0},  // each budget costs the same: never
		{10, 2, 0, 1, 0},  // the pipeline's budgets cost more: never
		{0, 1, 10, 1, 1},  // cheaper from the first budget
		{10, 1, 0, 11, 1}, // 11 <= 11
		{10, 1, 0, 6, 2},  // 11 > 6, 12 <= 12
	} {
		if got := breakEven(c.ps, c.pk, c.as, c.ak); got != c.want {
			t.Errorf("breakEven(%g, %g, %g, %g) = %d, want %d", c.ps, c.pk, c.as, c.ak, got, c.want)
		}
	}
}
