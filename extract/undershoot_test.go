package extract

import (
	"strings"
	"testing"
)

// TestUndershoot: the tightest limit counts, and only an extraction below FarBelow of it
// is flagged.
func TestUndershoot(t *testing.T) {
	b := Budget{Params: 1000, MACs: 10000}
	for _, c := range []struct {
		cost Cost
		use  float64
		flag bool
	}{
		{Cost{Params: 1000, MACs: 5000}, 1, false},
		{Cost{Params: 500, MACs: 9000}, 0.9, false},
		{Cost{Params: 500, MACs: 5000}, 0.5, true}, // a "2x" that came out 4x-sized
		{Cost{Params: 790, MACs: 100}, 0.79, true},
	} {
		if got := b.Use(c.cost); got != c.use {
			t.Errorf("Use(%+v) = %g, want %g", c.cost, got, c.use)
		}
		if w := Undershoot(b, c.cost); (w != "") != c.flag || (c.flag && !strings.Contains(w, "far below its budget")) {
			t.Errorf("Undershoot(%+v) = %q, want flagged %v", c.cost, w, c.flag)
		}
	}
	if u := (Budget{}).Use(Cost{Params: 5}); u != 0 {
		t.Errorf("a budget without limits: use %g, want 0", u)
	}
}
