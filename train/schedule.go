package train

import "math"

// Schedule is the learning rate as a pure function of the step: a linear warmup from 0 to
// Peak over Warmup steps, then a cosine decay from Peak to Min at Total steps. A pure
// function of the step is what lets a resumed run use exactly the rate the uninterrupted
// run would have used.
type Schedule struct {
	Peak   float64
	Min    float64
	Warmup int
	Total  int
}

// At returns the learning rate for step (0-based).
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup)
	}
	if s.Total <= s.Warmup || step >= s.Total {
		if step >= s.Total && s.Total > s.Warmup {
			return s.Min
		}
		return s.Peak
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	return s.Min + 0.5*(s.Peak-s.Min)*(1+math.Cos(math.Pi*progress))
}
