package expand

import (
	"errors"
	"slices"
	"testing"
)

// FuzzParsePlan: ParsePlan reads plans from flags, configs and manifests. It must not
// panic, must refuse with ErrPlan, and what it accepts must validate for the model and
// survive a round trip through its explicit list form.
func FuzzParsePlan(f *testing.F) {
	for _, c := range []struct {
		spec string
		n    uint8
	}{
		{"repeat:2", 3}, {"cycle:2", 4}, {"repeat:16", 1}, {"0,0,1,1,2", 3}, {" 0, 1 ,1 ", 2},
		{"cycle:17", 2}, {"repeat:x", 2}, {"0,1,3,1", 3}, {"-1,0,1,2", 3}, {"0,,1", 2}, {"zig:2", 3}, {"repeat:2", 0},
	} {
		f.Add(c.spec, c.n)
	}
	f.Fuzz(func(t *testing.T, spec string, layers uint8) {
		n := int(layers) // stored layers of a model: at most 256 (arch's limit), here 0..255
		p, err := ParsePlan(spec, n)
		if err != nil {
			if !errors.Is(err, ErrPlan) {
				t.Fatalf("ParsePlan(%q, %d): error %v does not wrap ErrPlan", spec, n, err)
			}
			return
		}
		if err := p.Validate(n); err != nil {
			t.Fatalf("ParsePlan(%q, %d) accepted an invalid plan: %v", spec, n, err)
		}
		back, err := ParsePlan(p.String(), n)
		if err != nil {
			t.Fatalf("explicit form %q of an accepted plan refused: %v", p.String(), err)
		}
		if !slices.Equal(back, p) {
			t.Fatalf("round trip changed %v into %v", p, back)
		}
	})
}
