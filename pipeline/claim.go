package pipeline

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/dirlock"
)

// Claim makes dir (creating it) this process's output directory: it takes the directory's
// exclusive lock, so that a second run on the same directory fails at once naming the
// holder's pid, then removes the temporary files that killed writers left in it and its
// subdirectories (only files of the tool's own temporary naming). release drops the lock.
func Claim(dir string) (release func() error, removed []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	unlock, err := dirlock.Lock(dir)
	if err != nil {
		return nil, nil, err
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
		unlock()
		return nil, nil, err
	}
	return unlock, removed, nil
}
