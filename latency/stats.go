package latency

import (
	"math"
	"slices"
)

// The statistics here are written out rather than taken from gonum/stat on purpose: every
// median the tool reports is the mean of the two middle values for an even count, while
// stat.Quantile(0.5, stat.Empirical, ...) returns the lower one; IQR interpolates between
// order statistics at p·(n-1) (R's type 7), which neither of stat.Quantile's kinds does;
// and Concordance counts ties in y as half an agreement and skips ties in x, which
// stat.Kendall's tau does not. Changing any of them would change recorded tables.

// IQR is the interquartile range of v (quartiles interpolated linearly between order
// statistics); NaN for an empty v.
func IQR(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	q := func(p float64) float64 {
		x := p * float64(len(s)-1)
		i := int(x)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (x-float64(i))*(s[i+1]-s[i])
	}
	return q(0.75) - q(0.25)
}

// Concordance is the share of pairs (i, j) with x_i != x_j whose y are ordered as their
// x, a tie in y counting half; 1 when no pair has different x.
func Concordance(x, y []float64) float64 {
	pairs, agree := 0, 0.0
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			if x[i] == x[j] {
				continue
			}
			pairs++
			switch dx, dy := x[j]-x[i], y[j]-y[i]; {
			case dy == 0:
				agree += 0.5
			case (dx > 0) == (dy > 0):
				agree++
			}
		}
	}
	if pairs == 0 {
		return 1
	}
	return agree / float64(pairs)
}

// Median is the middle value of v, or the mean of the two middle values when len(v) is
// even; NaN for an empty v. v is not modified. Every median this tool reports (latency
// tables, benchmarks) is this one.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
