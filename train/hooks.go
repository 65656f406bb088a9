package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/ofa-go/ofa/data"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ProgressHook draws a progress bar (to w, normally standard error) with the loss, the
// training accuracy of the teacher subnet, throughput and the estimated time left, and
// prints each evaluation under it.
type ProgressHook struct {
	bar      *progressbar.ProgressBar
	w        io.Writer
	start    time.Time
	samples  int
	emaLoss  float64
	emaAcc   float64
	lastDesc time.Time
	// Split names the evaluation data in printed lines ("test" by default).
	Split string

	plain       bool // no terminal: print lines instead of a bar
	title       string
	total, done int
}

// NewProgressHook makes a bar for a run of total steps, starting at step done. When w is
// not a terminal (a log file, CI) it prints a plain line every 5% instead of redrawing a bar.
func NewProgressHook(w io.Writer, title string, total, done int) *ProgressHook {
	if f, ok := w.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return &ProgressHook{w: w, start: time.Now(), plain: true, title: title, total: total, done: done}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(title),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	if done > 0 {
		_ = bar.Set(done)
	}
	return &ProgressHook{bar: bar, w: w, start: time.Now()}
}

// OnStep implements Hook.
func (h *ProgressHook) OnStep(t *Trainer, s StepStats) error {
	h.samples += s.Samples
	if h.emaLoss == 0 {
		h.emaLoss, h.emaAcc = s.Loss, s.TrainAcc
	}
	h.emaLoss = 0.95*h.emaLoss + 0.05*s.Loss
	h.emaAcc = 0.95*h.emaAcc + 0.05*s.TrainAcc
	if h.plain {
		every := max(1, h.total/20)
		if s.Step%every == 0 || s.Step == h.total {
			elapsed := time.Since(h.start).Seconds()
			rate := float64(h.samples) / elapsed
			eta := time.Duration(float64(h.total-s.Step) / float64(max(1, s.Step-h.done)) * elapsed * float64(time.Second))
			fmt.Fprintf(h.w, "%s %d/%d (%.0f%%) epoch %.2f loss %.3f acc %.3f %.0f samples/s, %s left\n", h.title, s.Step, h.total,
				100*float64(s.Step)/float64(h.total), s.Epoch, h.emaLoss, h.emaAcc, rate, eta.Round(time.Second))
		}
		return nil
	}
	if time.Since(h.lastDesc) > 250*time.Millisecond || s.Step == t.TotalSteps() {
		rate := float64(h.samples) / time.Since(h.start).Seconds()
		h.bar.Describe(fmt.Sprintf("epoch %.2f loss %.3f acc %.3f %4.0f samples/s", s.Epoch, h.emaLoss, h.emaAcc, rate))
		h.lastDesc = time.Now()
	}
	return h.bar.Set(s.Step)
}

// OnEval implements Hook.
func (h *ProgressHook) OnEval(t *Trainer, e EvalStats) error {
	split := h.Split
	if split == "" {
		split = "test"
	}
	msg := fmt.Sprintf("\nstep %d (epoch %.2f) %s accuracy:", e.Step, e.Epoch, split)
	for _, s := range e.Subnets {
		msg += fmt.Sprintf(" %s %.2f%%", s.Name, 100*s.Accuracy)
	}
	fmt.Fprintln(h.w, msg)
	return nil
}

// MetricsHook appends one JSON object per line to a file: a "step" record every Every
// steps and an "eval" record for every evaluation.
type MetricsHook struct {
	f     *os.File
	enc   *json.Encoder
	Every int
	// Dropped is how many lines NewMetricsHookResumed cut from the file.
	Dropped int
}

// NewMetricsHook opens (appending to) path. A resumed run opens it with
// NewMetricsHookResumed instead, or its repeated steps are recorded twice.
func NewMetricsHook(path string, every int) (*MetricsHook, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: metrics file: %w", err)
	}
	if every < 1 {
		every = 1
	}
	return &MetricsHook{f: f, enc: json.NewEncoder(f), Every: every}, nil
}

// NewMetricsHookResumed opens path for a run resumed at step resumedStep: it first cuts
// the file after its last record of a step <= resumedStep, so the steps the resumed run
// repeats (those a killed run wrote after its last resume state) are not recorded twice.
// Evaluation records of earlier steps stay; a torn last line (a write cut short by the
// kill) goes. A line in the middle that is not a JSON record with a step is an error
// naming the file and the line. A missing file is created. Dropped says how many lines
// were cut.
func NewMetricsHookResumed(path string, every, resumedStep int) (*MetricsHook, error) {
	dropped, err := truncateMetrics(path, resumedStep)
	if err != nil {
		return nil, err
	}
	h, err := NewMetricsHook(path, every)
	if err != nil {
		return nil, err
	}
	h.Dropped = dropped
	return h, nil
}

// maxMetricsBytes bounds the metrics file a resumed run reads back (a 40-epoch full run
// writes under 1 MB).
const maxMetricsBytes = 256 << 20

// truncateMetrics cuts the metrics file at path before its first line that is torn (the
// last one, without its newline) or records a step after resumedStep, and returns how many
// lines it cut.
func truncateMetrics(path string, resumedStep int) (dropped int, err error) {
	b, err := data.ReadFileLimited(path, maxMetricsBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("train: metrics file: %w", err)
	}
	cut, line := len(b), 0
	for off := 0; off < len(b); line++ {
		end := bytes.IndexByte(b[off:], '\n')
		if end < 0 { // torn: the process died in the middle of this line
			cut = off
			break
		}
		var r struct {
			Step *int `json:"step"`
		}
		if err := json.Unmarshal(b[off:off+end], &r); err != nil || r.Step == nil {
			if err == nil {
				err = errors.New("no step")
			}
			return 0, fmt.Errorf("train: metrics file %s: line %d is not a metrics record (%v); want one JSON object with a step per line", path, line+1, err)
		}
		if *r.Step > resumedStep {
			cut = off
			break
		}
		off += end + 1
	}
	if cut == len(b) {
		return 0, nil
	}
	dropped = bytes.Count(b[cut:], []byte{'\n'})
	if b[len(b)-1] != '\n' {
		dropped++
	}
	if err := os.Truncate(path, int64(cut)); err != nil {
		return 0, fmt.Errorf("train: metrics file: cutting records after step %d: %w", resumedStep, err)
	}
	return dropped, nil
}

// Close closes the file.
func (h *MetricsHook) Close() error { return h.f.Close() }

// stepRecord and evalRecord are the lines of the metrics file. (One struct embedding both
// stats would lose their step and epoch: encoding/json drops fields that collide.)
type stepRecord struct {
	Type string `json:"type"`
	Time string `json:"time"`
	StepStats
}

type evalRecord struct {
	Type string `json:"type"`
	Time string `json:"time"`
	EvalStats
}

// OnStep implements Hook.
func (h *MetricsHook) OnStep(t *Trainer, s StepStats) error {
	if s.Step%h.Every != 0 && s.Step != t.TotalSteps() {
		return nil
	}
	return h.enc.Encode(stepRecord{Type: "step", Time: time.Now().UTC().Format(time.RFC3339), StepStats: s})
}

// OnEval implements Hook.
func (h *MetricsHook) OnEval(t *Trainer, e EvalStats) error {
	return h.enc.Encode(evalRecord{Type: "eval", Time: time.Now().UTC().Format(time.RFC3339), EvalStats: e})
}

// CheckpointHook saves the resume state every Every steps and when the run is interrupted,
// and calls OnSave after each evaluation (to write the current model).
type CheckpointHook struct {
	Every      int
	Save       func(t *Trainer) error // writes the resume state
	OnEvalSave func(t *Trainer, e EvalStats) error
	// LastStep is the step of the last resume state written.
	LastStep int
}

// OnStep implements Hook.
func (h *CheckpointHook) OnStep(t *Trainer, s StepStats) error {
	if h.Every > 0 && s.Step%h.Every == 0 {
		return h.save(t)
	}
	return nil
}

// OnEval implements Hook.
func (h *CheckpointHook) OnEval(t *Trainer, e EvalStats) error {
	if h.Every == 0 {
		if err := h.save(t); err != nil {
			return err
		}
	}
	if h.OnEvalSave != nil {
		return h.OnEvalSave(t, e)
	}
	return nil
}

// OnInterrupt saves the state before the run stops.
func (h *CheckpointHook) OnInterrupt(t *Trainer) error { return h.save(t) }

func (h *CheckpointHook) save(t *Trainer) error {
	if err := h.Save(t); err != nil {
		return err
	}
	h.LastStep = t.Step()
	return nil
}

// BestHook keeps the best model by an evaluation's accuracy for one named subnet (the
// validation split during fine-tuning): Save is called whenever it improves.
type BestHook struct {
	Name     string
	Save     func(t *Trainer, e EvalStats) error
	Best     float64
	BestStep int
	seen     bool
}

// Resume continues a run that stopped: the best accuracy so far was best, at step (0: no
// evaluation yet).
func (h *BestHook) Resume(best float64, step int) {
	h.seen, h.Best, h.BestStep = step > 0, best, step
}

// OnStep implements Hook.
func (h *BestHook) OnStep(*Trainer, StepStats) error { return nil }

// OnEval implements Hook.
func (h *BestHook) OnEval(t *Trainer, e EvalStats) error {
	for _, s := range e.Subnets {
		if s.Name == h.Name && (!h.seen || s.Accuracy > h.Best) {
			h.seen, h.Best, h.BestStep = true, s.Accuracy, e.Step
			return h.Save(t, e)
		}
	}
	return nil
}
