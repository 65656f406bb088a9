package train

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/nn"
	"gorgonia.org/tensor"
)

// gatherBufs are the reused buffers of the cross-rank gradient sum.
type gatherBufs struct {
	send, recv []byte
}

// recordHeader is the loss (float64 bits) and the correct count ahead of each shard's
// gradients in a gathered record.
const recordHeader = 16

// sumShards adds the gradients of one subnet's shard graphs (this rank's) and of every
// other rank's shards into sum, in global shard order, and returns the batch's loss (the
// sum of the shards' scaled losses, in the same order) and its number of correct
// predictions. One process adds its shards in the same order, so the result does not
// depend on how the shards are spread over ranks.
func (t *Trainer) sumShards(graphs []*subnetGraph, sum [][]float32) (loss float64, correct int, comm float64, err error) {
	if t.world.Size() == 1 {
		for k, g := range graphs { // shard order: deterministic
			loss += scalar(g.loss) // each shard's loss is already divided by the shard count
			correct += t.correct(k, g)
			for j, gn := range g.grads {
				nn.AddTo(sum[g.index[j]], gn.Value().(*tensor.Dense).Float32s())
			}
		}
		return loss, correct, 0, nil
	}
	// every shard graph of a subnet has the same weights, in the same order
	ref := graphs[0]
	rec := recordHeader
	for _, gn := range ref.grads {
		rec += 4 * gn.Shape().TotalSize()
	}
	local := rec * len(graphs)
	if cap(t.gather.send) < local {
		t.gather.send = make([]byte, local)
		t.gather.recv = make([]byte, local*t.world.Size())
	}
	send, recv := t.gather.send[:local], t.gather.recv[:local*t.world.Size()]
	for k, g := range graphs {
		b := send[k*rec : (k+1)*rec]
		binary.LittleEndian.PutUint64(b, math.Float64bits(scalar(g.loss)))
		binary.LittleEndian.PutUint64(b[8:], uint64(t.correct(k, g)))
		off := recordHeader
		for _, gn := range g.grads {
			off += copy(b[off:], cluster.Float32Bytes(gn.Value().(*tensor.Dense).Float32s()))
		}
	}
	start := time.Now()
	if err := t.world.Allgather(send, recv); err != nil {
		return 0, 0, 0, err
	}
	comm = time.Since(start).Seconds()
	for k := range t.global { // ranks in order, each rank's shards in order
		b := recv[k*rec : (k+1)*rec]
		loss += math.Float64frombits(binary.LittleEndian.Uint64(b))
		correct += int(binary.LittleEndian.Uint64(b[8:]))
		off := recordHeader
		for j, gn := range ref.grads {
			n := gn.Shape().TotalSize()
			nn.AddTo(sum[ref.index[j]], float32s(b[off:off+4*n]))
			off += 4 * n
		}
	}
	return loss, correct, comm, nil
}

// float32s views b (4-byte aligned: records start at multiples of 4) as float32s.
func float32s(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		panic("train: misaligned gradient record")
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// World is the run this trainer is a rank of.
func (t *Trainer) World() cluster.World { return t.world }

// CheckRanks compares a fingerprint of the weights and of the optimizer's moments across
// ranks and returns cluster.ErrDiverged when a rank's copy differs (a bug, or ranks that
// read different data): every evaluation calls it. It costs one pass over the state and an
// allgather of 8 bytes; with one rank it does nothing.
func (t *Trainer) CheckRanks() error {
	if t.world.Size() == 1 {
		return nil
	}
	state := append(append(append([][]float32(nil), t.values...), t.opt.M...), t.opt.V...)
	sum := cluster.Checksum(state)
	if err := cluster.CheckSame(t.world, fmt.Sprintf("the weights and optimizer state at step %d", t.step), sum); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}
