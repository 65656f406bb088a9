package pipeline

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/latency/timing"
)

// lifecycleLatency measures the latency table of supernet a with lc and saves it at path,
// or, when resuming, loads the table there if it was measured for a with lc's batch,
// statistic and predictor. A table there that cannot be read is an error (ErrDamaged),
// not a silent measurement.
func lifecycleLatency(a arch.Arch, lc latency.Config, path string, opts LifecycleOptions) (*latency.Table, error) {
	if opts.Resume {
		t, err := latency.LoadTable(path)
		switch {
		case err == nil && t.Compatible(a) == nil && t.Batch == lc.Batch && t.Statistic == lc.Statistic && t.Predictor == lc.Predictor:
			opts.log("   reusing %s", path)
			return t, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%w: %s: %w; remove it to measure it again, or start over with --force", ErrDamaged, path, err)
		}
	}
	t, err := timing.Measure(a, lc, nil)
	if err != nil {
		return nil, err
	}
	return t, t.Save(path)
}

// latencyNote describes the lifecycle's latency table for the report, and says so when its
// predictions are off by more than latency.ErrorWarnPct on average: the row latencies are
// measured, but latency budgets rely on the predictions.
func latencyNote(t *latency.Table, path string) string {
	n := fmt.Sprintf("latency: batch %d, %s of %d samples by the %s clock, predictor %s; the table predicts whole-model latency within %.1f%% on average (%s)",
		t.Batch, t.Statistic, t.Repeats, t.Clock, t.Predictor, t.MeanAbsErrorPct, path)
	if t.MeanAbsErrorPct > latency.ErrorWarnPct {
		n += fmt.Sprintf("; WARNING: that mean error is above %.0f%%, so latency predictions (and latency budgets) are approximate on this machine: "+
			"time again on a quieter machine or with more repeats (run.latency_repeats, ofa latency-table --repeats)", latency.ErrorWarnPct)
	}
	return n
}
