// Package dirlock gives one process at a time a directory: a run directory that a
// training, an extraction or a report writes into. The lock is an advisory lock (flock on
// Unix, LockFileEx on Windows) on the file LockName inside the directory, which holds the
// holder's process id so that a refused process can say who holds it. The operating
// system drops the lock when the holder exits, however it exits (kill -9 included), so a
// lock is never stale; the holder removes the file when it unlocks, and a file left by a
// killed holder is reused by the next one. A lock covers the directory's tree: a
// directory inside a locked one, or holding one, cannot be locked.
package dirlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// LockName is the lock file's name inside a locked directory.
const LockName = ".ofa.lock"

// ErrLocked is wrapped by Lock's error when another holder has the directory.
var ErrLocked = errors.New("directory in use")

// Lock takes the exclusive lock of dir, failing at once (without waiting) with an error
// wrapping ErrLocked and naming the holder's process id if another process, or another
// Lock call of this one, holds it. A lock covers the directory's whole tree: Lock is
// refused too while a directory above dir or below it is locked (a command writing D
// and another writing D/supernet would overwrite each other's files). dir must exist.
// The returned unlock removes the lock file and releases the lock; calling unlock again
// does nothing. Locks are advisory: only processes that call Lock respect it.
func Lock(dir string) (unlock func() error, err error) {
	path := filepath.Join(dir, LockName)
	f, err := lockOwn(dir, path)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	unlock = func() error {
		err := error(nil)
		once.Do(func() {
			// remove the file while still holding the lock, so that the directory is left
			// as it was found; a process that opened it meanwhile sees that its lock is on
			// a removed file and opens the path again (lockOwn)
			rerr := os.Remove(path)
			if errors.Is(rerr, fs.ErrNotExist) {
				rerr = nil
			}
			uerr := unlockFile(f)
			cerr := f.Close()
			if e := errors.Join(rerr, uerr, cerr); e != nil {
				err = fmt.Errorf("dirlock: unlocking %s: %w", dir, e)
			}
		})
		return err
	}
	// the pid is written after the lock is taken, so a refused process may briefly read an
	// empty or older file: holder says so
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("dirlock: writing the process id to %s: %w", path, err)
	}
	// the tree is checked after taking dir's own lock: of two processes locking a
	// directory and one inside it at the same time, at least one sees the other's lock
	if err := checkTree(dir); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// lockOwn opens (creating) and locks dir's lock file at path. A lock taken on a file that
// its holder removed meanwhile (see Lock's unlock) is dropped and the path opened again.
func lockOwn(dir, path string) (*os.File, error) {
	for try := 0; ; try++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("dirlock: locking %s: %w", dir, err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			if !errors.Is(err, errWouldBlock) {
				return nil, fmt.Errorf("dirlock: locking %s: %w", path, err)
			}
			return nil, fmt.Errorf("dirlock: %w: %s is locked by %s (lock file %s)", ErrLocked, dir, holder(path), path)
		}
		fi, ferr := f.Stat()
		pi, perr := os.Stat(path)
		if ferr == nil && perr == nil && os.SameFile(fi, pi) {
			return f, nil
		}
		unlockFile(f)
		f.Close()
		if try == 10 {
			return nil, fmt.Errorf("dirlock: %w: %s: its lock file %s keeps being replaced by other processes", ErrLocked, dir, path)
		}
	}
}

// checkTree returns an error wrapping ErrLocked when a directory above dir or below it
// is locked by another Lock call (of any process).
func checkTree(dir string) error {
	abs, err := filepath.Abs(dir)
	if err == nil {
		if real, rerr := filepath.EvalSymlinks(abs); rerr == nil {
			abs = real
		}
	}
	if err != nil {
		return fmt.Errorf("dirlock: locking %s: %w", dir, err)
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		if held, who := probe(filepath.Join(p, LockName)); held {
			return fmt.Errorf("dirlock: %w: %s lies inside %s, which is locked by %s (lock file %s): a command writing %s writes %s too",
				ErrLocked, dir, p, who, filepath.Join(p, LockName), p, dir)
		}
		if filepath.Dir(p) == p {
			break
		}
	}
	var inner error
	filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // an unreadable subdirectory holds no lock this process could see
		}
		if !d.IsDir() || p == abs {
			return nil
		}
		if held, who := probe(filepath.Join(p, LockName)); held {
			inner = fmt.Errorf("dirlock: %w: %s holds %s, which is locked by %s (lock file %s): wait for that command or stop it",
				ErrLocked, dir, p, who, filepath.Join(p, LockName))
			return filepath.SkipAll
		}
		return nil
	})
	return inner
}

// probe says whether the lock file at path (if there is one) is held, and by whom.
func probe(path string) (held bool, who string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, ""
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		if errors.Is(err, errWouldBlock) {
			return true, holder(path)
		}
		return false, ""
	}
	unlockFile(f)
	return false, ""
}

// Busy says whether another open file holds the lock HoldFile takes on the file at path:
// a temporary file whose writer is still running. Busy is false where files cannot be
// locked.
func Busy(path string) bool {
	held, _ := probe(path)
	return held
}

// HoldFile locks f (a file this process writes) so that Busy reports it as in use until
// f is closed. It fails where files cannot be locked.
func HoldFile(f *os.File) error { return lockFile(f) }

// holder describes the process whose id the lock file holds.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another process (its process id is unreadable: " + err.Error() + ")"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "another process (which has not written its process id yet)"
	}
	return "process " + strconv.Itoa(pid)
}
