package main

import (
	"fmt"

	"github.com/ofa-go/ofa/data"
)

// splits are the data a command works on: training, validation (held out from the
// training split) and test.
type splits struct {
	train, val, test *data.Images
	source           data.Source
}

func loadSplits(c DataConfig) (*splits, error) {
	var (
		tr, te *data.Images
		src    data.Source
		err    error
	)
	if c.Embedded {
		tr, te, err = data.LoadEmbeddedFashionMNIST()
		src = data.Source{Kind: data.SourceEmbedded}
		if err == nil {
			src.Train, src.Test = tr.N, te.N
		}
	} else {
		tr, te, src, err = data.LoadFashionMNIST(c.Dir)
	}
	if err != nil {
		return nil, err
	}
	if c.TrainLimit > 0 {
		tr = tr.Head(c.TrainLimit)
	}
	if c.TestLimit > 0 {
		te = te.Head(c.TestLimit)
	}
	val := c.ValSize
	if val == 0 {
		val = tr.N / 12
	}
	if val >= tr.N {
		return nil, fmt.Errorf("%w: data.val_size: %d leaves no training examples out of %d", errConfig, val, tr.N)
	}
	train, valSet := tr.Split(tr.N - val)
	return &splits{train: train, val: valSet, test: te, source: src}, nil
}

// trainLoader shuffles, augments and drops the last short batch.
func trainLoader(set *data.Images, batch int, seed uint64, aug data.Augment, mean, std float32) (*data.Loader, error) {
	return data.NewLoader(set, data.LoaderConfig{BatchSize: batch, Seed: seed, Shuffle: true, DropLast: true,
		Mean: mean, Std: std, Augment: aug})
}

// evalLoader keeps file order and pads the last batch.
func evalLoader(set *data.Images, batch int, mean, std float32) (*data.Loader, error) {
	return data.NewLoader(set, data.LoaderConfig{BatchSize: batch, Mean: mean, Std: std})
}
