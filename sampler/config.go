package sampler

import (
	"errors"
	"fmt"
	"math"

	"github.com/ofa-go/ofa/arch"
)

// Sampler kinds, as written in Config.Kind.
const (
	KindSandwich    = "sandwich"
	KindUniform     = "uniform"
	KindProgressive = "progressive"
	KindBudgets     = "budgets"
)

// ErrConfig is wrapped by every error about an invalid sampler configuration.
var ErrConfig = errors.New("invalid sampler config")

// Config chooses and parameterises a sampler; viper fills it, Validate checks it and New
// builds the sampler.
type Config struct {
	// Kind is "sandwich", "uniform", "progressive" or "budgets" (BudgetAware: the largest
	// subnet and one subnet per budget of the run each step, built by NewForBudgets).
	Kind string `mapstructure:"kind" json:"kind"`
	// Seed selects the run's subnet stream; with the step it fixes every draw.
	Seed uint64 `mapstructure:"seed" json:"seed"`
	// Random is the number of uniformly drawn subnets per step besides the teacher (and,
	// for sandwich and progressive, the smallest subnet), 0..MaxRandom. A uniform sampler
	// therefore trains Random+1 subnets per step.
	Random int `mapstructure:"random" json:"random"`
	// Stages is the progressive-shrinking schedule; only for kind "progressive", which
	// needs at least one stage (see DefaultStages).
	Stages []Stage `mapstructure:"stages" json:"stages"`
	// WarmFraction trains the largest subnet alone for this fraction of the run's steps
	// before the sampler of Kind takes over (a dense warm phase, so that the teacher is
	// useful before anyone distils from it); 0: none, 1: the largest alone throughout. It
	// needs the run's length: see NewForRun.
	WarmFraction float64 `mapstructure:"warm_fraction" json:"warm_fraction,omitempty"`
	// Reuse is the probability that a random draw is a reuse draw instead (reuse-aware
	// supernet training): a subnet of at most half the largest depth whose every layer runs
	// twice in a row, as an expanded model's "repeat:2" positions with open gates run it.
	// 0 (the default) never; it needs Random >= 1. See ReuseDraw.
	Reuse float64 `mapstructure:"reuse" json:"reuse,omitempty"`
	// BudgetBand, for kind "budgets", is how far below its limit a budget's subnet may
	// fall, as a fraction of the limit (see BudgetAware.Band).
	BudgetBand float64 `mapstructure:"budget_band" json:"budget_band,omitempty"`
	// BudgetMLPStep, for kind "budgets", is the granularity of a budget subnet's MLP
	// widths (see BudgetAware.MLPStep); 0 means DefaultBudgetMLPStep.
	BudgetMLPStep int `mapstructure:"budget_mlp_step" json:"budget_mlp_step,omitempty"`
	// BudgetFixed, for kind "budgets", trains one fixed subnet per budget (PreNAS's
	// preferred architectures) instead of a fresh draw at each step; the extraction's
	// search at that budget then starts from it. BudgetSubnets implies it.
	BudgetFixed bool `mapstructure:"budget_fixed" json:"budget_fixed,omitempty"`
	// BudgetOnly, for kind "budgets", trains after the warm phase only the budgets'
	// subnets, not the largest (PreNAS trains only its preferred architectures): a step
	// then costs about what the budgets' models trained alone cost. The subnets need a
	// fixed teacher to distil from (run.teacher), since the largest is not there.
	BudgetOnly bool `mapstructure:"budget_only" json:"budget_only,omitempty"`
	// BudgetSubnets, for kind "budgets", names the subnet trained for each budget of
	// run.budgets, in that order, instead of a random draw (PreNAS's preferred
	// architectures, chosen before training: for example the sizes an earlier run's
	// extraction found, or the architecture you deploy), each as {layers: [{layer, heads,
	// mlp}, ...]} with the supernet's layer numbers. Implies BudgetFixed; each
	// must fit its budget. Empty: drawn.
	BudgetSubnets []arch.Subnet `mapstructure:"budget_subnets" json:"budget_subnets,omitempty"`
}

// FixedBudgets says whether a "budgets" sampler of c trains the same subnet for a budget
// at every step (budget_fixed, or the subnets of budget_subnets).
func (c Config) FixedBudgets() bool { return c.BudgetFixed || len(c.BudgetSubnets) > 0 }

// DefaultBudgetBand and DefaultBudgetMLPStep are the budget sampler's defaults: a budget's
// subnet uses 90-100% of its limit, and MLP widths come in steps of 8 neurons (the
// extraction's smallest MLP floor).
const (
	DefaultBudgetBand    = 0.1
	DefaultBudgetMLPStep = 8
)

// MaxRandom bounds Config.Random. Each random subnet adds a forward and a backward pass of
// up to the largest subnet's size to every training step: at 16 a sandwich step trains 18
// subnets instead of 2. (Sampler structs accept up to MaxDraws subnets a step, but with a
// million random subnets no step ever completes.)
const MaxRandom = 16

// DefaultConfig is the recipe the grid of docs/RECIPES.md chose: the largest subnet alone
// for the first quarter of the run, then the sandwich rule without random subnets (the
// largest and the smallest each step). BigNAS's two random subnets per step cost twice the
// compute and lost accuracy on every subnet in that grid's short runs. It has a warm phase,
// so build it with NewForRun.
func DefaultConfig() Config {
	return Config{Kind: KindSandwich, Random: 0, WarmFraction: 0.25}
}

// Validate checks the configuration on its own (New also checks the stages against the
// search space); errors wrap ErrConfig and name the field, e.g. "sampler.stages[1].until".
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: sampler.%s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	switch c.Kind {
	case KindSandwich, KindProgressive, KindUniform, KindBudgets:
	default:
		return bad("kind", "got %q, want %q, %q, %q or %q", c.Kind, KindSandwich, KindUniform, KindProgressive, KindBudgets)
	}
	if !(c.BudgetBand >= 0 && c.BudgetBand < 1) {
		return bad("budget_band", "got %g, want a fraction in [0, 1)", c.BudgetBand)
	}
	if c.BudgetMLPStep < 0 {
		return bad("budget_mlp_step", "got %d, want >= 1 (0: %d)", c.BudgetMLPStep, DefaultBudgetMLPStep)
	}
	if c.Kind != KindBudgets && (c.BudgetBand != 0 || c.BudgetMLPStep != 0 || c.BudgetFixed || c.BudgetOnly || len(c.BudgetSubnets) > 0) {
		return bad("budget_band", "budget_band, budget_mlp_step, budget_fixed, budget_only and budget_subnets are for kind %q only, got kind %q", KindBudgets, c.Kind)
	}
	for i, s := range c.BudgetSubnets {
		if len(s.Layers) == 0 {
			return bad(fmt.Sprintf("budget_subnets[%d]", i), "got no layers, want a subnet {layers: [{layer, heads, mlp}, ...]}")
		}
		for j, l := range s.Layers {
			if l.Repeat > 1 {
				return bad(fmt.Sprintf("budget_subnets[%d].layers[%d].repeat", i, j), "got %d: a budget's subnet runs each layer once", l.Repeat)
			}
		}
	}
	if c.Random < 0 || c.Random > MaxRandom {
		return bad("random", "got %d, want 0..%d (each random subnet adds a forward and a backward pass to every step)", c.Random, MaxRandom)
	}
	if !(c.WarmFraction >= 0 && c.WarmFraction <= 1) {
		return bad("warm_fraction", "got %g, want in [0, 1]", c.WarmFraction)
	}
	if !(c.Reuse >= 0 && c.Reuse <= 1) {
		return bad("reuse", "got %g, want a probability in [0, 1]", c.Reuse)
	}
	if c.Reuse > 0 && c.Random < 1 {
		return bad("reuse", "got %g with random %d: reuse replaces random draws, so it needs random >= 1", c.Reuse, c.Random)
	}
	if c.Kind != KindProgressive {
		if len(c.Stages) > 0 {
			return bad("stages", "got %d stages, but only kind %q uses stages", len(c.Stages), KindProgressive)
		}
		return nil
	}
	if len(c.Stages) == 0 {
		return bad("stages", "kind %q needs at least one stage", KindProgressive)
	}
	last := len(c.Stages) - 1
	for i, st := range c.Stages {
		field := func(name string) string { return fmt.Sprintf("stages[%d].%s", i, name) }
		switch {
		case st.Until < 0:
			return bad(field("until"), "got %d, want a positive step (or 0 for forever in the last stage)", st.Until)
		case st.Until == 0 && i < last:
			return bad(field("until"), "got 0 (forever), allowed only in the last stage")
		case i > 0 && st.Until != 0 && st.Until <= c.Stages[i-1].Until:
			return bad(field("until"), "got %d, want more than stages[%d].until = %d (stages must be increasing)",
				st.Until, i-1, c.Stages[i-1].Until)
		}
		counts := []struct {
			name string
			n    int
			prev int
		}{{"depth", st.Depth, 0}, {"heads", st.Heads, 0}, {"mlp", st.MLP, 0}}
		if i > 0 {
			p := c.Stages[i-1]
			counts[0].prev, counts[1].prev, counts[2].prev = p.Depth, p.Heads, p.MLP
		}
		for _, n := range counts {
			if n.n < 0 {
				return bad(field(n.name), "got %d, want a number of choices >= 1, or 0 for all", n.n)
			}
			if i > 0 && unlocked(n.n) < unlocked(n.prev) {
				want := fmt.Sprintf("at least %d", n.prev)
				if n.prev == 0 {
					want = "0 (all)"
				}
				return bad(field(n.name), "got %d, want %s as in stages[%d]: stages may only unlock choices",
					n.n, want, i-1)
			}
		}
	}
	return nil
}

// unlocked orders unlock counts, 0 (all) being the most.
func unlocked(n int) int {
	if n == 0 {
		return int(^uint(0) >> 1)
	}
	return n
}

// New validates cfg and space and returns the sampler they describe. The sampler keeps its
// own copy of space and of the stages. A configuration with a warm phase needs the run's
// length: use NewForRun.
func New(cfg Config, space arch.Space) (Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kind == KindBudgets {
		return nil, fmt.Errorf("%w: sampler.kind: %q needs the run's budgets (use NewForBudgets)", ErrConfig, KindBudgets)
	}
	if cfg.WarmFraction > 0 {
		return nil, fmt.Errorf("%w: sampler.warm_fraction: %g is a fraction of the run, whose length New does not know (use NewForRun)",
			ErrConfig, cfg.WarmFraction)
	}
	return newSampler(cfg, space)
}

// NewForRun is New for a run of totalSteps steps: with a warm fraction the sampler returns
// the largest subnet alone for the first round(WarmFraction·totalSteps) steps (see Warm).
// Kind "budgets" needs the run's budgets: see NewForBudgets.
func NewForRun(cfg Config, space arch.Space, totalSteps int) (Sampler, error) {
	return NewForBudgets(cfg, space, totalSteps, Budgets{})
}

// NewForBudgets is NewForRun with the run's budgets, which kind "budgets" trains for (other
// kinds ignore them).
func NewForBudgets(cfg Config, space arch.Space, totalSteps int, b Budgets) (Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if totalSteps < 0 {
		return nil, fmt.Errorf("%w: a run of %d steps", ErrConfig, totalSteps)
	}
	var s Sampler
	var err error
	if cfg.Kind == KindBudgets {
		s, err = newBudgetAware(cfg, space, b)
	} else {
		s, err = newSampler(cfg, space)
	}
	if err != nil || cfg.WarmFraction == 0 {
		return s, err
	}
	return Warm{Next: s, Space: space.Clone(), Steps: WarmSteps(cfg.WarmFraction, totalSteps)}, nil
}

// newBudgetAware builds the sampler of kind "budgets" for b.
func newBudgetAware(cfg Config, space arch.Space, b Budgets) (Sampler, error) {
	if err := checkSpace(space); err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	if len(b.Limits) == 0 {
		return nil, fmt.Errorf("%w: sampler.kind: %q needs the run's budgets (run.budgets), got none", ErrConfig, KindBudgets)
	}
	if err := space.Validate(b.Arch); err != nil {
		return nil, fmt.Errorf("sampler: the budgets' architecture: %w", err)
	}
	for i, l := range b.Limits {
		if l.Params <= 0 && l.MACs <= 0 {
			return nil, fmt.Errorf("%w: sampler.kind %q: budget %d limits neither parameters nor MACs (latency budgets are not sampled)",
				ErrConfig, KindBudgets, i)
		}
	}
	step := cfg.BudgetMLPStep
	if step == 0 {
		step = DefaultBudgetMLPStep
	}
	var chosen []arch.Subnet
	if n := len(cfg.BudgetSubnets); n > 0 {
		if n != len(b.Limits) {
			return nil, fmt.Errorf("%w: sampler.budget_subnets: got %d subnets for %d budgets (run.budgets), want one per budget in its order",
				ErrConfig, n, len(b.Limits))
		}
		for k, s := range cfg.BudgetSubnets {
			field := fmt.Sprintf("sampler.budget_subnets[%d]", k)
			if err := s.Validate(b.Arch); err != nil {
				return nil, fmt.Errorf("%w: %s (%s): %w", ErrConfig, field, s.Key(), err)
			}
			if f := fill(b.Arch, s, b.Limits[k]); f > 1 {
				c := b.Arch.SubnetCost(s)
				return nil, fmt.Errorf("%w: %s (%s): %d params and %d MACs per example exceed its budget %+v (%.0f%% of it)",
					ErrConfig, field, s.Key(), c.Params, c.MACs, b.Limits[k], 100*f)
			}
			chosen = append(chosen, s.Clone())
		}
	}
	return BudgetAware{Space: space.Clone(), Seed: cfg.Seed, Random: cfg.Random, Reuse: cfg.Reuse,
		Budgets: Budgets{Arch: b.Arch, Limits: append([]Limit(nil), b.Limits...)},
		Band:    cfg.BudgetBand, MLPStep: step, Fixed: cfg.FixedBudgets(), NoLargest: cfg.BudgetOnly, Chosen: chosen}, nil
}

// WarmSteps is the length of a warm phase of fraction f of a run of totalSteps steps.
func WarmSteps(f float64, totalSteps int) int {
	return int(math.Round(f * float64(totalSteps)))
}

// newSampler builds the sampler of a valid configuration, without its warm phase.
func newSampler(cfg Config, space arch.Space) (Sampler, error) {
	if err := checkSpace(space); err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	space = space.Clone()
	switch cfg.Kind {
	case KindSandwich:
		return Sandwich{Space: space, Seed: cfg.Seed, Random: cfg.Random, Reuse: cfg.Reuse}, nil
	case KindUniform:
		return Uniform{Space: space, Seed: cfg.Seed, Count: cfg.Random + 1, Reuse: cfg.Reuse}, nil
	}
	for i, st := range cfg.Stages {
		for _, n := range []struct {
			name    string
			n       int
			choices []int
		}{{"depth", st.Depth, space.DepthChoices}, {"heads", st.Heads, space.HeadChoices}, {"mlp", st.MLP, space.MLPChoices}} {
			if n.n > len(n.choices) {
				return nil, fmt.Errorf("%w: sampler.stages[%d].%s: got %d, but the space has only %d choices %v",
					ErrConfig, i, n.name, n.n, len(n.choices), n.choices)
			}
		}
	}
	return Progressive{Space: space, Seed: cfg.Seed, Random: cfg.Random, Reuse: cfg.Reuse,
		Stages: append([]Stage(nil), cfg.Stages...)}, nil
}

// checkSpace checks what the samplers rely on: non-empty lists of increasing positive
// choices. Whether the maxima match a supernet is for arch.Space.Validate.
func checkSpace(sp arch.Space) error {
	for _, c := range []struct {
		name string
		v    []int
	}{{"head_choices", sp.HeadChoices}, {"mlp_choices", sp.MLPChoices}, {"depth_choices", sp.DepthChoices}} {
		if len(c.v) == 0 {
			return fmt.Errorf("%w: space.%s is empty", arch.ErrArch, c.name)
		}
		for i, v := range c.v {
			if v < 1 || (i > 0 && v <= c.v[i-1]) {
				return fmt.Errorf("%w: space.%s %v must hold increasing positive values", arch.ErrArch, c.name, c.v)
			}
		}
	}
	return nil
}

// DefaultStages is a four-stage progressive-shrinking schedule over totalSteps, in
// Once-for-All's order: the largest subnet alone for the first 10% (so that it is a useful
// teacher), then elastic depth until 25%, then elastic MLP width too until 50%, and every
// choice (heads included) for the remaining half; the last stage lasts forever, so a run
// extended past totalSteps keeps the whole space. It uses only the counts 1 and 0 (all), so
// it suits any space. Stage boundaries are kept strictly increasing for tiny runs; a
// totalSteps below 1 gives a single stage with every choice unlocked.
func DefaultStages(totalSteps int) []Stage {
	if totalSteps < 1 {
		return []Stage{{}}
	}
	stages := []Stage{
		{Until: totalSteps / 10, Depth: 1, Heads: 1, MLP: 1},
		{Until: totalSteps / 4, Depth: 0, Heads: 1, MLP: 1},
		{Until: totalSteps / 2, Depth: 0, Heads: 1, MLP: 0},
		{Until: 0},
	}
	prev := 0
	for i := range stages[:len(stages)-1] {
		stages[i].Until = max(stages[i].Until, prev+1)
		prev = stages[i].Until
	}
	return stages
}
