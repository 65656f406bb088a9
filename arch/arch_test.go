package arch

import (
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	a := Default()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := DefaultSpace().Validate(a); err != nil {
		t.Fatal(err)
	}
	if a.Tokens() != 17 || a.PatchSize() != 49 {
		t.Fatalf("tokens %d, patch size %d", a.Tokens(), a.PatchSize())
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Arch)
		want string
	}{
		{func(a *Arch) { a.Task = "video" }, "task"},
		{func(a *Arch) { a.PatchHeight = 5 }, "patch_height"},
		{func(a *Arch) { a.Dim = 0 }, "dim"},
		{func(a *Arch) { a.Classes = 1 }, "classes"},
		{func(a *Arch) { a.Layers = nil }, "layers"},
		{func(a *Arch) { a.Layers[2].Heads = 0 }, "layers[2].heads"},
		{func(a *Arch) { a.Layers[1].MLP = 1 << 20 }, "layers[1].mlp"},
		{func(a *Arch) { a.Positions = []Position{{Layer: 0}, {Layer: 7}} }, "positions[1].layer"},
		{func(a *Arch) { a.Positions = []Position{{Layer: 0}, {Layer: 1}} }, "layer 2 is stored but no position uses it"},
		{func(a *Arch) { a.NormEps = 0 }, "norm_eps"},
	} {
		a := Default()
		a.Layers = append([]Layer(nil), a.Layers...)
		c.mut(&a)
		if err := a.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error naming %q", err, c.want)
		}
	}
}

func TestParseArchRejectsUnknownFields(t *testing.T) {
	a := Default()
	if _, err := ParseArch(a.JSON()); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(a.JSON(), `"dim"`, `"dimm"`, 1)
	if _, err := ParseArch(bad); err == nil || !strings.Contains(err.Error(), "dimm") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestSubnetKeyAndSpace(t *testing.T) {
	sp := DefaultSpace()
	if got := sp.Smallest().Key(); got != "0:h1m64,1:h1m64" {
		t.Fatalf("smallest %s", got)
	}
	a := Default()
	s, err := ParseSubnet([]byte(`{"layers":[{"layer":1,"heads":2,"mlp":10}]}`), a)
	if err != nil || s.Key() != "1:h2m10" {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := ParseSubnet([]byte(`{"layers":[{"layer":1,"heads":2,"mlp":10,"x":1}]}`), a); err == nil {
		t.Fatal("unknown subnet field accepted")
	}
	bad := Space{HeadChoices: []int{1, 2}, MLPChoices: sp.MLPChoices, DepthChoices: sp.DepthChoices}
	if err := bad.Validate(a); err == nil || !strings.Contains(err.Error(), "head_choices") {
		t.Fatalf("space: %v", err)
	}
}

// TestCostByHand checks the parameter and MAC counts of a tiny model against numbers
// worked out by hand.
func TestCostByHand(t *testing.T) {
	a := Arch{Task: TaskImage, InChannels: 1, InHeight: 4, InWidth: 4, PatchHeight: 2, PatchWidth: 2,
		Dim: 8, HeadDim: 2, Classes: 3, NormEps: 1e-6, Activation: ActivationGELUTanh, Layers: []Layer{{Heads: 2, MLP: 5}}}
	// stem: patch 8*4+8=40, cls 8, pos 5*8=40, final norm 16, head 3*8+3=27 -> 131
	// block: norms 32, qkv 3*4*8+12=108, proj 8*4+8=40, fc1 5*8+5=45, fc2 8*5+8=48 -> 273
	c := a.ModelCost()
	if c.Params != 131+273 {
		t.Fatalf("params %d, want 404", c.Params)
	}
	// MACs: patch 4*4*8=128, head 24; qkv 5*8*12=480, attention 2*25*4=200, proj 5*4*8=160, mlp 2*5*8*5=400
	if c.MACs != 128+24+480+200+160+400 {
		t.Fatalf("MACs %d, want 1392", c.MACs)
	}
}

// TestRepeatedSubnet: a block that runs twice counts its parameters once and its MACs
// twice, shows in the key, and repeats beyond MaxRepeat are refused by field name.
func TestRepeatedSubnet(t *testing.T) {
	a := Default()
	once := Subnet{Layers: []SubLayer{{Layer: 0, Heads: 2, MLP: 64}, {Layer: 1, Heads: 1, MLP: 32}}}
	twice := once.Clone()
	for i := range twice.Layers {
		twice.Layers[i].Repeat = 2
	}
	c1, c2 := a.SubnetCost(once), a.SubnetCost(twice)
	blocks := a.BlockCost(2, 64).MACs + a.BlockCost(1, 32).MACs
	if c2.Params != c1.Params || c2.MACs != c1.MACs+blocks {
		t.Fatalf("repeated: %+v, once: %+v (blocks %d MACs)", c2, c1, blocks)
	}
	if twice.Key() != "0:h2m64x2,1:h1m32x2" || !twice.Repeats() || once.Repeats() || twice.Positions() != 4 {
		t.Fatalf("key %q, repeats %v/%v, positions %d", twice.Key(), twice.Repeats(), once.Repeats(), twice.Positions())
	}
	one := once.Clone()
	one.Layers[0].Repeat = 1
	if !one.Equal(once) || once.Equal(twice) {
		t.Fatal("repeat 1 must equal no repeat, and repeat 2 must differ")
	}
	bad := once.Clone()
	bad.Layers[1].Repeat = MaxRepeat + 1
	if err := bad.Validate(a); err == nil || !strings.Contains(err.Error(), "subnet.layers[1].repeat") {
		t.Fatalf("repeat %d: %v", MaxRepeat+1, err)
	}
}
