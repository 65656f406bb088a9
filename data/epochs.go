package data

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Epochs maps (epoch, batch index) to examples: a fresh permutation each epoch that is a
// pure function of (seed, stream, epoch) — so a resumed run sees exactly the batches an
// uninterrupted one would — or the stored order, and assembles the batches. The image and
// speech loaders share it. It caches the current epoch's permutation, so it is not safe for
// concurrent use.
type Epochs struct {
	n, batch, batches int
	seed, stream      uint64
	perm              []int // nil without shuffling
	permEpoch         int
}

// NewEpochs prepares batches of batchSize over n examples; dropLast drops a final short batch.
func NewEpochs(n, batchSize int, seed, stream uint64, shuffle, dropLast bool) *Epochs {
	e := &Epochs{n: n, batch: batchSize, seed: seed, stream: stream, permEpoch: -1}
	e.batches = n / batchSize
	if !dropLast && n%batchSize != 0 {
		e.batches++
	}
	if shuffle {
		e.perm = make([]int, n)
	}
	return e
}

// BatchesPerEpoch is the number of batches in every epoch.
func (e *Epochs) BatchesPerEpoch() int { return e.batches }

// Fill fills dst with batch index of epoch, each example size values long: fill writes
// example ex (at position pos in the epoch) into out, label gives its label. dst's slices
// are reused when large enough; a short final batch is padded with zeros and label -1.
// It panics if epoch < 0 or index is outside [0, BatchesPerEpoch()).
func (e *Epochs) Fill(dst *Batch, epoch, index, size int, fill func(out []float32, ex, pos int), label func(ex int) int) {
	if epoch < 0 || index < 0 || index >= e.batches {
		panic(fmt.Sprintf("data: Batch(epoch %d, index %d) with %d batches per epoch", epoch, index, e.batches))
	}
	bs := e.batch
	if cap(dst.X) < bs*size {
		dst.X = make([]float32, bs*size)
	}
	if cap(dst.Labels) < bs {
		dst.Labels = make([]int, bs)
	}
	dst.X, dst.Labels = dst.X[:bs*size], dst.Labels[:bs]
	order := e.order(epoch)
	start := index * bs
	dst.Size = min(bs, e.n-start)
	for j := range dst.Size {
		pos := start + j
		ex := pos
		if order != nil {
			ex = order[pos]
		}
		fill(dst.X[j*size:(j+1)*size], ex, pos)
		dst.Labels[j] = label(ex)
	}
	clear(dst.X[dst.Size*size:])
	for j := dst.Size; j < bs; j++ {
		dst.Labels[j] = -1
	}
}

// order returns the permutation of examples for epoch, or nil without shuffling.
func (e *Epochs) order(epoch int) []int {
	if e.perm == nil || e.permEpoch == epoch {
		return e.perm
	}
	for i := range e.perm {
		e.perm[i] = i
	}
	var src rand.PCG
	src.Seed(e.seed, Mix64(e.stream^Mix64(uint64(epoch))))
	// Fisher-Yates with our own range reduction: stable as long as PCG's output is.
	for i := len(e.perm) - 1; i > 0; i-- {
		j := Uintn(&src, uint64(i)+1)
		e.perm[i], e.perm[j] = e.perm[j], e.perm[i]
	}
	e.permEpoch = epoch
	return e.perm
}

// Uintn returns a uniform integer in [0, n) from src (Lemire's multiply-and-reject), a
// reduction that does not depend on the Go version.
func Uintn(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// Mix64 is SplitMix64's finaliser: it spreads nearby inputs (epochs, positions) across the
// whole seed space.
func Mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
