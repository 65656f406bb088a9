package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
)

// PipelineVariants are the rows the pipeline itself produces for a budget (the models a
// user of the tool would ship); every other row is a baseline they are compared with.
var PipelineVariants = []string{"extracted", "extracted+finetune", "expanded+finetune"}

// sameModelFlag starts the flag of a row that repeats an earlier row's model file.
const sameModelFlag = "the same model file as"

// EqualParamsTolerance is how far (relative) two rows' unique parameters may differ and
// still count as equal in size: an expanded model is compared with the extracted one at
// equal unique parameters.
const EqualParamsTolerance = 0.02

func isPipeline(variant string) bool {
	for _, v := range PipelineVariants {
		if v == variant {
			return true
		}
	}
	return false
}

// limits resolves a row's budget ("4x", "macs=1e6,params=40000") against the reference
// (the supernet's largest subnet), as the extraction did; ok is false for a budget that
// does not parse.
func (r *Report) limits(name string) (extract.Budget, bool) {
	t, err := budget.ParseFlag(name)
	if err != nil {
		return extract.Budget{}, false
	}
	b := extract.Budget{Params: t.Params, MACs: t.MACs, LatencyMS: t.LatencyMS}
	if t.ParamsMultiple > 0 {
		b.Params = max(1, int64(math.Floor(float64(r.Reference.Params)/t.ParamsMultiple)))
	}
	return b, true
}

// cost is what the budget's limits are compared with: unique parameters, MACs, and the
// measured latency (a latency budget is checked against it, not against the prediction).
func (row Row) cost() extract.Cost {
	return extract.Cost{Params: row.Params, MACs: row.MACs, LatencyMS: row.LatencyMS}
}

// Annotate sets each row's Flags: a row that is the same model file as an earlier row,
// an expanded model not at equal unique parameters with the extracted one (beyond
// EqualParamsTolerance), a model far below its budget (extract.FarBelow of its tightest
// limit) and a model over it. Write calls it.
func (r *Report) Annotate() {
	for i := range r.Rows {
		row := &r.Rows[i]
		row.Flags = nil
		for _, prev := range r.Rows[:i] {
			if row.Model != "" && prev.Model == row.Model && prev.Budget == row.Budget {
				row.Flags = append(row.Flags, fmt.Sprintf("%s %s, shown again under this name", sameModelFlag, prev.Variant))
				break
			}
		}
		if strings.HasPrefix(row.Variant, "expanded") {
			if ref, ok := r.find(row.Budget, "extracted+finetune", "extracted"); ok && ref.Params > 0 {
				if d := float64(row.Params-ref.Params) / float64(ref.Params); math.Abs(d) > EqualParamsTolerance {
					row.Flags = append(row.Flags, fmt.Sprintf("not at equal unique params: %+.1f%% against %s", 100*d, ref.Variant))
				}
			}
		}
		if b, ok := r.limits(row.Budget); ok {
			switch c := row.cost(); {
			case !b.Fits(c):
				row.Flags = append(row.Flags, fmt.Sprintf("over the budget (%s)", b))
			case b.Use(c) > 0 && b.Use(c) < extract.FarBelow:
				row.Flags = append(row.Flags, fmt.Sprintf("far below the budget: %.0f%% of its tightest limit", 100*b.Use(c)))
			}
		}
	}
}

// find is the first row of the budget with the first of the variants that has one.
func (r *Report) find(budgetName string, variants ...string) (Row, bool) {
	for _, v := range variants {
		for _, row := range r.Rows {
			if row.Budget == budgetName && row.Variant == v {
				return row, true
			}
		}
	}
	return Row{}, false
}

// Recommendation is, for one budget, the model to ship and whether a baseline beat it.
type Recommendation struct {
	Budget string `json:"budget"`
	// Ship is the most accurate pipeline row that fits the budget (ties: fewer unique
	// params, then the earlier row); empty when none fits.
	Ship string `json:"ship"`
	// Accuracy, Params and Model are Ship's.
	Accuracy float64 `json:"test_accuracy"`
	Params   int64   `json:"unique_params"`
	Model    string  `json:"model,omitempty"`
	// Baseline is the most accurate baseline row that fits the budget and is not the same
	// model file as a pipeline row; BaselineAccuracy, BaselineParams and BaselineModel are
	// its accuracy, unique parameters and model file.
	Baseline         string  `json:"baseline,omitempty"`
	BaselineAccuracy float64 `json:"baseline_test_accuracy,omitempty"`
	BaselineParams   int64   `json:"baseline_unique_params,omitempty"`
	BaselineModel    string  `json:"baseline_model,omitempty"`
	// BaselineWins says the baseline is more accurate than Ship; Margin is Baseline's
	// accuracy minus Ship's (fraction), and Noise the standard error of that difference
	// on the test split (binomial and unpaired, so an upper estimate for two models scored
	// on the same examples; one seed; 0 when the split's size is unknown).
	BaselineWins bool    `json:"baseline_wins"`
	Margin       float64 `json:"margin"`
	Noise        float64 `json:"noise,omitempty"`
	// ShipMACs and BaselineMACs are the two rows' training MACs (the supernet counted in
	// full for the pipeline, though every budget shares it).
	ShipMACs     float64 `json:"ship_train_macs"`
	BaselineMACs float64 `json:"baseline_train_macs,omitempty"`
}

// Recommend picks, per budget, the model to ship: the most accurate pipeline row within
// the budget; and the most accurate baseline within it, for comparison.
func (r *Report) Recommend() []Recommendation {
	var out []Recommendation
	for _, name := range r.Budgets() {
		b, parsed := r.limits(name)
		var ship, base *Row
		better := func(a *Row, b Row) bool {
			return a == nil || b.Accuracy > a.Accuracy || (b.Accuracy == a.Accuracy && b.Params < a.Params)
		}
		for i := range r.Rows {
			row := r.Rows[i]
			if row.Budget != name || (parsed && !b.Fits(row.cost())) {
				continue
			}
			if isPipeline(row.Variant) && better(ship, row) {
				ship = &r.Rows[i]
			}
		}
		pipelineModels := map[string]bool{} // a baseline row may be a pipeline model reported again
		for _, row := range r.Rows {
			if row.Budget == name && isPipeline(row.Variant) && row.Model != "" {
				pipelineModels[row.Model] = true
			}
		}
		for i := range r.Rows {
			row := r.Rows[i]
			if row.Budget != name || isPipeline(row.Variant) || (parsed && !b.Fits(row.cost())) || pipelineModels[row.Model] {
				continue
			}
			if better(base, row) {
				base = &r.Rows[i]
			}
		}
		rec := Recommendation{Budget: name}
		if ship != nil {
			rec.Ship, rec.Accuracy, rec.Params, rec.Model, rec.ShipMACs = ship.Variant, ship.Accuracy, ship.Params, ship.Model, ship.TrainMACs()
		}
		if base != nil {
			rec.Baseline, rec.BaselineAccuracy, rec.BaselineMACs = base.Variant, base.Accuracy, base.TrainMACs()
			rec.BaselineParams, rec.BaselineModel = base.Params, base.Model
			if ship != nil {
				rec.Margin = base.Accuracy - ship.Accuracy
				rec.BaselineWins = rec.Margin > 0
				if n := float64(r.TestExamples); n > 0 {
					rec.Noise = math.Sqrt((ship.Accuracy*(1-ship.Accuracy) + base.Accuracy*(1-base.Accuracy)) / n)
				}
			}
		}
		out = append(out, rec)
	}
	return out
}

// Choice is the model to ship at a recommendation's budget: the pipeline's (Ship) unless a
// baseline with a model file beat it beyond the noise, then that baseline's.
type Choice struct {
	Variant  string  `json:"variant"`
	Accuracy float64 `json:"test_accuracy"`
	Params   int64   `json:"unique_params"`
	Model    string  `json:"model,omitempty"`
	// Baseline says the choice is a baseline's model, not the pipeline's.
	Baseline bool `json:"baseline,omitempty"`
}

// Best is the model to ship at the budget (see Choice); the zero Choice when no row fits.
func (rec Recommendation) Best() Choice {
	if rec.Baseline != "" && rec.BaselineModel != "" && (rec.Ship == "" || (rec.BaselineWins && !rec.withinNoise())) {
		return Choice{Variant: rec.Baseline, Accuracy: rec.BaselineAccuracy, Params: rec.BaselineParams, Model: rec.BaselineModel, Baseline: true}
	}
	if rec.Ship == "" {
		return Choice{}
	}
	return Choice{Variant: rec.Ship, Accuracy: rec.Accuracy, Params: rec.Params, Model: rec.Model}
}

// recommendationMarkdown is the report's closing section.
func (r *Report) recommendationMarkdown() string {
	recs := r.Recommend()
	if len(recs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Recommendation\n\n")
	b.WriteString("A budget is a ceiling: only rows within it count (unique params and MACs as counted, latency as measured here). " +
		"For each budget: the model to ship, which is the pipeline's most accurate model within it unless a baseline beat it by more than the noise, " +
		"then that baseline's; the pipeline's model and the most accurate baseline within the budget are both shown. " +
		"Both are chosen by the test accuracy of this one run")
	if r.TestExamples > 0 {
		fmt.Fprintf(&b, " (%d test examples: a difference within twice its standard error, shown as ±, is called noise; the error is binomial and unpaired, an upper estimate)", r.TestExamples)
	}
	b.WriteString("; confirm a close call with more seeds before relying on it.\n\n")
	b.WriteString("| budget | ship | test accuracy | unique params | model file | the pipeline's model | its test accuracy | best baseline | its test accuracy | verdict |\n")
	b.WriteString("| --- | --- | ---: | ---: | --- | --- | ---: | --- | ---: | --- |\n")
	for _, rec := range recs {
		best := rec.Best()
		ship := best.Variant
		if best.Baseline {
			ship = "**" + ship + "** (a baseline)"
		}
		shipCells := fmt.Sprintf("%s | %.2f%% | %d | %s", ship, 100*best.Accuracy, best.Params, best.Model)
		if best.Variant == "" {
			shipCells = "nothing fits | | |"
		}
		pipe := rec.Ship
		if pipe == "" {
			pipe = "no pipeline model fits"
		}
		verdict := rec.Verdict()
		if rec.BaselineWins && !rec.withinNoise() {
			verdict = "**" + verdict + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", rec.Budget, shipCells, pipe, pct(rec.Accuracy, rec.Ship != ""),
			rec.Baseline, pct(rec.BaselineAccuracy, rec.Baseline != ""), verdict)
	}
	return b.String()
}

func pct(x float64, ok bool) string {
	if !ok {
		return ""
	}
	return fmt.Sprintf("%.2f%%", 100*x)
}

// Verdict says in words whether a baseline beat the pipeline at the recommendation's
// budget, by how much, and whether the difference is within the noise.
func (rec Recommendation) Verdict() string {
	if rec.Ship == "" {
		return "no pipeline model fits the budget"
	}
	verdict := "no baseline to compare"
	if rec.Baseline != "" {
		noise := ""
		if rec.Noise > 0 {
			noise = fmt.Sprintf(" ± %.2f", 100*rec.Noise)
		}
		close := rec.withinNoise()
		switch {
		case rec.BaselineWins && close:
			verdict = fmt.Sprintf("the baseline is ahead by %.2f%s points: within noise", 100*rec.Margin, noise)
		case rec.BaselineWins:
			verdict = fmt.Sprintf("the baseline beat the pipeline by %.2f%s points, with %s training MACs against the pipeline's %s (whose supernet every budget shares)",
				100*rec.Margin, noise, SI(rec.BaselineMACs), SI(rec.ShipMACs))
		case close:
			verdict = fmt.Sprintf("the pipeline is ahead by %.2f%s points: within noise", -100*rec.Margin, noise)
		default:
			verdict = fmt.Sprintf("the pipeline beat every baseline, by %.2f%s points", -100*rec.Margin, noise)
		}
	}
	return verdict
}

// withinNoise says the margin is within twice its standard error.
func (rec Recommendation) withinNoise() bool {
	return rec.Noise > 0 && math.Abs(rec.Margin) <= 2*rec.Noise
}
