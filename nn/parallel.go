package nn

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// parallelRows splits rows [0, n) into contiguous chunks and runs f on each, in parallel
// when the work (n * costPerRow, in rough flops) is large enough to pay for goroutines.
// par bounds the goroutines (0: GOMAXPROCS; 1: run serially, for graphs that already run
// side by side). Each row is written by exactly one chunk, so results do not depend on the
// split.
//
// The chunks after the first go to the helpers of rowPool, which spin for a while after
// each job before they sleep: a training step makes hundreds of parallel calls of
// 0.1-1 ms each, and waking a sleeping thread for each costs a good part of that. When the
// pool is busy (a nested or a concurrent call) the chunks go to new goroutines instead.
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
	chunk := (n + workers - 1) / workers
	if rowPool.run(workers, chunk, n, f) {
		return
	}
	wg := waitGroups.Get().(*sync.WaitGroup) // pooled: a step makes many parallel calls
	defer waitGroups.Put(wg)
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

// helperSpin is how long a helper keeps looking for its next job before it sleeps.
const helperSpin = 200 * time.Microsecond

// maxHelpers bounds the helper goroutines (the pool serves at most maxHelpers+1 chunks).
const maxHelpers = 15

// rowPool is the pool of parallelRows' helpers.
var rowPool helperPool

// helperPool runs the chunks of one parallelRows call at a time on long-lived helpers.
type helperPool struct {
	busy    atomic.Bool // a call is using the pool; only that call touches helpers
	helpers []*helper
}

// helper is one long-lived goroutine of the pool; the job fields are written by the caller
// before it publishes the job by incrementing seq, and read by the helper after it sees seq.
type helper struct {
	seq      atomic.Uint64 // jobs published
	done     atomic.Uint64 // jobs finished
	sleeping atomic.Bool   // the helper is (about to be) blocked on wake
	wake     chan struct{}
	f        func(lo, hi int)
	lo, hi   int
}

// run runs chunks [i*chunk, min((i+1)*chunk, n)) of f, the last on the calling goroutine
// and the others on helpers, and reports false (running nothing) when the pool is in use
// or workers-1 exceeds maxHelpers.
func (p *helperPool) run(workers, chunk, n int, f func(lo, hi int)) bool {
	if workers-1 > maxHelpers || !p.busy.CompareAndSwap(false, true) {
		return false
	}
	defer p.busy.Store(false)
	used := p.start((n - 1) / chunk) // one helper per chunk but the last
	for i, h := range used {
		h.f, h.lo, h.hi = f, i*chunk, (i+1)*chunk
		h.seq.Add(1)
		if h.sleeping.CompareAndSwap(true, false) {
			h.wake <- struct{}{}
		}
	}
	f(len(used)*chunk, n)
	for _, h := range used {
		for spins := 0; h.done.Load() != h.seq.Load(); spins++ {
			if spins&63 == 63 {
				runtime.Gosched()
			}
		}
		h.f = nil
	}
	return true
}

// start returns the pool's first k helpers, starting the ones it does not have yet (the
// caller holds busy).
func (p *helperPool) start(k int) []*helper {
	for len(p.helpers) < k {
		h := &helper{wake: make(chan struct{}, 1)}
		p.helpers = append(p.helpers, h)
		go h.loop()
	}
	return p.helpers[:k]
}

// loop runs the helper's jobs in order: after each it spins for helperSpin, then sleeps
// until the next is published.
func (h *helper) loop() {
	var last uint64
	for {
		start := time.Now()
		for spins := 0; h.seq.Load() == last; spins++ {
			if spins&63 != 63 {
				continue
			}
			if time.Since(start) < helperSpin {
				runtime.Gosched()
				continue
			}
			h.sleeping.Store(true)
			if h.seq.Load() != last && h.sleeping.CompareAndSwap(true, false) {
				break // a job came in before the caller saw us sleeping
			}
			<-h.wake // the caller cleared sleeping and will send (or already has)
			start = time.Now()
		}
		last++
		h.f(h.lo, h.hi)
		h.done.Store(last)
	}
}
