package nn

import (
	"sync"
	"testing"
)

// TestParallelRowsCoversEveryRowOnce: parallelRows runs every row exactly once through the
// helper pool, through the goroutine fallback when calls nest or run concurrently, and for
// worker counts above the pool's bound.
func TestParallelRowsCoversEveryRowOnce(t *testing.T) {
	check := func(t *testing.T, par, n int, f func(counts []int32) func(lo, hi int)) {
		counts := make([]int32, n)
		parallelRows(par, n, 1<<15, f(counts))
		for i, c := range counts {
			if c != 1 {
				t.Errorf("par %d, n %d: row %d ran %d times", par, n, i, c)
				return
			}
		}
	}
	mark := func(counts []int32) func(lo, hi int) {
		return func(lo, hi int) {
			for i := lo; i < hi; i++ {
				counts[i]++
			}
		}
	}
	for _, par := range []int{0, 2, 3, 8, maxHelpers + 4} {
		for _, n := range []int{1, 2, 5, 64} {
			for rep := 0; rep < 50; rep++ { // helpers both spinning and asleep
				check(t, par, n, mark)
			}
		}
	}
	// nested: each chunk runs its own parallel call while the outer one holds the pool
	check(t, 4, 8, func(counts []int32) func(lo, hi int) {
		return func(lo, hi int) {
			inner := make([]int32, 16)
			parallelRows(4, 16, 1<<15, mark(inner))
			for _, c := range inner {
				if c != 1 {
					panic("nested parallelRows missed a row")
				}
			}
			mark(counts)(lo, hi)
		}
	})
	// concurrent callers
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 100; rep++ {
				check(t, 0, 33, mark)
			}
		}()
	}
	wg.Wait()
}
