//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || windows)

package dirlock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errWouldBlock is never returned here.
var errWouldBlock = errors.New("dirlock: would block")

// lockFile fails: this system has no file locking this package knows.
func lockFile(*os.File) error {
	return fmt.Errorf("no file locking on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// unlockFile does nothing.
func unlockFile(*os.File) error { return nil }
