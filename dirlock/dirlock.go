// Package dirlock gives one process at a time a directory: a run directory that a
// training, an extraction or a report writes into. The lock is an advisory lock (flock on
// Unix, LockFileEx on Windows) on the file LockName inside the directory, which holds the
// holder's process id so that a refused process can say who holds it. The operating
// system drops the lock when the holder exits, however it exits (kill -9 included), so a
// lock is never stale; the file itself stays and is reused by the next holder.
package dirlock

import (
	"errors"
	"fmt"
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
// Lock call of this one, holds it. dir must exist. The returned unlock releases it; calling
// unlock again does nothing. Locks are advisory: only processes that call Lock respect it.
func Lock(dir string) (unlock func() error, err error) {
	path := filepath.Join(dir, LockName)
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
	// the pid is written after the lock is taken, so a refused process may briefly read an
	// empty or older file: holder says so
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		unlockFile(f)
		f.Close()
		return nil, fmt.Errorf("dirlock: writing the process id to %s: %w", path, err)
	}
	var once sync.Once
	return func() error {
		err := error(nil)
		once.Do(func() {
			// empty the file while still holding the lock, so nobody reads a dead pid
			terr := f.Truncate(0)
			uerr := unlockFile(f)
			cerr := f.Close()
			if e := errors.Join(terr, uerr, cerr); e != nil {
				err = fmt.Errorf("dirlock: unlocking %s: %w", dir, e)
			}
		})
		return err
	}, nil
}

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
