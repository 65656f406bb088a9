package modelfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ofa-go/ofa/data"

	"github.com/ofa-go/ofa/checkpoint"
)

// MarkerIncomplete is the file a step puts into its output directory before it writes
// anything there and removes when everything is written (CommitDir). A directory holding
// it is refused by readers: a crash or kill leaves it behind, so half-written outputs are
// never mistaken for results.
const MarkerIncomplete = ".ofa-incomplete"

// ErrIncomplete is wrapped when a model file lies in a directory whose writer did not finish.
var ErrIncomplete = errors.New("written by a step that has not finished")

// BeginDir creates dir if needed and marks it incomplete; what says which step writes it.
func BeginDir(dir, what string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return WriteJSON(filepath.Join(dir, MarkerIncomplete), map[string]any{"step": what, "pid": os.Getpid()})
}

// CommitDir marks dir complete: everything in it has been written.
func CommitDir(dir string) error {
	if err := os.Remove(filepath.Join(dir, MarkerIncomplete)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

// CheckComplete returns an error wrapping ErrIncomplete when the file at path lies in a
// directory marked incomplete.
func CheckComplete(path string) error {
	marker := filepath.Join(filepath.Dir(path), MarkerIncomplete)
	b, err := data.ReadFileLimited(marker, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var m struct {
		Step string `json:"step"`
	}
	_ = json.Unmarshal(b, &m)
	hint := "run the step again (or continue it with --resume where it has one)"
	if m.Step == "train" {
		hint = "finish the training run with `ofa train --out " + filepath.Dir(path) + " --resume`"
	}
	return fmt.Errorf("modelfile: %s: %w (%s is present): %s", path, ErrIncomplete, marker, hint)
}

// WriteJSON writes v as indented JSON to path atomically (temporary file, sync, rename,
// directory sync), so a reader sees the old file or the whole new one.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteAtomic(path, append(b, '\n'))
}

// WriteAtomic writes data to path atomically (checkpoint.WriteFileAtomic: the same
// temporary-file naming that RemoveStaleTemps cleans up after a crash).
func WriteAtomic(path string, data []byte) error {
	return checkpoint.WriteFileAtomic(path, data, 0o644)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
