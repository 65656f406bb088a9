package extract

import (
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

// TestWideFloors: the floors keep exactly the asked number of layers within the budget
// (one more does not fit, that many do), no smaller layer size does so, and an impossible
// request names the problem.
func TestWideFloors(t *testing.T) {
	a := arch.Default()
	stem := a.StemCost().Params
	for _, c := range []struct {
		params int64
		layers int
	}{{stem + 2*a.BlockCost(4, 256).Params, 2}, {stem + a.BlockCost(2, 100).Params*3 + 7, 2}, {stem + 3*a.BlockCost(1, 40).Params, 1}} {
		f, err := WideFloors(a, c.params, c.layers, DefaultFloors())
		if err != nil {
			t.Fatal(err)
		}
		p := a.BlockCost(f.MinHeads, f.MinMLP).Params
		room := c.params - stem
		if f.MinDepth != c.layers || int64(c.layers)*p > room || int64(c.layers+1)*p <= room {
			t.Fatalf("budget %d, %d layers: floors %+v (layer %d params) do not keep exactly %d layers", c.params, c.layers, f, p, c.layers)
		}
		for h := 1; h <= a.Layers[0].Heads; h++ {
			for m := 8; m <= a.Layers[0].MLP; m++ {
				q := a.BlockCost(h, m).Params
				if q < p && int64(c.layers+1)*q > room && int64(c.layers)*q <= room {
					t.Fatalf("budget %d: floors h%d m%d (%d params) keep %d layers with smaller layers than %+v", c.params, h, m, q, c.layers, f)
				}
			}
		}
	}
	if _, err := WideFloors(a, stem+10, 1, DefaultFloors()); err == nil || !strings.Contains(err.Error(), "width for depth") {
		t.Fatalf("an impossible budget: %v", err)
	}
}
