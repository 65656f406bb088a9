//go:build windows

package dirlock

import (
	"os"

	"golang.org/x/sys/windows"
)

// errWouldBlock is what lockFile returns when another holder has the lock.
var errWouldBlock = windows.ERROR_LOCK_VIOLATION

// lockRange is the locked byte: far past the process id, since Windows locks are
// mandatory and would stop a refused process from reading who holds the lock.
var lockRange = windows.Overlapped{OffsetHigh: 1 << 30}

// lockFile locks one byte of f exclusively without waiting.
func lockFile(f *os.File) error {
	ol := lockRange
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

// unlockFile releases lockFile's byte.
func unlockFile(f *os.File) error {
	ol := lockRange
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
}
