package checkpoint

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// newFileMode is the permission of a checkpoint that replaces no existing file.
const newFileMode = 0o644

// WriteFile writes f to path atomically: it encodes f into a temporary file in the same
// directory, syncs and closes it, renames it over path and syncs the directory. Readers
// and crashes therefore see either the old file or the complete new one. On any error the
// temporary file is removed and an existing file at path is left untouched (except when
// only the final directory sync fails, after the rename). A replaced file keeps its
// permission bits; a new one gets 0644. Errors name path.
func WriteFile(path string, f *File) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	tmp, err := os.CreateTemp(dir, base+".tmp-*")
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

	perm := fs.FileMode(newFileMode)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := tmp.Chmod(perm); err != nil {
		return withPath(path, ioErr("setting permissions: %w", err))
	}
	if err := Encode(tmp, f); err != nil {
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
