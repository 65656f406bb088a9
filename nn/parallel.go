package nn

import (
	"runtime"
	"sync"
)

// parallelRows splits rows [0, n) into contiguous chunks and runs f on each, in parallel
// when the work (n * costPerRow, in rough flops) is large enough to pay for goroutines.
// par bounds the goroutines (0: GOMAXPROCS; 1: run serially, for graphs that already run
// side by side). Each row is written by exactly one chunk, so results do not depend on the
// split.
func parallelRows(par, n, costPerRow int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if par > 0 && par < workers {
		workers = par
	}
	if workers > n {
		workers = n
	}
	if workers <= 1 || n*costPerRow < 1<<15 {
		f(0, n)
		return
	}
	wg := waitGroups.Get().(*sync.WaitGroup) // pooled: a step makes many parallel calls
	defer waitGroups.Put(wg)
	chunk := (n + workers - 1) / workers
	lo := 0
	for ; lo+chunk < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(lo, lo+chunk)
	}
	f(lo, n) // the last chunk on this goroutine
	wg.Wait()
}

// waitGroups recycles parallelRows' wait groups (one would otherwise escape to the heap per
// call).
var waitGroups = sync.Pool{New: func() any { return new(sync.WaitGroup) }}
