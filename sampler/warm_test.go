package sampler

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

// TestWarmPhase: with a warm fraction the first round(f·total) steps train the largest
// subnet alone and every later step draws exactly what the sampler without a warm phase
// draws at that step, for every kind.
func TestWarmPhase(t *testing.T) {
	sp := arch.DefaultSpace()
	const total = 40
	for _, cfg := range []Config{
		{Kind: KindSandwich, Seed: 3, Random: 2},
		{Kind: KindUniform, Seed: 3, Random: 3},
		{Kind: KindProgressive, Seed: 3, Random: 1, Stages: DefaultStages(total)},
	} {
		for _, f := range []float64{0, 0.3, 1} {
			plain := mustNew(t, cfg, sp)
			w := cfg
			w.WarmFraction = f
			s, err := NewForRun(w, sp, total)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name() != cfg.Kind {
				t.Errorf("%s warm %g: Name() = %q", cfg.Kind, f, s.Name())
			}
			warm := int(math.Round(f * total))
			if got := WarmSteps(f, total); got != warm {
				t.Errorf("WarmSteps(%g, %d) = %d, want %d", f, total, got, warm)
			}
			for step := range total + 5 {
				want := keys(plain.Sample(step))
				if step < warm {
					want = sp.Largest().Key()
				}
				if got := keys(s.Sample(step)); got != want {
					t.Fatalf("%s warm %g step %d: drew %s, want %s", cfg.Kind, f, step, got, want)
				}
			}
		}
	}
}

func TestWarmConfig(t *testing.T) {
	sp := arch.DefaultSpace()
	for _, f := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		cfg := Config{Kind: KindSandwich, WarmFraction: f}
		err := cfg.Validate()
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "sampler.warm_fraction:") {
			t.Errorf("warm_fraction %g: Validate = %v, want an error naming sampler.warm_fraction", f, err)
		}
		if _, nerr := NewForRun(cfg, sp, 10); nerr == nil || err == nil || nerr.Error() != err.Error() {
			t.Errorf("warm_fraction %g: NewForRun = %v, want the Validate error %v", f, nerr, err)
		}
	}
	// New does not know the run's length, so it refuses a warm phase instead of ignoring it.
	if _, err := New(Config{Kind: KindSandwich, WarmFraction: 0.5}, sp); err == nil ||
		!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "sampler.warm_fraction") {
		t.Errorf("New with a warm phase = %v, want an error naming sampler.warm_fraction", err)
	}
	if _, err := NewForRun(Config{Kind: KindSandwich}, sp, -1); err == nil || !errors.Is(err, ErrConfig) {
		t.Errorf("NewForRun of -1 steps = %v, want ErrConfig", err)
	}
}
