package train

import (
	"math"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

func TestRecipeConfigValidate(t *testing.T) {
	for _, v := range []float64{-0.1, 1, math.NaN()} {
		cfg := Default()
		cfg.LargestLabelSmoothing = v
		if err := cfg.Validate("train"); err == nil || !strings.Contains(err.Error(), "train.largest_label_smoothing") {
			t.Errorf("largest_label_smoothing %g: error %v, want it to name train.largest_label_smoothing", v, err)
		}
	}
}

// TestLargestLabelSmoothing: the largest subnet's own smoothing acts on it alone. With
// Alpha = 1 the other subnets never see the labels, so smoothing only the largest's trains
// exactly what smoothing everyone's does; with Alpha < 1 it does not; and a largest-only
// smoothing equal to the common one changes nothing.
func TestLargestLabelSmoothing(t *testing.T) {
	f := newFixture(t)
	const n, ls = 4, 0.2
	run := func(alpha, common, largest float64) *Trainer {
		g := f
		g.cfg.Alpha, g.cfg.LabelSmoothing, g.cfg.LargestLabelSmoothing = alpha, common, largest
		tr := g.trainer(t, g.params(t))
		steps(t, tr, n)
		return tr
	}
	sameBits(t, "alpha 1: largest-only vs everyone's smoothing", run(1, 0, ls).Params(), run(1, ls, 0).Params())
	sameBits(t, "alpha 0.5: largest's smoothing equal to everyone's", run(0.5, ls, ls).Params(), run(0.5, ls, 0).Params())
	a, b := run(0.5, 0, ls).Params(), run(0.5, ls, 0).Params()
	if a.Get("head.weight").Float32s()[0] == b.Get("head.weight").Float32s()[0] {
		t.Error("alpha 0.5: smoothing the largest's labels only trained what smoothing everyone's does")
	}
}

func TestProjectConflict(t *testing.T) {
	ref := [][]float32{{1, 0}, {2}}
	for _, c := range []struct {
		name      string
		g         [][]float32
		projected bool
	}{
		{"agrees", [][]float32{{1, 1}, {1}}, false},
		{"orthogonal", [][]float32{{0, 3}, {0}}, false},
		{"conflicts", [][]float32{{-1, 1}, {-1}}, true},
	} {
		before := [][]float32{append([]float32(nil), c.g[0]...), append([]float32(nil), c.g[1]...)}
		if got := projectConflict(c.g, ref); got != c.projected {
			t.Errorf("%s: projected %v, want %v", c.name, got, c.projected)
		}
		var dot float64
		for k := range ref {
			for j := range ref[k] {
				dot += float64(c.g[k][j]) * float64(ref[k][j])
				if !c.projected && c.g[k][j] != before[k][j] {
					t.Errorf("%s: changed %v to %v", c.name, before, c.g)
				}
			}
		}
		if c.projected && math.Abs(dot) > 1e-6 {
			t.Errorf("%s: projected gradient %v has dot product %g with %v, want 0", c.name, c.g, dot, ref)
		}
		// the component orthogonal to ref is kept: g - before is parallel to ref
		if c.projected {
			d0, r0 := c.g[1][0]-before[1][0], ref[1][0]
			for k := range ref {
				for j := range ref[k] {
					if d := float64(c.g[k][j]-before[k][j]) * float64(r0); math.Abs(d-float64(d0*ref[k][j])) > 1e-6 {
						t.Errorf("%s: the change %v is not along %v", c.name, c.g, ref)
					}
				}
			}
		}
	}
}

// TestProjectConflictsTrains: with projection the run stays deterministic, projects some
// gradients and so trains other weights than without it.
func TestProjectConflictsTrains(t *testing.T) {
	f := newFixture(t)
	f.cfg.Alpha = 1 // pure distillation: some of the first steps conflict on this data
	plain := f.trainer(t, f.params(t))
	steps(t, plain, 6)
	f.cfg.ProjectConflicts = true
	var runs [2]*Trainer
	projected := 0
	for i := range runs {
		runs[i] = f.trainer(t, f.params(t))
		for range 6 {
			st, err := runs[i].TrainStep()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				projected += st.Projected
			}
		}
	}
	sameBits(t, "two runs with projection", runs[0].Params(), runs[1].Params())
	if projected == 0 {
		t.Fatal("no gradient was projected in 6 steps of sandwich training (is the teacher's gradient kept?)")
	}
	if runs[0].Params().Get("head.weight").Float32s()[0] == plain.Params().Get("head.weight").Float32s()[0] {
		t.Errorf("%d projections, yet the weights equal those of plain training", projected)
	}
	// with an external teacher the largest subnet, a student too, is the reference:
	// projection is on, and the weights differ from training without it exactly when it
	// projected (conflicts are rarer when every subnet distils from one teacher)
	teacher := runs[0].Params().Clone()
	withTeacher := func(project bool) (*Trainer, int) {
		f.cfg.ProjectConflicts = project
		setup := f.setup(t, f.params(t))
		setup.Teacher = &Teacher{Arch: f.a, Params: teacher, Subnet: arch.Largest(f.a)}
		tr, err := New(setup)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Close)
		n := 0
		for range 20 {
			st, err := tr.TrainStep()
			if err != nil {
				t.Fatal(err)
			}
			n += st.Projected
		}
		return tr, n
	}
	on, n := withTeacher(true)
	off, _ := withTeacher(false)
	if on.teacherGrads == nil {
		t.Fatal("project_conflicts with an external teacher keeps no reference gradient")
	}
	same := on.Params().Get("head.weight").Float32s()[0] == off.Params().Get("head.weight").Float32s()[0]
	if same != (n == 0) {
		t.Errorf("with an external teacher: %d projections, weights equal to training without projection: %v", n, same)
	}
	t.Logf("with an external teacher: %d projections in 20 steps", n)
}
