package train

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/supernet"
)

// onRanks runs f on every rank of a goroutine world of size ranks, each with its own copy
// of the initial weights, and returns every rank's weights and error.
func onRanks(t *testing.T, f fixture, size int, run func(tr *Trainer) error) ([]*supernet.Params, []error) {
	t.Helper()
	worlds := cluster.Local(size)
	params := make([]*supernet.Params, size)
	trainers := make([]*Trainer, size)
	for r := range worlds {
		params[r] = f.params(t)
		fr := f
		fr.world = worlds[r]
		trainers[r] = fr.trainer(t, params[r]) // New on this goroutine: t.Fatal is allowed here
	}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range worlds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = run(trainers[r])
		}()
	}
	wg.Wait()
	return params, errs
}

func stepsErr(tr *Trainer, n int) error {
	for range n {
		if _, err := tr.TrainStep(); err != nil {
			return err
		}
	}
	return tr.CheckRanks()
}

// TestRanksEqualShards: N ranks of S shards each (train.shards N*S) train the weights of
// one process with N*S shards on the same global batch, bit for bit, and every rank holds
// the same weights.
func TestRanksEqualShards(t *testing.T) {
	const n = 6
	for _, tc := range []struct{ ranks, shards int }{{2, 1}, {2, 2}, {4, 1}} {
		t.Run(fmt.Sprintf("%dx%d", tc.ranks, tc.shards), func(t *testing.T) {
			f := newFixture(t)
			f.cfg.Shards = tc.ranks * tc.shards
			one := f.params(t)
			steps(t, f.trainer(t, one), n)

			params, errs := onRanks(t, f, tc.ranks, func(tr *Trainer) error { return stepsErr(tr, n) })
			for r, p := range params {
				if errs[r] != nil {
					t.Fatalf("rank %d: %v", r, errs[r])
				}
				sameBits(t, fmt.Sprintf("rank %d of %dx%d against 1x%d", r, tc.ranks, tc.shards, tc.ranks*tc.shards), one, p)
			}
		})
	}
}

// TestRanksStopTogether: a signal that reaches one rank only stops every rank after the
// same step (otherwise the others would wait in the next gradient sum for ever).
func TestRanksStopTogether(t *testing.T) {
	f := newFixture(t)
	f.cfg.Shards = 2
	var mu sync.Mutex
	stopped := map[int]int{}
	_, errs := onRanks(t, f, 2, func(tr *Trainer) error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := &interruptHook{cancelAt: 3, cancel: cancel}
		if tr.World().Rank() == 1 {
			h.cancelAt = -1 // only rank 0 sees the signal
		}
		err := tr.Run(ctx, h)
		mu.Lock()
		stopped[tr.World().Rank()] = tr.Step()
		mu.Unlock()
		return err
	})
	for r, err := range errs {
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("rank %d: %v, want ErrInterrupted", r, err)
		}
	}
	if stopped[0] != 3 || stopped[1] != 3 {
		t.Fatalf("ranks stopped after steps %v, want 3 on both", stopped)
	}
}

// TestRanksDiverged: the weight check at each evaluation names a rank whose weights differ.
func TestRanksDiverged(t *testing.T) {
	f := newFixture(t)
	f.cfg.Shards = 2
	_, errs := onRanks(t, f, 2, func(tr *Trainer) error {
		if err := stepsErr(tr, 1); err != nil {
			return err
		}
		if tr.World().Rank() == 1 {
			tr.Params().Get("head.bias").Data().([]float32)[0] += 1
		}
		return tr.CheckRanks()
	})
	for r, err := range errs {
		if !errors.Is(err, cluster.ErrDiverged) {
			t.Fatalf("rank %d: %v, want ErrDiverged", r, err)
		}
	}
}

// TestRanksShardSplit: shards that the ranks cannot share evenly are refused.
func TestRanksShardSplit(t *testing.T) {
	f := newFixture(t)
	f.cfg.Shards = 4
	f.world = cluster.Local(3)[0]
	p := f.params(t)
	if _, err := New(f.setup(t, p)); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "3 ranks") {
		t.Fatalf("4 shards over 3 ranks: %v, want ErrConfig naming the 3 ranks", err)
	}
	f.world = cluster.Local(2)[0] // 2 each: accepted
	if _, err := New(f.setup(t, p)); err != nil {
		t.Fatal(err)
	}
}
