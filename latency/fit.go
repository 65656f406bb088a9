package latency

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// BlockFit is a block's time as a + b·heads + c·width (ms), fitted to a table's entries by
// least absolute deviations, so that a few spoiled entries barely move it. A block's MACs
// are linear in heads and width and its per-op overhead constant, so the form fits both the
// overhead-bound small batches and the arithmetic-bound large ones.
type BlockFit struct {
	Intercept float64 `json:"intercept_ms"`
	PerHead   float64 `json:"per_head_ms"`
	PerNeuron float64 `json:"per_neuron_ms"`
	// StemMS is the stem under this fit: the median over shapes of OneMS minus the fit.
	StemMS float64 `json:"stem_ms"`
	// MeanAbsErrorPct is the checks' mean absolute error with this predictor.
	MeanAbsErrorPct float64 `json:"mean_abs_error_pct"`
}

// at is the fitted time of a block with h heads and m neurons (never negative).
func (f *BlockFit) at(h, m int) float64 {
	return math.Max(0, f.Intercept+f.PerHead*float64(h)+f.PerNeuron*float64(m))
}

// FitBlocks fits a + b·heads + c·width to the entries by least absolute deviations
// (iteratively reweighted least squares: each iteration solves the weighted normal
// equations with gonum's LU solver), and the stem under that fit.
func FitBlocks(blocks []Entry) *BlockFit {
	n := len(blocks)
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	var coef [3]float64
	var sol mat.VecDense
	for iter := 0; iter < 50; iter++ {
		// the weighted normal equations XᵀWX·coef = XᵀW·ms, X's rows (1, heads, width)
		a, b := mat.NewDense(3, 3, nil), mat.NewVecDense(3, nil)
		for i, e := range blocks {
			x := [3]float64{1, float64(e.Heads), float64(e.MLP)}
			for r := 0; r < 3; r++ {
				for c := 0; c < 3; c++ {
					a.Set(r, c, a.At(r, c)+w[i]*x[r]*x[c])
				}
				b.SetVec(r, b.AtVec(r)+w[i]*x[r]*e.MS)
			}
		}
		if err := sol.SolveVec(a, b); err != nil {
			break // singular or nearly so (a grid of one head count or one width): no line through it (see below)
		}
		coef = [3]float64{sol.AtVec(0), sol.AtVec(1), sol.AtVec(2)}
		for i, e := range blocks {
			r := math.Abs(e.MS - (coef[0] + coef[1]*float64(e.Heads) + coef[2]*float64(e.MLP)))
			w[i] = 1 / math.Max(r, 1e-9)
		}
	}
	f := &BlockFit{Intercept: coef[0], PerHead: coef[1], PerNeuron: coef[2]}
	if coef == [3]float64{} { // no solution: the entries' mean as a constant
		for _, e := range blocks {
			f.Intercept += e.MS / float64(n)
		}
	}
	stems := make([]float64, n)
	for i, e := range blocks {
		stems[i] = e.OneMS - f.at(e.Heads, e.MLP)
	}
	f.StemMS = math.Max(Median(stems), 0)
	return f
}
