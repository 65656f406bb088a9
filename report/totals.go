package report

import (
	"fmt"
	"math"
	"strings"
)

// ComputeTotal compares, over all budgets of a run, the training compute of one variant
// (the pipeline: a shared supernet plus an extraction and fine-tune per budget) with
// another's (one model trained per budget). A shared stage (Stage.Shared: the supernet, a
// teacher) is counted once in a total, however many rows build on it.
type ComputeTotal struct {
	Pipeline    string `json:"pipeline"`    // the variant of the pipeline's rows
	Alternative string `json:"alternative"` // the variant it is compared with
	Budgets     int    `json:"budgets"`     // budgets with a row of both variants
	// MACs are the totals; Shared is the part counted once, PerBudget the mean of the
	// rest per budget.
	PipelineMACs         float64 `json:"pipeline_train_macs"`
	AlternativeMACs      float64 `json:"alternative_train_macs"`
	PipelineShared       float64 `json:"pipeline_shared_macs"`
	AlternativeShared    float64 `json:"alternative_shared_macs"`
	PipelinePerBudget    float64 `json:"pipeline_per_budget_macs"`
	AlternativePerBudget float64 `json:"alternative_per_budget_macs"`
	// Seconds are the wall times, shared stages once; Complete says every stage was timed.
	PipelineSeconds    float64 `json:"pipeline_wall_seconds"`
	AlternativeSeconds float64 `json:"alternative_wall_seconds"`
	Complete           bool    `json:"wall_time_complete"`
	// BreakEven is the smallest number of budgets at which the pipeline's training MACs
	// are at most the alternative's (shared + K × per budget each); 0: never.
	BreakEven int `json:"break_even_budgets"`
}

// Totals compares the rows of variant pipeline with those of variant alternative over the
// budgets that have both; nil when none has.
func Totals(rows []Row, pipeline, alternative string) *ComputeTotal {
	byBudget := func(variant string) map[string]Row {
		m := map[string]Row{}
		for _, r := range rows {
			if r.Variant == variant {
				if _, ok := m[r.Budget]; !ok {
					m[r.Budget] = r
				}
			}
		}
		return m
	}
	p, a := byBudget(pipeline), byBudget(alternative)
	var ps, as []Row
	for _, r := range rows { // row order: deterministic
		if r.Variant != pipeline {
			continue
		}
		if ar, ok := a[r.Budget]; ok && p[r.Budget].Variant == pipeline {
			ps, as = append(ps, p[r.Budget]), append(as, ar)
			delete(p, r.Budget)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	c := &ComputeTotal{Pipeline: pipeline, Alternative: alternative, Budgets: len(ps), Complete: true}
	var pAll, aAll bool
	c.PipelineShared, c.PipelinePerBudget, c.PipelineSeconds, pAll = sumRows(ps)
	c.AlternativeShared, c.AlternativePerBudget, c.AlternativeSeconds, aAll = sumRows(as)
	c.Complete = pAll && aAll
	k := float64(len(ps))
	c.PipelineMACs = c.PipelineShared + k*c.PipelinePerBudget
	c.AlternativeMACs = c.AlternativeShared + k*c.AlternativePerBudget
	c.BreakEven = breakEven(c.PipelineShared, c.PipelinePerBudget, c.AlternativeShared, c.AlternativePerBudget)
	return c
}

// sumRows is the shared MACs of rows (each shared stage once, told apart by name, steps
// and MACs), the mean of their other MACs per row, their wall time (shared stages once)
// and whether every stage was timed.
func sumRows(rows []Row) (shared, perRow, seconds float64, complete bool) {
	seen := map[string]bool{}
	own := 0.0
	complete = true
	for _, r := range rows {
		for _, s := range r.Compute {
			complete = complete && !s.Untimed
			if s.Shared {
				key := fmt.Sprintf("%s|%d|%g", s.Name, s.Steps, s.MACs)
				if seen[key] {
					continue
				}
				seen[key] = true
				shared += s.MACs
			} else {
				own += s.MACs
			}
			seconds += s.Seconds
		}
	}
	return shared, own / float64(len(rows)), seconds, complete
}

// breakEven is the smallest K >= 1 with ps + K·pk <= as + K·ak, or 0 when there is none.
func breakEven(ps, pk, as, ak float64) int {
	if ps+pk <= as+ak {
		return 1
	}
	if ak <= pk {
		return 0
	}
	k := math.Ceil((ps - as) / (ak - pk))
	if k > math.MaxInt32 {
		return 0
	}
	return max(1, int(k))
}

// markdown is the totals' section of the report.
func (c *ComputeTotal) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Compute for all %d budgets\n\n", c.Budgets)
	b.WriteString("| | shared (counted once) | per budget (mean) | total training MACs | wall time (s) |\n| --- | ---: | ---: | ---: | ---: |\n")
	wall := func(s float64) string {
		if !c.Complete {
			return fmt.Sprintf("≥ %.1f", s)
		}
		return fmt.Sprintf("%.1f", s)
	}
	fmt.Fprintf(&b, "| pipeline (%s) | %s | %s | **%s** | %s |\n", c.Pipeline, SI(c.PipelineShared), SI(c.PipelinePerBudget), SI(c.PipelineMACs), wall(c.PipelineSeconds))
	fmt.Fprintf(&b, "| one model per budget (%s) | %s | %s | **%s** | %s |\n", c.Alternative, SI(c.AlternativeShared), SI(c.AlternativePerBudget), SI(c.AlternativeMACs), wall(c.AlternativeSeconds))
	switch {
	case c.BreakEven == 0:
		b.WriteString("\nBreak-even: never; each further budget costs the pipeline at least as much as one more model trained alone.\n")
	default:
		fmt.Fprintf(&b, "\nBreak-even: the pipeline needs fewer training MACs than %s from **%d budget(s)** on (shared + K × per budget on each side); this run has %d.\n",
			c.Alternative, c.BreakEven, c.Budgets)
	}
	return b.String()
}
