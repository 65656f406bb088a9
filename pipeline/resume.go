package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ofa-go/ofa/modelfile"
)

// ErrDamaged is wrapped when a resumed lifecycle finds a step's outputs complete but
// unreadable.
var ErrDamaged = errors.New("a finished step's outputs cannot be read")

// errStale is wrapped by a resume loader when a step's outputs are complete and readable
// but were made with other settings (e.g. another step count): the step is redone.
var errStale = errors.New("made with other settings")

// resumeOrMake returns the outputs of the step whose directory is dir: when resuming and
// dir is complete (its model file is there and no incomplete marker), what load reads
// from it; otherwise (not resuming, nothing there yet, a step that did not finish, or
// outputs load reports as errStale) what make makes, which writes dir itself. A complete
// directory that load cannot read is an error, not a silent redo: it names a damaged
// result that a fresh run (--force) or removing the directory replaces.
func resumeOrMake[T any](resume bool, dir string, load func() (T, error), make func() (T, error)) (T, error) {
	if resume && complete(dir) {
		v, err := load()
		switch {
		case err == nil:
			return v, nil
		case !errors.Is(err, errStale):
			var zero T
			return zero, fmt.Errorf("%w: %s: %w; remove it to redo that step, or start over with --force", ErrDamaged, dir, err)
		}
	}
	return make()
}

// complete reports whether dir holds a step's finished outputs: its model file, and no
// incomplete marker (modelfile.BeginDir) left by a step that did not finish.
func complete(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, FileModel)); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, modelfile.MarkerIncomplete))
	return errors.Is(err, fs.ErrNotExist)
}

// trainingPasses is the cost of training on one example in forward passes: the forward
// pass and the backward pass (counted as two forward passes).
const trainingPasses = 3

// trainingMACs is the training MACs per example of one step that trains models of forward
// MACs forward (summed over the models trained at that step), distilled from a teacher of
// forward MACs teacher (0: none), which only runs forward.
func trainingMACs(forward, teacher float64) float64 {
	return trainingPasses*forward + teacher
}
