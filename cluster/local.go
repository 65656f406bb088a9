package cluster

import (
	"fmt"
	"sync"
)

// Local returns the ranks of a world whose ranks are goroutines of this process, sharing
// memory: the same collectives as the MPI world, for tests that compare N ranks with one
// process without mpirun. Each rank must run on its own goroutine.
func Local(size int) []World {
	if size < 1 {
		panic(fmt.Sprintf("cluster: Local(%d): a world has at least one rank", size))
	}
	h := &hub{size: size, slots: make([][]byte, size)}
	h.cond = sync.NewCond(&h.mu)
	out := make([]World, size)
	for r := range out {
		out[r] = &localRank{h: h, rank: r}
	}
	return out
}

// hub is the shared state of a Local world: one slot per rank and a reusable barrier.
type hub struct {
	size  int
	mu    sync.Mutex
	cond  *sync.Cond
	count int
	gen   int
	slots [][]byte
	lost  bool
}

// wait is a cyclic barrier; it fails once a rank has left.
func (h *hub) wait() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return ErrPeerLost
	}
	g := h.gen
	h.count++
	if h.count == h.size {
		h.count = 0
		h.gen++
		h.cond.Broadcast()
		return nil
	}
	for g == h.gen && !h.lost {
		h.cond.Wait()
	}
	if g == h.gen {
		return ErrPeerLost
	}
	return nil
}

type localRank struct {
	h    *hub
	rank int
}

func (l *localRank) Rank() int    { return l.rank }
func (l *localRank) Size() int    { return l.h.size }
func (l *localRank) Name() string { return fmt.Sprintf("%d goroutine ranks", l.h.size) }

func (l *localRank) Allgather(send, recv []byte) error {
	if len(recv) != l.h.size*len(send) {
		return fmt.Errorf("cluster: allgather into %d bytes, want %d", len(recv), l.h.size*len(send))
	}
	l.h.mu.Lock()
	l.h.slots[l.rank] = send
	l.h.mu.Unlock()
	if err := l.h.wait(); err != nil {
		return err
	}
	for r, s := range l.h.slots {
		if len(s) != len(send) {
			return fmt.Errorf("cluster: rank %d gathered %d bytes, rank %d %d", r, len(s), l.rank, len(send))
		}
		copy(recv[r*len(send):], s)
	}
	return l.h.wait() // nobody reuses its send buffer before everyone has read it
}

func (l *localRank) Broadcast(buf []byte, root int) error {
	if root < 0 || root >= l.h.size {
		return fmt.Errorf("cluster: broadcast from rank %d of %d", root, l.h.size)
	}
	if l.rank == root {
		l.h.mu.Lock()
		l.h.slots[root] = buf
		l.h.mu.Unlock()
	}
	if err := l.h.wait(); err != nil {
		return err
	}
	if l.rank != root {
		if len(l.h.slots[root]) != len(buf) {
			return fmt.Errorf("cluster: broadcast of %d bytes into %d", len(l.h.slots[root]), len(buf))
		}
		copy(buf, l.h.slots[root])
	}
	return l.h.wait()
}

func (l *localRank) Barrier() error { return l.h.wait() }

// Leave marks the rank as gone (a crashed process): the other ranks' collectives fail with
// ErrPeerLost instead of waiting for ever.
func (l *localRank) Leave() {
	l.h.mu.Lock()
	l.h.lost = true
	l.h.cond.Broadcast()
	l.h.mu.Unlock()
}
