// Package cluster owns the world of a data-parallel run: this process's rank, the number of
// ranks, and the few collectives the training loop and the pipeline need (an allgather in
// rank order, a broadcast, a barrier). The default build has only the one-rank world; the
// build tag mpi adds a world over Open MPI (cgo), which Detect returns when the process was
// started by mpirun or srun. No other package knows MPI exists: train/ and pipeline/ take a
// World as a value.
package cluster

import (
	"errors"
	"fmt"
	"hash/fnv"
	"unsafe"
)

// World is the set of processes of one run. Every rank must call the collectives in the same
// order with buffers of the same length; a collective returns an error (ErrPeerLost) when a
// rank died, and every rank sees it.
type World interface {
	// Rank is this process's index, 0..Size()-1; rank 0 writes every file.
	Rank() int
	// Size is the number of ranks.
	Size() int
	// Allgather copies each rank's send into recv at offset rank*len(send); recv must be
	// Size()*len(send) long.
	Allgather(send, recv []byte) error
	// Broadcast copies root's buf into every rank's buf (same length on every rank).
	Broadcast(buf []byte, root int) error
	// Barrier returns when every rank has called it.
	Barrier() error
	// Name says what the world runs on ("single process", "Open MPI 4.1.4").
	Name() string
}

// ErrDiverged is returned when the ranks' copies of the weights differ: the runs are no
// longer the same computation.
var ErrDiverged = errors.New("cluster: ranks diverged")

// ErrPeerLost is returned by a collective of a world whose peer ranks went away.
var ErrPeerLost = errors.New("cluster: a rank left the run")

// Single is the world of one process: every collective is a copy.
type Single struct{}

// Rank implements World.
func (Single) Rank() int { return 0 }

// Size implements World.
func (Single) Size() int { return 1 }

// Allgather implements World.
func (Single) Allgather(send, recv []byte) error {
	if len(recv) != len(send) {
		return fmt.Errorf("cluster: allgather into %d bytes, want %d", len(recv), len(send))
	}
	copy(recv, send)
	return nil
}

// Broadcast implements World.
func (Single) Broadcast(buf []byte, root int) error {
	if root != 0 {
		return fmt.Errorf("cluster: broadcast from rank %d of a one-rank world", root)
	}
	return nil
}

// Barrier implements World.
func (Single) Barrier() error { return nil }

// Name implements World.
func (Single) Name() string { return "single process" }

// OrNone returns w, or the one-rank world when w is nil, so that callers may leave it unset.
func OrNone(w World) World {
	if w == nil {
		return Single{}
	}
	return w
}

// IsLeader reports whether w (nil: the one-rank world) is rank 0, the rank that writes.
func IsLeader(w World) bool { return w == nil || w.Rank() == 0 }

// Float32Bytes views f as bytes (no copy) for the collectives.
func Float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// Float64Bytes views f as bytes (no copy) for the collectives.
func Float64Bytes(f []float64) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 8*len(f))
}

// Any reports whether flag is true on any rank (every rank gets the same answer): ranks
// agree to stop at the same step when a signal reached only some of them.
func Any(w World, flag bool) (bool, error) {
	w = OrNone(w)
	send := []byte{0}
	if flag {
		send[0] = 1
	}
	recv := make([]byte, w.Size())
	if err := w.Allgather(send, recv); err != nil {
		return false, err
	}
	for _, b := range recv {
		if b != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Checksum is a cheap fingerprint of float32 tensors (FNV-64a of their bits, in order).
func Checksum(tensors [][]float32) uint64 {
	h := fnv.New64a()
	for _, t := range tensors {
		_, _ = h.Write(Float32Bytes(t))
	}
	return h.Sum64()
}

// CheckSame compares a fingerprint across ranks and returns ErrDiverged, naming the ranks
// whose value differs from rank 0's, when they are not all equal; what names the state.
func CheckSame(w World, what string, sum uint64) error {
	w = OrNone(w)
	if w.Size() == 1 {
		return nil
	}
	send := make([]byte, 8)
	putUint64(send, sum)
	recv := make([]byte, 8*w.Size())
	if err := w.Allgather(send, recv); err != nil {
		return err
	}
	var bad []int
	for r := 1; r < w.Size(); r++ {
		for i := range 8 {
			if recv[8*r+i] != recv[i] {
				bad = append(bad, r)
				break
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s on rank(s) %v differ from rank 0's", ErrDiverged, what, bad)
	}
	return nil
}

// GatherBytes gives every rank every rank's b (of any length), in rank order.
func GatherBytes(w World, b []byte) ([][]byte, error) {
	w = OrNone(w)
	n := w.Size()
	lens := make([]byte, 8*n)
	mine := make([]byte, 8)
	putUint64(mine, uint64(len(b)))
	if err := w.Allgather(mine, lens); err != nil {
		return nil, err
	}
	longest := 0
	for r := range n {
		longest = max(longest, int(getUint64(lens[8*r:])))
	}
	send := make([]byte, longest)
	copy(send, b)
	recv := make([]byte, longest*n)
	if err := w.Allgather(send, recv); err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for r := range n {
		out[r] = recv[r*longest : r*longest+int(getUint64(lens[8*r:]))]
	}
	return out, nil
}

// Agree returns, on every rank, the first error (in rank order) that any rank passed: a
// step that only some ranks do (rank 0 writes a file) ends with every rank knowing whether
// it worked, so no rank goes on alone or waits for ever.
func Agree(w World, err error) error {
	w = OrNone(w)
	if w.Size() == 1 {
		return err
	}
	var msg []byte
	if err != nil {
		msg = []byte(err.Error())
	}
	all, gerr := GatherBytes(w, msg)
	if gerr != nil {
		return gerr
	}
	for r, m := range all {
		if len(m) == 0 {
			continue
		}
		if r == w.Rank() {
			return err
		}
		return fmt.Errorf("%w: rank %d: %s", ErrPeerFailed, r, m)
	}
	return nil
}

// ErrPeerFailed is returned by Agree on the ranks whose own part worked when another
// rank's failed.
var ErrPeerFailed = errors.New("cluster: another rank failed")

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

func getUint64(b []byte) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}
