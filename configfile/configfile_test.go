package configfile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/config"
)

// TestStoredConfigRoundTrip: the stored form of a configuration loads back to the same
// configuration, so a resumed run trains exactly as the interrupted one did.
func TestStoredConfigRoundTrip(t *testing.T) {
	c := config.Default()
	c.Train.LR, c.Model.InitSeed, c.Sampler.Random = 1.234567890123e-3, 1<<40+3, 1
	c.Extract.Remote.URL = "http://127.0.0.1:1/x"
	c.Sampler.Kind, c.Sampler.BudgetSubnets = "budgets", []arch.Subnet{
		{Layers: []arch.SubLayer{{Layer: 0, Heads: 2, MLP: 96}, {Layer: 2, Heads: 1, MLP: 40}}},
		{Layers: []arch.SubLayer{{Layer: 1, Heads: 1, MLP: 8}}}}
	got, err := Loader{Stored: Store(c), Where: "stored"}.Load()
	if err != nil {
		t.Fatal(err)
	}
	// nil and empty lists store alike; compare everything else field by field
	if string(Store(got)) != string(Store(c)) || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c) {
		t.Fatalf("round trip changed the configuration:\n got %+v\nwant %+v", got, c)
	}
}

// TestSameStoredAcrossVersions: a configuration an older version stored (without a key
// added since, here sampler.budget_subnets) is the same configuration as this version's,
// so a run started before an upgrade resumes after it; a changed value, or a stored
// document that does not load, is not the same.
func TestSameStoredAcrossVersions(t *testing.T) {
	c := config.Default()
	c.Train.LR = 3e-3
	cur := Store(c)
	var older []string
	for _, line := range strings.Split(string(cur), "\n") {
		if strings.TrimSpace(line) != "budget_subnets: []" {
			older = append(older, line)
		}
	}
	if len(older) != strings.Count(string(cur), "\n") {
		t.Fatalf("the stored configuration has no line budget_subnets: []:\n%s", cur)
	}
	old := []byte(strings.Join(older, "\n"))
	if !SameStored(old, cur) {
		t.Fatal("a configuration stored without a key added since is not the same")
	}
	if !SameStored(cur, cur) {
		t.Fatal("a configuration is not the same as itself")
	}
	c.Train.LR = 4e-3
	if SameStored(old, Store(c)) {
		t.Fatal("a configuration with another train.lr is the same")
	}
	if SameStored([]byte("train: {lr: [1]}"), cur) || SameStored([]byte("changed"), cur) {
		t.Fatal("a stored document that does not load is the same")
	}
}

// TestBudgetSubnetsFromYAML: sampler.budget_subnets reads as a YAML list of subnets; a
// misspelt key inside one is refused, naming it.
func TestBudgetSubnetsFromYAML(t *testing.T) {
	good := "sampler:\n  kind: budgets\n  budget_subnets:\n    - layers: [{layer: 0, heads: 2, mlp: 96}, {layer: 2, heads: 1, mlp: 40}]\n    - {layers: [{layer: 1, heads: 1, mlp: 8}]}\n"
	c, err := Loader{Stored: []byte(good), Where: "test"}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sampler.BudgetSubnets; len(got) != 2 || got[0].Key() != "0:h2m96,2:h1m40" || got[1].Key() != "1:h1m8" {
		t.Fatalf("budget_subnets %v", got)
	}
	bad := "sampler:\n  kind: budgets\n  budget_subnets:\n    - layers: [{layer: 0, heads: 2, mpl: 96}]\n"
	if _, err := (Loader{Stored: []byte(bad), Where: "test"}).Load(); err == nil || !strings.Contains(err.Error(), "mpl") {
		t.Fatalf("a misspelt key in a budget subnet: %v, want an error naming it", err)
	}
}
