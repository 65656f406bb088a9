package sampler

import (
	"errors"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

// budgetsFor are limits of 1/2, 1/4 and 1/8 of a's unique parameters.
func budgetsFor(a arch.Arch) Budgets {
	p := a.ModelCost().Params
	return Budgets{Arch: a, Limits: []Limit{{Params: p / 2}, {Params: p / 4}, {Params: p / 8}}}
}

func TestBudgetAwareDrawsFitTheirBudgets(t *testing.T) {
	sp := arch.DefaultSpace()
	a := maxArch(t, sp)
	b := budgetsFor(a)
	s, err := NewForBudgets(Config{Kind: KindBudgets, Seed: 5, Random: 1, BudgetBand: DefaultBudgetBand}, sp, 100, b)
	if err != nil {
		t.Fatal(err)
	}
	inBand := 0
	const steps = 50
	for step := range steps {
		got := s.Sample(step)
		if want := 1 + len(b.Limits) + 1; len(got) != want {
			t.Fatalf("step %d: %d subnets, want %d", step, len(got), want)
		}
		if !got[0].Equal(sp.Largest()) {
			t.Fatalf("step %d: first subnet %s, want the largest", step, got[0].Key())
		}
		for k, l := range b.Limits {
			sub := got[1+k]
			if err := sub.Validate(a); err != nil {
				t.Fatalf("step %d budget %d: %v", step, k, err)
			}
			f := fill(a, sub, l)
			if f > 1 {
				t.Errorf("step %d budget %d: %s has %d params, over the limit %d", step, k, sub.Key(), a.SubnetCost(sub).Params, l.Params)
			}
			if f >= 1-DefaultBudgetBand {
				inBand++
			}
		}
	}
	// the band is a target, not a guarantee (a coarse grid can miss it): most draws make it
	if total := steps * len(b.Limits); inBand < total*9/10 {
		t.Errorf("%d of %d budget draws within %.0f%% of their limit, want at least 90%%", inBand, total, 100*DefaultBudgetBand)
	}
}

func TestBudgetAwareDeterministicAndFixed(t *testing.T) {
	sp := arch.DefaultSpace()
	a := maxArch(t, sp)
	cfg := Config{Kind: KindBudgets, Seed: 9, BudgetBand: DefaultBudgetBand}
	s1, err := NewForBudgets(cfg, sp, 10, budgetsFor(a))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := NewForBudgets(cfg, sp, 10, budgetsFor(a))
	varied := false
	for step := range 10 {
		if keys(s1.Sample(step)) != keys(s2.Sample(step)) {
			t.Fatalf("step %d: two samplers of one configuration differ", step)
		}
		varied = varied || keys(s1.Sample(step)) != keys(s1.Sample(0))
	}
	if !varied {
		t.Error("the budget draws are the same at every step without budget_fixed")
	}
	cfg.BudgetFixed = true
	f, err := NewForBudgets(cfg, sp, 10, budgetsFor(a))
	if err != nil {
		t.Fatal(err)
	}
	for step := range 10 {
		if keys(f.Sample(step)) != keys(s1.Sample(0)) {
			t.Fatalf("step %d: budget_fixed drew %s, want step 0's %s", step, keys(f.Sample(step)), keys(s1.Sample(0)))
		}
	}
	// FixedSubnets names them, through the warm phase, in the budgets' order
	cfg.WarmFraction = 0.5
	w, err := NewForBudgets(cfg, sp, 10, budgetsFor(a))
	if err != nil {
		t.Fatal(err)
	}
	fixed := FixedSubnets(w)
	if len(fixed) != 3 || keys(fixed) != keys(f.Sample(0)[1:]) || keys(w.Sample(9)[1:]) != keys(fixed) {
		t.Fatalf("FixedSubnets %s, want the budget draws %s", keys(fixed), keys(f.Sample(0)[1:]))
	}
	// budget_only: the same budget subnets without the largest in front of them
	cfg.BudgetOnly = true
	o, err := NewForBudgets(cfg, sp, 10, budgetsFor(a))
	if err != nil {
		t.Fatal(err)
	}
	if keys(o.Sample(9)) != keys(fixed) || keys(FixedSubnets(o)) != keys(fixed) || keys(o.Sample(0)) != keys([]arch.Subnet{sp.Largest()}) {
		t.Fatalf("budget_only: step 9 %s, fixed %s, warm step 0 %s; want %s without the largest, the largest while warm",
			keys(o.Sample(9)), keys(FixedSubnets(o)), keys(o.Sample(0)), keys(fixed))
	}
	cfg.BudgetOnly = false
	if FixedSubnets(s1) != nil || FixedSubnets(Sandwich{Space: sp}) != nil {
		t.Error("FixedSubnets of a sampler without fixed budget subnets is not nil")
	}
	// random draws keep their stream when budgets are added in front of them
	cfg = Config{Kind: KindBudgets, Seed: 9, Random: 2}
	r, _ := NewForBudgets(cfg, sp, 10, budgetsFor(a))
	u := Uniform{Space: sp, Seed: 9, Count: 3}
	for step := range 5 {
		got, want := r.Sample(step), u.Sample(step)
		if keys(got[len(got)-2:]) != keys(want[1:]) {
			t.Fatalf("step %d: random draws %s, want the uniform sampler's %s", step, keys(got[len(got)-2:]), keys(want[1:]))
		}
	}
}

func TestBudgetDrawBelowTheSpace(t *testing.T) {
	sp := arch.DefaultSpace()
	a := maxArch(t, sp)
	small := sp.Smallest()
	// a limit below the space's smallest subnet is met with finer widths
	l := Limit{Params: a.SubnetCost(small).Params * 4 / 5}
	s, err := NewForBudgets(Config{Kind: KindBudgets, Seed: 1, BudgetBand: DefaultBudgetBand}, sp, 1, Budgets{Arch: a, Limits: []Limit{l}})
	if err != nil {
		t.Fatal(err)
	}
	for step := range 20 {
		sub := s.Sample(step)[1]
		if f := fill(a, sub, l); f > 1 {
			t.Fatalf("step %d: %s uses %.2f of its limit", step, sub.Key(), f)
		}
	}
	// a limit nothing meets gives the smallest draw the grid allows
	got := BudgetDraw(sp, a, Limit{Params: 1}, 0.1, DefaultBudgetMLPStep, newRand(1, 0, 0))
	if want := smallestAt(sp, DefaultBudgetMLPStep); !got.Equal(want) {
		t.Errorf("unmeetable limit: got %s, want %s", got.Key(), want.Key())
	}
}

func TestBudgetAwareErrors(t *testing.T) {
	sp := arch.DefaultSpace()
	a := maxArch(t, sp)
	for _, c := range []struct {
		name string
		cfg  Config
		b    Budgets
	}{
		{"no budgets", Config{Kind: KindBudgets}, Budgets{Arch: a}},
		{"latency only", Config{Kind: KindBudgets}, Budgets{Arch: a, Limits: []Limit{{}}}},
		{"band", Config{Kind: KindBudgets, BudgetBand: 1}, budgetsFor(a)},
		{"mlp step", Config{Kind: KindBudgets, BudgetMLPStep: -1}, budgetsFor(a)},
	} {
		if _, err := NewForBudgets(c.cfg, sp, 10, c.b); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", c.name, err)
		}
	}
	if err := (Config{Kind: KindSandwich, BudgetFixed: true}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("budget_fixed with kind sandwich: got %v, want ErrConfig", err)
	}
	if err := (Config{Kind: KindUniform, BudgetOnly: true}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("budget_only with kind uniform: got %v, want ErrConfig", err)
	}
	if _, err := New(Config{Kind: KindBudgets}, sp); !errors.Is(err, ErrConfig) {
		t.Errorf("New with kind budgets: got %v, want ErrConfig", err)
	}
}

// TestBudgetSubnetsChosen: the subnets of budget_subnets are the budgets' subnets at every
// step after the warm phase and are what FixedSubnets names; a wrong count, a subnet over
// its budget, one the architecture does not have, a repeated layer or another kind is
// refused, naming the entry.
func TestBudgetSubnetsChosen(t *testing.T) {
	sp := arch.DefaultSpace()
	a := maxArch(t, sp)
	b := budgetsFor(a)
	sub := func(hm ...int) arch.Subnet {
		s := arch.Subnet{}
		for i := 0; i < len(hm); i += 2 {
			s.Layers = append(s.Layers, arch.SubLayer{Layer: i / 2, Heads: hm[i], MLP: hm[i+1]})
		}
		return s
	}
	chosen := []arch.Subnet{sub(2, 128, 2, 128, 2, 128), sub(2, 64, 1, 64), sub(1, 32, 1, 16)}
	for k, s := range chosen {
		if f := fill(a, s, b.Limits[k]); f > 1 {
			t.Fatalf("test subnet %s uses %.2f of budget %d", s.Key(), f, k)
		}
	}
	cfg := Config{Kind: KindBudgets, Seed: 3, WarmFraction: 0.2, BudgetSubnets: chosen}
	if !cfg.FixedBudgets() {
		t.Fatal("budget_subnets does not imply fixed budget subnets")
	}
	s, err := NewForBudgets(cfg, sp, 10, b)
	if err != nil {
		t.Fatal(err)
	}
	if keys(s.Sample(0)) != keys([]arch.Subnet{sp.Largest()}) {
		t.Fatalf("warm step 0: %s, want the largest alone", keys(s.Sample(0)))
	}
	for step := 2; step < 10; step++ {
		if got := s.Sample(step); keys(got[1:]) != keys(chosen) || !got[0].Equal(sp.Largest()) {
			t.Fatalf("step %d: %s, want the largest then %s", step, keys(got), keys(chosen))
		}
	}
	if keys(FixedSubnets(s)) != keys(chosen) {
		t.Fatalf("FixedSubnets %s, want %s", keys(FixedSubnets(s)), keys(chosen))
	}

	over := append([]arch.Subnet(nil), chosen...)
	over[2] = chosen[0]
	for _, c := range []struct {
		name, want string
		cfg        Config
	}{
		{"two for three budgets", "got 2 subnets for 3 budgets", Config{Kind: KindBudgets, BudgetSubnets: chosen[:2]}},
		{"over its budget", "sampler.budget_subnets[2]", Config{Kind: KindBudgets, BudgetSubnets: over}},
		{"a layer the supernet lacks", "sampler.budget_subnets[0]", Config{Kind: KindBudgets,
			BudgetSubnets: []arch.Subnet{sub(2, 128, 1, 16, 1, 16, 1, 16, 1, 16), chosen[1], chosen[2]}}},
		{"no layers", "sampler.budget_subnets[1]", Config{Kind: KindBudgets, BudgetSubnets: []arch.Subnet{chosen[0], {}, chosen[2]}}},
		{"a repeat", "sampler.budget_subnets[0].layers[0].repeat", Config{Kind: KindBudgets,
			BudgetSubnets: []arch.Subnet{{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 8, Repeat: 2}}}, chosen[1], chosen[2]}}},
		{"kind sandwich", "budget_subnets are for kind", Config{Kind: KindSandwich, BudgetSubnets: chosen}},
	} {
		_, err := NewForBudgets(c.cfg, sp, 10, b)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrConfig naming %q", c.name, err, c.want)
		}
	}
}
