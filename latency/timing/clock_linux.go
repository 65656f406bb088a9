package timing

import "golang.org/x/sys/unix"

// processCPUClock returns a reading of the process's CPU time in ns (all its threads).
func processCPUClock() (func() int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		return nil, err
	}
	return func() int64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
			panic("timing: reading the process CPU clock: " + err.Error()) // it worked a moment ago
		}
		return ts.Nano()
	}, nil
}
