//go:build !linux

package timing

import "errors"

// processCPUClock is only implemented on Linux.
func processCPUClock() (func() int64, error) {
	return nil, errors.New("the process CPU clock is only read on Linux")
}
