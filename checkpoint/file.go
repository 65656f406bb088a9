package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// newFileMode is the permission of a checkpoint that replaces no existing file.
const newFileMode = 0o644

// tempInfix joins a file's name and a random decimal number in the name of the temporary
// file an atomic write goes through: "model.safetensors.tmp-123456789". RemoveStaleTemps
// recognises exactly these names.
const tempInfix = ".tmp-"

// WriteFile writes f to path atomically: it encodes f into a temporary file in the same
// directory, syncs and closes it, renames it over path and syncs the directory. Readers
// and crashes therefore see either the old file or the complete new one. On any error the
// temporary file is removed and an existing file at path is left untouched (except when
// only the final directory sync fails, after the rename). A replaced file keeps its
// permission bits; a new one gets 0644. Errors name path. A process killed mid-write
// leaves its temporary file behind: see RemoveStaleTemps.
func WriteFile(path string, f *File) error {
	return writeAtomic(path, newFileMode, func(w *os.File) error { return Encode(w, f) })
}

// WriteFileAtomic writes data to path as WriteFile writes a checkpoint (a temporary file
// in the same directory renamed over path, with the same temporary names): for the JSON,
// Markdown and other files written next to checkpoints. A replaced file keeps its
// permission bits; a new one gets perm. Errors name path.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return writeAtomic(path, perm, func(w *os.File) error {
		if _, err := w.Write(data); err != nil {
			return ioErr("writing: %w", err)
		}
		return nil
	})
}

// writeAtomic is WriteFile with the encoding left to write.
func writeAtomic(path string, newPerm fs.FileMode, write func(*os.File) error) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	tmp, err := os.CreateTemp(dir, base+tempInfix+"*")
	if err != nil {
		return withPath(path, ioErr("creating temporary file: %w", err))
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			tmp.Close() // a second Close after a failed step only reports os.ErrClosed
			os.Remove(tmp.Name())
		}
	}()

	perm := newPerm.Perm()
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := tmp.Chmod(perm); err != nil {
		return withPath(path, ioErr("setting permissions: %w", err))
	}
	if err := write(tmp); err != nil {
		return withPath(path, err)
	}
	if err := tmp.Sync(); err != nil {
		return withPath(path, ioErr("syncing: %w", err))
	}
	if err := tmp.Close(); err != nil {
		return withPath(path, ioErr("closing: %w", err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return withPath(path, ioErr("replacing: %w", err))
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return withPath(path, ioErr("syncing directory after rename: %w", err))
	}
	return nil
}

// IsTempName reports whether name (a base name) is that of a temporary file of WriteFile
// or WriteFileAtomic: a non-empty file name, ".tmp-" and the decimal digits os.CreateTemp
// puts in place of its "*".
func IsTempName(name string) bool {
	i := strings.LastIndex(name, tempInfix)
	if i < 1 {
		return false
	}
	digits := name[i+len(tempInfix):]
	if digits == "" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RemoveStaleTemps removes the temporary files that WriteFile and WriteFileAtomic left in
// dir when their process was killed mid-write (regular files named as IsTempName says; not
// in subdirectories, never any other file), and returns their paths in name order. Call it
// only while holding dir's lock (package dirlock): without it, the temporary file of a
// write still running in another process would be removed too. On an error it returns the
// paths removed so far and an error naming the file it could not remove.
func RemoveStaleTemps(dir string) (removed []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: removing stale temporary files: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTempName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("checkpoint: removing stale temporary file: %w", err)
		}
		removed = append(removed, path)
	}
	return removed, nil
}

// syncDir makes a rename in dir durable. Windows cannot open a directory for syncing,
// and NTFS journals renames itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// ReadFile reads and decodes the checkpoint at path under lim (see Decode). Errors name
// path; format errors wrap ErrBadCheckpoint.
func ReadFile(path string, lim Limits) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &cpError{err: err} // *fs.PathError names path
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, &cpError{err: err}
	}
	f, err := Decode(fh, fi.Size(), lim)
	if err != nil {
		return nil, withPath(path, err)
	}
	return f, nil
}

// withPath adds path to an error of this package that does not name a file yet.
func withPath(path string, err error) error {
	var ce *cpError
	if !errors.As(err, &ce) || ce.path != "" {
		return err
	}
	named := *ce
	named.path = path
	return &named
}
