package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// runRanks runs f on every rank of w, each on its own goroutine, and returns their errors.
func runRanks(w []World, f func(w World) error) []error {
	errs := make([]error, len(w))
	var wg sync.WaitGroup
	for r := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(w[r])
		}()
	}
	wg.Wait()
	return errs
}

// collectives checks Allgather, Broadcast, Barrier, Any and CheckSame on any world; every
// rank runs it.
func collectives(w World) error {
	r, n := w.Rank(), w.Size()
	send := []byte{byte(r), byte(10 + r), byte(20 + r)}
	recv := make([]byte, 3*n)
	if err := w.Allgather(send, recv); err != nil {
		return err
	}
	for q := range n {
		if recv[3*q] != byte(q) || recv[3*q+1] != byte(10+q) || recv[3*q+2] != byte(20+q) {
			return fmt.Errorf("rank %d: allgather got %v", r, recv)
		}
	}
	root := n - 1
	buf := make([]byte, 4)
	if r == root {
		copy(buf, "ofa!")
	}
	if err := w.Broadcast(buf, root); err != nil {
		return err
	}
	if string(buf) != "ofa!" {
		return fmt.Errorf("rank %d: broadcast got %q", r, buf)
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	got, err := Any(w, r == root)
	if err != nil {
		return err
	}
	if !got {
		return fmt.Errorf("rank %d: Any missed the last rank's flag", r)
	}
	if got, err = Any(w, false); err != nil || got {
		return fmt.Errorf("rank %d: Any of no flag = %v, %v", r, got, err)
	}
	if err := CheckSame(w, "weights", 42); err != nil {
		return err
	}
	err = CheckSame(w, "weights", uint64(42+r))
	if n > 1 && !errors.Is(err, ErrDiverged) {
		return fmt.Errorf("rank %d: differing checksums gave %v, want ErrDiverged", r, err)
	}
	if n == 1 && err != nil {
		return err
	}
	return nil
}

func TestCollectives(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		worlds := Local(n)
		if n == 1 {
			worlds = []World{Single{}}
		}
		for r, err := range runRanks(worlds, collectives) {
			if err != nil {
				t.Errorf("%d ranks, rank %d: %v", n, r, err)
			}
		}
	}
}

func TestLocalPeerLost(t *testing.T) {
	w := Local(2)
	errs := runRanks(w, func(w World) error {
		if w.Rank() == 1 {
			w.(*localRank).Leave()
			return nil
		}
		return w.Barrier()
	})
	if !errors.Is(errs[0], ErrPeerLost) {
		t.Fatalf("rank 0's barrier after rank 1 left: %v, want ErrPeerLost", errs[0])
	}
}

func TestGatherAgree(t *testing.T) {
	w := Local(3)
	errs := runRanks(w, func(w World) error {
		r := w.Rank()
		all, err := GatherBytes(w, make([]byte, r)) // lengths 0, 1, 2
		if err != nil {
			return err
		}
		for q, b := range all {
			if len(b) != q {
				return fmt.Errorf("rank %d: rank %d's part is %d bytes, want %d", r, q, len(b), q)
			}
		}
		if err := Agree(w, nil); err != nil {
			return err
		}
		var mine error
		if r == 1 {
			mine = errors.New("disk full")
		}
		err = Agree(w, mine)
		switch {
		case r == 1 && err != mine:
			return fmt.Errorf("rank 1 got %v, want its own error", err)
		case r != 1 && (!errors.Is(err, ErrPeerFailed) || !strings.Contains(err.Error(), "rank 1: disk full")):
			return fmt.Errorf("rank %d got %v, want rank 1's error", r, err)
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func TestSingleDetect(t *testing.T) {
	if Launched() {
		t.Skip("started by an MPI launcher")
	}
	w, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 1 || w.Rank() != 0 {
		t.Fatalf("Detect outside a launcher: rank %d of %d, want 0 of 1", w.Rank(), w.Size())
	}
}
