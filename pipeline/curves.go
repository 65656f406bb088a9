package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/train"
)

// Names of the supernet's curves in reports.
const (
	curveLoss     = "supernet"
	curveAccuracy = "supernet (largest, test)"
)

// metricsCurves rebuilds the supernet's training curves from a run's metrics file, as the
// training's own curve hook draws them (the loss every 10 steps, the largest subnet's
// test accuracy at every evaluation): a resumed run's curves then cover the whole run,
// not only the steps after the resume, and a lifecycle that reuses a finished supernet
// still reports them (issue 29, finding 6).
func metricsCurves(path string) (loss, acc report.Curve, err error) {
	h, err := metricsCurveHook(path)
	if err != nil {
		return loss, acc, err
	}
	return h.lossCurve(curveLoss), h.accCurve(curveAccuracy, "largest"), nil
}

// metricsCurveHook replays a run's metrics file into a curve hook, as if it had watched
// the run.
func metricsCurveHook(path string) (*curveHook, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &curveHook{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxSideFile)
	for line := 1; sc.Scan(); line++ {
		var rec struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		switch rec.Type {
		case "step":
			var s train.StepStats
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			h.OnStep(nil, s)
		case "eval":
			var e train.EvalStats
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			h.OnEval(nil, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}
