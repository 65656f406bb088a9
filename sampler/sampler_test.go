package sampler

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// maxArch is a supernet whose layers are at the space's maxima: every sampled subnet must be
// valid against it.
func maxArch(t testing.TB, sp arch.Space) arch.Arch {
	t.Helper()
	a := arch.Default()
	a.Layers = arch.Uniform(slices.Max(sp.DepthChoices),
		arch.Layer{Heads: slices.Max(sp.HeadChoices), MLP: slices.Max(sp.MLPChoices)})
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Validate(a); err != nil {
		t.Fatal(err)
	}
	return a
}

func keys(subnets []arch.Subnet) string {
	k := make([]string, len(subnets))
	for i, s := range subnets {
		k[i] = s.Key()
	}
	return strings.Join(k, " | ")
}

func mustNew(t testing.TB, cfg Config, sp arch.Space) Sampler {
	t.Helper()
	s, err := New(cfg, sp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func samplers(t testing.TB) []Sampler {
	sp := arch.DefaultSpace()
	return []Sampler{
		mustNew(t, Config{Kind: KindSandwich, Seed: 3, Random: 2}, sp),
		mustNew(t, Config{Kind: KindUniform, Seed: 3, Random: 3}, sp),
		mustNew(t, Config{Kind: KindProgressive, Seed: 3, Random: 2, Stages: DefaultStages(40)}, sp),
	}
}

func TestDeterminism(t *testing.T) {
	const steps = 100
	for _, s := range samplers(t) {
		t.Run(s.Name(), func(t *testing.T) {
			// In order, as an uninterrupted run samples.
			forward := make([]string, steps)
			for step := range steps {
				forward[step] = keys(s.Sample(step))
			}
			// Again, in a scrambled order, from a fresh sampler built from the same config,
			// as a resumed run (or a concurrent one) would.
			fresh := samplers(t)
			var again Sampler
			for _, f := range fresh {
				if f.Name() == s.Name() {
					again = f
				}
			}
			for i := range steps {
				step := (i*37 + 11) % steps // a permutation of 0..steps-1
				if got := keys(again.Sample(step)); got != forward[step] {
					t.Fatalf("step %d: out of order got %s, in order %s", step, got, forward[step])
				}
				if got := keys(s.Sample(step)); got != forward[step] {
					t.Fatalf("step %d: second call got %s, first %s", step, got, forward[step])
				}
			}
			// Different steps draw different subnets (the progressive sampler trains the
			// largest alone for its first stage, so look at its last one).
			distinct := map[string]bool{}
			for _, k := range forward[20:] {
				distinct[k] = true
			}
			if n := len(distinct); n < len(forward[20:])*9/10 {
				t.Errorf("only %d distinct draws over %d steps", n, len(forward[20:]))
			}
		})
	}
}

func TestSeedChangesStream(t *testing.T) {
	sp := arch.DefaultSpace()
	a, b := Sandwich{Space: sp, Seed: 1, Random: 2}, Sandwich{Space: sp, Seed: 2, Random: 2}
	same := 0
	for step := range 100 {
		if keys(a.Sample(step)) == keys(b.Sample(step)) {
			same++
		}
	}
	if same > 5 {
		t.Errorf("seeds 1 and 2 drew the same subnets at %d of 100 steps", same)
	}
}

func TestMixIsInjective(t *testing.T) {
	seen := map[uint64]string{}
	for step := range 300 {
		for _, index := range []int{0, 1, 2, 3, 17, MaxDraws - 1} {
			m := mix(step, index)
			at := fmt.Sprintf("(%d, %d)", step, index)
			if prev, ok := seen[m]; ok {
				t.Fatalf("mix%s == mix%s", at, prev)
			}
			seen[m] = at
		}
	}
}

func TestMoreRandomKeepsEarlierDraws(t *testing.T) {
	sp := arch.DefaultSpace()
	for step := range 20 {
		few := Sandwich{Space: sp, Seed: 9, Random: 2}.Sample(step)
		many := Sandwich{Space: sp, Seed: 9, Random: 5}.Sample(step)
		if keys(many[:len(few)]) != keys(few) {
			t.Fatalf("step %d: Random 5 starts %s, Random 2 gives %s", step, keys(many[:len(few)]), keys(few))
		}
	}
}

func TestSandwichStructure(t *testing.T) {
	tests := []struct {
		name   string
		space  arch.Space
		random int
		want   int // subnets per step
	}{
		{"default space, no random", arch.DefaultSpace(), 0, 2},
		{"default space", arch.DefaultSpace(), 2, 4},
		{"default space, many", arch.DefaultSpace(), 7, 9},
		{"depth only", arch.Space{HeadChoices: []int{4}, MLPChoices: []int{256}, DepthChoices: []int{1, 2, 3, 4}}, 3, 5},
		{"one subnet", arch.Space{HeadChoices: []int{2}, MLPChoices: []int{32}, DepthChoices: []int{3}}, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := maxArch(t, tt.space)
			s := mustNew(t, Config{Kind: KindSandwich, Seed: 5, Random: tt.random}, tt.space)
			for step := range 50 {
				got := s.Sample(step)
				if len(got) != tt.want {
					t.Fatalf("step %d: %d subnets, want %d", step, len(got), tt.want)
				}
				if !got[0].Equal(tt.space.Largest()) {
					t.Fatalf("step %d: first is %s, want the largest %s", step, got[0], tt.space.Largest())
				}
				if len(got) > 1 && !got[1].Equal(tt.space.Smallest()) {
					t.Fatalf("step %d: second is %s, want the smallest %s", step, got[1], tt.space.Smallest())
				}
				for i, sub := range got {
					if err := sub.Validate(a); err != nil {
						t.Fatalf("step %d, subnet %d %s: %v", step, i, sub, err)
					}
					checkWithin(t, sub, tt.space)
				}
			}
		})
	}
}

// checkWithin fails unless every choice of sub is in sp and its layers are the first ones.
func checkWithin(t *testing.T, sub arch.Subnet, sp arch.Space) {
	t.Helper()
	if !slices.Contains(sp.DepthChoices, sub.Depth()) {
		t.Fatalf("%s: depth %d not in %v", sub, sub.Depth(), sp.DepthChoices)
	}
	for i, l := range sub.Layers {
		if l.Layer != i {
			t.Fatalf("%s: entry %d runs layer %d; Once-for-All keeps the first layers", sub, i, l.Layer)
		}
		if !slices.Contains(sp.HeadChoices, l.Heads) {
			t.Fatalf("%s: layer %d heads %d not in %v", sub, i, l.Heads, sp.HeadChoices)
		}
		if !slices.Contains(sp.MLPChoices, l.MLP) {
			t.Fatalf("%s: layer %d MLP %d not in %v", sub, i, l.MLP, sp.MLPChoices)
		}
	}
}

// chiSquare returns Pearson's statistic of counts against equal expected frequencies.
func chiSquare(counts map[int]int, choices []int) float64 {
	total := 0
	for _, c := range choices {
		total += counts[c]
	}
	e := float64(total) / float64(len(choices))
	x := 0.0
	for _, c := range choices {
		d := float64(counts[c]) - e
		x += d * d / e
	}
	return x
}

// chi2Crit001 is the chi-square critical value at p = 0.001 by degrees of freedom. The seed
// is fixed, so the test cannot flake; the bound only has to catch a biased sampler.
var chi2Crit001 = map[int]float64{1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}

func TestUniformMarginals(t *testing.T) {
	sp := arch.Space{HeadChoices: []int{1, 2, 3, 4}, MLPChoices: []int{64, 128, 192, 256}, DepthChoices: []int{1, 2, 3, 4, 5}}
	a := maxArch(t, sp)
	u := Uniform{Space: sp, Seed: 7, Count: 5}
	depth, heads, mlp := map[int]int{}, map[int]int{}, map[int]int{}
	headsAt := make([]map[int]int, 5) // per layer: checks layers draw independently of depth
	for i := range headsAt {
		headsAt[i] = map[int]int{}
	}
	const steps = 1000
	for step := range steps {
		got := u.Sample(step)
		if len(got) != u.Count || !got[0].Equal(sp.Largest()) {
			t.Fatalf("step %d: got %d subnets starting %s, want %d starting with the largest", step, len(got), got[0], u.Count)
		}
		for _, sub := range got[1:] {
			if err := sub.Validate(a); err != nil {
				t.Fatalf("step %d: %s: %v", step, sub, err)
			}
			checkWithin(t, sub, sp)
			depth[sub.Depth()]++
			for i, l := range sub.Layers {
				heads[l.Heads]++
				mlp[l.MLP]++
				headsAt[i][l.Heads]++
			}
		}
	}
	check := func(name string, counts map[int]int, choices []int) {
		x, crit := chiSquare(counts, choices), chi2Crit001[len(choices)-1]
		t.Logf("%s: counts %v, chi-square %.2f (bound %.2f)", name, counts, x, crit)
		if x > crit {
			t.Errorf("%s not uniform: counts %v, chi-square %.2f > %.2f", name, counts, x, crit)
		}
	}
	check("depth", depth, sp.DepthChoices)
	check("heads", heads, sp.HeadChoices)
	check("mlp", mlp, sp.MLPChoices)
	for i, c := range headsAt {
		check(fmt.Sprintf("layer %d heads", i), c, sp.HeadChoices)
	}
}

func TestProgressiveStages(t *testing.T) {
	sp := arch.DefaultSpace() // heads 1-4, MLP 64-256, depth 2-4
	stages := []Stage{
		{Until: 100, Depth: 1, Heads: 1, MLP: 1},
		{Until: 300, Depth: 2, Heads: 1, MLP: 1},
		{Until: 500, Depth: 0, Heads: 1, MLP: 2},
		{Until: 700, Depth: 0, Heads: 2, MLP: 0},
		{Until: 900, Depth: 0, Heads: 0, MLP: 0},
	}
	s := mustNew(t, Config{Kind: KindProgressive, Seed: 11, Random: 3, Stages: stages}, sp)
	p := s.(Progressive)
	tests := []struct {
		step               int
		stage              int
		depth, heads, mlps []int
		subnetsPerStep     int
	}{
		{0, 0, []int{4}, []int{4}, []int{256}, 1},
		{99, 0, []int{4}, []int{4}, []int{256}, 1},
		{100, 1, []int{3, 4}, []int{4}, []int{256}, 5},
		{299, 1, []int{3, 4}, []int{4}, []int{256}, 5},
		{300, 2, []int{2, 3, 4}, []int{4}, []int{192, 256}, 5},
		{500, 3, []int{2, 3, 4}, []int{3, 4}, []int{64, 128, 192, 256}, 5},
		{700, 4, []int{2, 3, 4}, []int{1, 2, 3, 4}, []int{64, 128, 192, 256}, 5},
		{5000, 4, []int{2, 3, 4}, []int{1, 2, 3, 4}, []int{64, 128, 192, 256}, 5}, // past the end: last stage
	}
	for _, tt := range tests {
		if got := p.StageAt(tt.step); got != tt.stage {
			t.Errorf("StageAt(%d) = %d, want %d", tt.step, got, tt.stage)
		}
		u := p.Unlocked(tt.step)
		if !slices.Equal(u.DepthChoices, tt.depth) || !slices.Equal(u.HeadChoices, tt.heads) || !slices.Equal(u.MLPChoices, tt.mlps) {
			t.Errorf("Unlocked(%d) = %+v, want depth %v heads %v mlp %v", tt.step, u, tt.depth, tt.heads, tt.mlps)
		}
		if got := p.Sample(tt.step); len(got) != tt.subnetsPerStep {
			t.Errorf("Sample(%d) gave %d subnets, want %d", tt.step, len(got), tt.subnetsPerStep)
		}
	}

	// Every step: the teacher is the full largest, the second the smallest unlocked, nothing
	// locked is drawn, and each stage's unlocked choices all turn up (so they really unlock).
	a := maxArch(t, sp)
	type seen struct{ depth, heads, mlp map[int]bool }
	perStage := make([]seen, len(stages))
	for i := range perStage {
		perStage[i] = seen{map[int]bool{}, map[int]bool{}, map[int]bool{}}
	}
	prev := p.Unlocked(0)
	for step := range 1000 {
		u := p.Unlocked(step)
		for _, pair := range [][2][]int{{prev.DepthChoices, u.DepthChoices}, {prev.HeadChoices, u.HeadChoices}, {prev.MLPChoices, u.MLPChoices}} {
			for _, c := range pair[0] {
				if !slices.Contains(pair[1], c) {
					t.Fatalf("step %d locks %d again (unlocked %+v, before %+v)", step, c, u, prev)
				}
			}
		}
		prev = u
		got := p.Sample(step)
		if !got[0].Equal(sp.Largest()) {
			t.Fatalf("step %d: teacher %s, want %s", step, got[0], sp.Largest())
		}
		if len(got) > 1 && !got[1].Equal(u.Smallest()) {
			t.Fatalf("step %d: second %s, want the smallest unlocked %s", step, got[1], u.Smallest())
		}
		st := perStage[p.StageAt(step)]
		for _, sub := range got {
			if err := sub.Validate(a); err != nil {
				t.Fatalf("step %d: %s: %v", step, sub, err)
			}
			checkWithin(t, sub, u)
			st.depth[sub.Depth()] = true
			for _, l := range sub.Layers {
				st.heads[l.Heads] = true
				st.mlp[l.MLP] = true
			}
		}
	}
	for i, st := range perStage {
		u := p.Unlocked(stages[i].Until - 1)
		for _, c := range []struct {
			name string
			seen map[int]bool
			want []int
		}{{"depth", st.depth, u.DepthChoices}, {"heads", st.heads, u.HeadChoices}, {"mlp", st.mlp, u.MLPChoices}} {
			got := slices.Sorted(func(yield func(int) bool) {
				for k := range c.seen {
					if !yield(k) {
						return
					}
				}
			})
			if !slices.Equal(got, c.want) {
				t.Errorf("stage %d drew %s %v, want all of %v", i, c.name, got, c.want)
			}
		}
	}
}

func TestProgressiveFullyUnlockedIsSandwich(t *testing.T) {
	sp := arch.DefaultSpace()
	p := Progressive{Space: sp, Seed: 4, Random: 3, Stages: []Stage{{Until: 10, Depth: 1, Heads: 1, MLP: 1}, {}}}
	sw := Sandwich{Space: sp, Seed: 4, Random: 3}
	none := Progressive{Space: sp, Seed: 4, Random: 3}
	for step := 10; step < 60; step++ {
		if got, want := keys(p.Sample(step)), keys(sw.Sample(step)); got != want {
			t.Fatalf("step %d: progressive %s, sandwich %s", step, got, want)
		}
		if got, want := keys(none.Sample(step)), keys(sw.Sample(step)); got != want {
			t.Fatalf("step %d: progressive without stages %s, sandwich %s", step, got, want)
		}
	}
}

func TestDefaultStages(t *testing.T) {
	for _, total := range []int{-1, 0, 1, 2, 3, 5, 10, 40, 1000, 1_000_000} {
		stages := DefaultStages(total)
		cfg := Config{Kind: KindProgressive, Random: 2, Stages: stages}
		if err := cfg.Validate(); err != nil {
			t.Errorf("DefaultStages(%d) = %+v: %v", total, stages, err)
			continue
		}
		if stages[len(stages)-1] != (Stage{}) {
			t.Errorf("DefaultStages(%d): last stage %+v, want every choice forever", total, stages[len(stages)-1])
		}
		if total >= 1 && len(stages) != 4 {
			t.Errorf("DefaultStages(%d) has %d stages, want 4", total, len(stages))
		}
		if _, err := New(cfg, arch.DefaultSpace()); err != nil {
			t.Errorf("DefaultStages(%d) with the default space: %v", total, err)
		}
	}
	got := DefaultStages(1000)
	want := []Stage{{100, 1, 1, 1}, {250, 0, 1, 1}, {500, 0, 1, 0}, {0, 0, 0, 0}}
	if !slices.Equal(got, want) {
		t.Errorf("DefaultStages(1000) = %+v, want %+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	prog := func(stages ...Stage) Config { return Config{Kind: KindProgressive, Random: 2, Stages: stages} }
	tests := []struct {
		name  string
		cfg   Config
		field string // "" for a valid config
	}{
		{"default", DefaultConfig(), ""},
		{"uniform", Config{Kind: KindUniform, Random: 3}, ""},
		{"uniform, teacher only", Config{Kind: KindUniform}, ""},
		{"progressive", prog(DefaultStages(100)...), ""},
		{"progressive, one stage forever", prog(Stage{}), ""},
		{"progressive, last stage bounded", prog(Stage{Until: 5, Depth: 1}, Stage{Until: 9, Depth: 2}), ""},
		{"empty kind", Config{Random: 2}, "sampler.kind"},
		{"unknown kind", Config{Kind: "Sandwich", Random: 2}, "sampler.kind"},
		{"negative random", Config{Kind: KindSandwich, Random: -1}, "sampler.random"},
		{"huge random", Config{Kind: KindSandwich, Random: MaxDraws}, "sampler.random"},
		{"most random", Config{Kind: KindSandwich, Random: MaxRandom}, ""},
		{"most random, uniform", Config{Kind: KindUniform, Random: MaxRandom}, ""},
		{"random over the maximum", Config{Kind: KindSandwich, Random: MaxRandom + 1}, "sampler.random"},
		{"random over the maximum, uniform", Config{Kind: KindUniform, Random: MaxRandom + 1}, "sampler.random"},
		{"a million random, progressive", prog(DefaultStages(100)...).withRandom(1000000), "sampler.random"},
		{"a million random (no step completes)", Config{Kind: KindSandwich, Random: 1000000}, "sampler.random"},
		{"stages without progressive", Config{Kind: KindSandwich, Random: 2, Stages: DefaultStages(10)}, "sampler.stages"},
		{"progressive without stages", prog(), "sampler.stages"},
		{"negative until", prog(Stage{Until: -3}), "sampler.stages[0].until"},
		{"forever too early", prog(Stage{Until: 0}, Stage{Until: 10}), "sampler.stages[0].until"},
		{"equal until", prog(Stage{Until: 10}, Stage{Until: 10}, Stage{}), "sampler.stages[1].until"},
		{"decreasing until", prog(Stage{Until: 10}, Stage{Until: 20}, Stage{Until: 15}), "sampler.stages[2].until"},
		{"negative depth", prog(Stage{Depth: -1}), "sampler.stages[0].depth"},
		{"negative heads", prog(Stage{Until: 4}, Stage{Heads: -2}), "sampler.stages[1].heads"},
		{"relocking mlp", prog(Stage{Until: 4, MLP: 3}, Stage{MLP: 2}), "sampler.stages[1].mlp"},
		{"relocking after all", prog(Stage{Until: 4}, Stage{Until: 8}, Stage{Heads: 1}), "sampler.stages[2].heads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tt.cfg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error naming %s", tt.cfg, tt.field)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %q does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field+":") {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			if _, nerr := New(tt.cfg, arch.DefaultSpace()); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New gave %v, want the Validate error %v", nerr, err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	sp := arch.DefaultSpace()
	for _, tt := range []struct {
		cfg  Config
		want Sampler
	}{
		{Config{Kind: KindSandwich, Seed: 8, Random: 2}, Sandwich{Space: sp, Seed: 8, Random: 2}},
		{Config{Kind: KindUniform, Seed: 8, Random: 2}, Uniform{Space: sp, Seed: 8, Count: 3}},
		{Config{Kind: KindProgressive, Seed: 8, Random: 2, Stages: DefaultStages(50)},
			Progressive{Space: sp, Seed: 8, Random: 2, Stages: DefaultStages(50)}},
	} {
		got := mustNew(t, tt.cfg, sp)
		if got.Name() != tt.cfg.Kind {
			t.Errorf("Name() = %q, want %q", got.Name(), tt.cfg.Kind)
		}
		for step := range 50 {
			if g, w := keys(got.Sample(step)), keys(tt.want.Sample(step)); g != w {
				t.Fatalf("%s step %d: New's sampler drew %s, the struct %s", tt.cfg.Kind, step, g, w)
			}
		}
	}

	// The sampler owns its space: later edits to the caller's slices change nothing.
	own := sp.Clone()
	s, err := NewForRun(DefaultConfig(), own, 10)
	if err != nil {
		t.Fatal(err)
	}
	before := keys(s.Sample(3))
	own.HeadChoices[0], own.DepthChoices[2] = 99, 1
	if after := keys(s.Sample(3)); after != before {
		t.Errorf("editing the space passed to New changed the draws: %s, then %s", before, after)
	}

	plain := Config{Kind: KindSandwich, Random: 2} // New refuses DefaultConfig's warm phase
	bad := []struct {
		name  string
		cfg   Config
		space arch.Space
		want  string
		is    error
	}{
		{"empty heads", plain, arch.Space{MLPChoices: []int{8}, DepthChoices: []int{1}}, "space.head_choices", arch.ErrArch},
		{"unsorted mlp", plain, arch.Space{HeadChoices: []int{1}, MLPChoices: []int{8, 4}, DepthChoices: []int{1}}, "space.mlp_choices", arch.ErrArch},
		{"zero depth", plain, arch.Space{HeadChoices: []int{1}, MLPChoices: []int{8}, DepthChoices: []int{0, 1}}, "space.depth_choices", arch.ErrArch},
		{"stage unlocks more than the space has", Config{Kind: KindProgressive, Stages: []Stage{{Until: 5, Heads: 1}, {Heads: 5}}},
			sp, "sampler.stages[1].heads:", ErrConfig},
	}
	for _, tt := range bad {
		_, err := New(tt.cfg, tt.space)
		if err == nil || !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error wrapping %v naming %s", tt.name, err, tt.is, tt.want)
		}
	}
}

func TestPanics(t *testing.T) {
	sp := arch.DefaultSpace()
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"negative step", func() { Sandwich{Space: sp, Random: 1}.Sample(-1) }},
		{"negative random", func() { Sandwich{Space: sp, Random: -1}.Sample(0) }},
		{"zero count", func() { Uniform{Space: sp}.Sample(0) }},
		{"stage beyond the space", func() { Progressive{Space: sp, Stages: []Stage{{MLP: 9}}}.Sample(0) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg, ok := r.(string); !ok || !strings.HasPrefix(msg, "sampler: ") {
					t.Errorf("recovered %v, want a panic prefixed \"sampler: \"", r)
				}
			}()
			tt.f()
		})
	}
}

// TestGolden pins the stream: any change to mix, the PCG seeding or the order of draws
// changes every run's subnets and must be deliberate (go test ./sampler -run Golden -update).
func TestGolden(t *testing.T) {
	s := Sandwich{Space: arch.DefaultSpace(), Seed: 1, Random: 2}
	var b strings.Builder
	for step := range 3 {
		for i, sub := range s.Sample(step) {
			fmt.Fprintf(&b, "step %d subnet %d: %s\n", step, i, sub.Key())
		}
	}
	path := filepath.Join("testdata", "sandwich.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("Sandwich{DefaultSpace, Seed 1, Random 2} drew\n%s\nwant (%s)\n%s", got, path, want)
	}
}

// FuzzSample checks that whatever New accepts samples valid, deterministic subnets.
func FuzzSample(f *testing.F) {
	f.Add(uint8(0), uint64(1), uint32(0), uint8(2), uint16(100))
	f.Add(uint8(1), uint64(7), uint32(12345), uint8(0), uint16(0))
	f.Add(uint8(2), uint64(99), uint32(40), uint8(3), uint16(60))
	sp := arch.Space{HeadChoices: []int{1, 2, 3, 4}, MLPChoices: []int{64, 128, 192, 256}, DepthChoices: []int{1, 2, 3, 4}}
	a := maxArch(f, sp)
	kinds := []string{KindSandwich, KindUniform, KindProgressive}
	f.Fuzz(func(t *testing.T, kind uint8, seed uint64, step uint32, random uint8, total uint16) {
		cfg := Config{Kind: kinds[int(kind)%len(kinds)], Seed: seed, Random: int(random % 16)}
		if cfg.Kind == KindProgressive {
			cfg.Stages = DefaultStages(int(total))
		}
		s := mustNew(t, cfg, sp)
		got := s.Sample(int(step))
		if len(got) == 0 || !got[0].Equal(sp.Largest()) {
			t.Fatalf("%+v step %d: %s, want the largest first", cfg, step, keys(got))
		}
		for _, sub := range got {
			if err := sub.Validate(a); err != nil {
				t.Fatalf("%+v step %d: %s: %v", cfg, step, sub, err)
			}
		}
		if again := keys(s.Sample(int(step))); again != keys(got) {
			t.Fatalf("%+v step %d: %s, then %s", cfg, step, keys(got), again)
		}
	})
}

func BenchmarkSample(b *testing.B) {
	for _, s := range samplers(b) {
		b.Run(s.Name(), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				s.Sample(i)
			}
		})
	}
}

func (c Config) withRandom(n int) Config { c.Random = n; return c }

// TestReuseDraws: with Config.Reuse every random draw becomes, with that probability, a
// subnet of at most half the largest depth whose layers run twice; the largest and
// smallest subnets stay, reuse 0 draws what a sampler without the field draws, and a
// configuration asking for reuse without random draws is rejected by name.
func TestReuseDraws(t *testing.T) {
	sp := arch.DefaultSpace()
	plain, err := New(Config{Kind: KindSandwich, Seed: 3, Random: 2}, sp)
	if err != nil {
		t.Fatal(err)
	}
	zero, _ := New(Config{Kind: KindSandwich, Seed: 3, Random: 2, Reuse: 0}, sp)
	all, _ := New(Config{Kind: KindSandwich, Seed: 3, Random: 2, Reuse: 1}, sp)
	half, _ := New(Config{Kind: KindSandwich, Seed: 3, Random: 2, Reuse: 0.5}, sp)
	reused := 0
	for step := 0; step < 200; step++ {
		p, z, a, h := plain.Sample(step), zero.Sample(step), all.Sample(step), half.Sample(step)
		for i := range p {
			if !p[i].Equal(z[i]) {
				t.Fatalf("step %d draw %d: reuse 0 gives %s, no reuse %s", step, i, z[i], p[i])
			}
		}
		if !a[0].Equal(sp.Largest()) || !a[1].Equal(sp.Smallest()) {
			t.Fatalf("step %d: reuse changed the sandwich's ends: %v", step, a[:2])
		}
		for _, s := range a[2:] {
			if s.Depth() != 2 || !s.Repeats() || s.Positions() != 4 {
				t.Fatalf("step %d: reuse draw %s, want 2 layers each run twice", step, s)
			}
			if err := s.Validate(arch.Default()); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range h[2:] {
			if s.Repeats() {
				reused++
				continue
			}
			if !s.Equal(p[2+i]) {
				t.Fatalf("step %d draw %d: a draw that is not reused is %s, want the plain draw %s", step, 2+i, s, p[2+i])
			}
		}
	}
	if reused < 160 || reused > 240 { // 400 draws at probability 0.5
		t.Errorf("reuse 0.5 reused %d of 400 draws", reused)
	}
	for _, c := range []Config{{Kind: KindSandwich, Reuse: 0.5}, {Kind: KindSandwich, Random: 1, Reuse: 1.5}} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sampler.reuse") {
			t.Errorf("%+v: got %v, want an error naming sampler.reuse", c, err)
		}
	}
}
