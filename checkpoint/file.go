package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ofa-go/ofa/dirlock"
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

// writeAtomic is WriteFile with the encoding left to write. A path that names something
// other than a regular file is never replaced: a character device or a named pipe is
// written through (as cp does: /dev/null, /dev/stdout, a pipe a reader waits on), a
// symbolic link to a regular file has its target replaced (the link stays), and a
// directory, a block device, a socket or a dangling link is refused with an error
// saying what it is.
func writeAtomic(path string, newPerm fs.FileMode, write func(*os.File) error) (err error) {
	target, through, err := writeTarget(path)
	if err != nil {
		return withPath(path, err)
	}
	if through {
		return writeThrough(path, write)
	}
	dir, base := filepath.Dir(target), filepath.Base(target)
	tmp, err := os.CreateTemp(dir, base+tempInfix+"*")
	if err != nil {
		return withPath(path, ioErr("creating temporary file: %w", err))
	}
	// a held temporary file is a live write: RemoveStaleTemps leaves it alone. Windows
	// cannot rename an open file, so there the file is closed before the rename and not held.
	hold := runtime.GOOS != "windows" && dirlock.HoldFile(tmp) == nil
	renamed, closed := false, false
	defer func() {
		if !closed {
			tmp.Close() // a second Close after a failed step only reports os.ErrClosed
		}
		if err != nil && !renamed {
			os.Remove(tmp.Name())
		}
	}()

	perm := newPerm.Perm()
	if fi, err := os.Stat(target); err == nil {
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
	if !hold {
		closed = true
		if err := tmp.Close(); err != nil {
			return withPath(path, ioErr("closing: %w", err))
		}
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return withPath(path, ioErr("replacing: %w", err))
	}
	renamed = true
	if !closed {
		closed = true
		if err := tmp.Close(); err != nil {
			return withPath(path, ioErr("closing: %w", err))
		}
	}
	if err := syncDir(dir); err != nil {
		return withPath(path, ioErr("syncing directory after rename: %w", err))
	}
	return nil
}

// writeTarget says where writeAtomic writes path: the file to replace (path itself, or
// a symbolic link's target), or through (path is a character device or a named pipe).
func writeTarget(path string) (target string, through bool, err error) {
	li, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, false, nil
	}
	if err != nil {
		return "", false, ioErr("%w", err)
	}
	target = path
	fi := li
	if li.Mode()&fs.ModeSymlink != 0 {
		if fi, err = os.Stat(path); err != nil {
			return "", false, ioErr("a symbolic link whose target cannot be written (%w): give a file path", err)
		}
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return "", false, ioErr("resolving the symbolic link %s: %w", path, err)
		}
	}
	m := fi.Mode()
	switch {
	case m.IsRegular():
		return target, false, nil
	case m.IsDir():
		return "", false, ioErr("is a directory: give the path of a file to write, for example one inside it")
	case m&fs.ModeCharDevice != 0, m&fs.ModeNamedPipe != 0:
		return target, true, nil
	}
	return "", false, ioErr("is a %s, not a regular file: it is not replaced; give a file path", kindOf(m))
}

// kindOf names a non-regular file mode for errors.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file (" + m.Type().String() + ")"
}

// writeThrough writes into the existing character device or named pipe at path without
// creating, truncating or replacing it. A pipe with no reader is an error, not a wait.
func writeThrough(path string, write func(*os.File) error) error {
	f, err := openThrough(path)
	if err != nil {
		return withPath(path, ioErr("writing through: %w", err))
	}
	if err := write(f); err != nil {
		f.Close()
		return withPath(path, err)
	}
	if err := f.Close(); err != nil {
		return withPath(path, ioErr("closing: %w", err))
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
// in subdirectories, never any other file, never one whose writer still runs: writeAtomic
// holds its temporary file's lock while writing), and returns their paths in name order. Call it
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
		if dirlock.Busy(path) {
			continue // its writer is still running (writeAtomic holds it)
		}
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
	if err := checkRegular(path); err != nil {
		return nil, err
	}
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

// ReadMetadata reads only the header of the checkpoint at path and returns its metadata,
// after checking the header and the tensor layout as ReadFile does (without reading the
// tensor data): a quick look at what a file describes. Errors name path.
func ReadMetadata(path string, lim Limits) (map[string]string, error) {
	if err := checkRegular(path); err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, &cpError{err: err}
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, &cpError{err: err}
	}
	meta, _, _, err := decodeHeader(fh, fi.Size(), lim.withDefaults())
	if err != nil {
		return nil, withPath(path, err)
	}
	return meta, nil
}

// checkRegular refuses, before opening it, a path that is not a regular file (or a link to
// one): a checkpoint is read at offsets, and opening a named pipe with no writer would
// block forever.
func checkRegular(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return &cpError{err: err} // *fs.PathError names path
	}
	if !fi.Mode().IsRegular() {
		what := "not a regular file"
		if fi.IsDir() {
			what = "a directory"
		} else if fi.Mode()&fs.ModeNamedPipe != 0 {
			what = "a named pipe"
		} else if fi.Mode()&fs.ModeDevice != 0 {
			what = "a device"
		}
		return withPath(path, ioErr("is %s: a checkpoint must be a regular file", what))
	}
	return nil
}
