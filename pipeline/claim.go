package pipeline

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/dirlock"
)

// Claim makes dir (creating it) this process's output directory: it takes the directory's
// exclusive lock, so that a second run on the same directory, or on a directory above or
// inside it, fails at once naming the holder's pid, then removes the temporary files that
// killed writers left in it and its subdirectories (only files of the tool's own temporary
// naming, never one still being written). release drops the lock and removes the lock
// file and the directories Claim created if they are still empty, so a command that fails
// before writing anything leaves no trace.
func Claim(dir string) (release func() error, removed []string, err error) {
	created := missingDirs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	unlock, err := dirlock.Lock(dir)
	if err != nil {
		removeEmpty(created)
		return nil, nil, err
	}
	release = func() error {
		err := unlock()
		removeEmpty(created)
		return err
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		r, err := checkpoint.RemoveStaleTemps(path)
		removed = append(removed, r...)
		return err
	})
	if err != nil {
		release()
		return nil, nil, err
	}
	return release, removed, nil
}

// missingDirs lists dir and those of its parents that do not exist yet, deepest first.
func missingDirs(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}

// removeEmpty removes the directories (deepest first) that are empty; os.Remove leaves a
// directory with anything in it.
func removeEmpty(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}
