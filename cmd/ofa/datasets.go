package main

import (
	"encoding/json"
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
)

// SpeechConfig is the "data.speech" section: where spoken keywords come from and how they
// become spectrograms.
type SpeechConfig struct {
	// Dir holds a dataset in the layout of Google's Speech Commands; empty means the
	// embedded spoken-digit subset.
	Dir string `mapstructure:"dir"`
	// Classes restricts the labels (folders); empty means every folder.
	Classes  []string        `mapstructure:"classes"`
	Frontend speech.Frontend `mapstructure:"frontend"`
	Augment  speech.Augment  `mapstructure:"augment"`
}

// split is one part of a dataset: images or spectrograms.
type split struct {
	images *data.Images
	speech *speech.Set
}

// N is the number of examples.
func (s split) N() int {
	if s.speech != nil {
		return s.speech.N
	}
	return s.images.N
}

func (s split) head(n int) split {
	if s.speech != nil {
		return split{speech: headSpeech(s.speech, n)}
	}
	return split{images: s.images.Head(n)}
}

// headSpeech returns the first n examples of a spectrogram set (sharing its storage).
func headSpeech(s *speech.Set, n int) *speech.Set {
	n = min(n, s.N)
	h := *s
	h.N = n
	h.Features = s.Features[:n*s.Mels*s.Frames]
	h.Labels = s.Labels[:n]
	if len(s.Speakers) >= n {
		h.Speakers = s.Speakers[:n]
	}
	if len(s.Files) >= n {
		h.Files = s.Files[:n]
	}
	return &h
}

// splits are the data a command works on: training, validation (held out from the
// training split for images; the dataset's own validation list for speech) and test.
type splits struct {
	train, val, test split
	source           string
	task             string
	speech           SpeechConfig
	stats            speech.Stats
	classes          []string
}

func loadSplits(c DataConfig) (*splits, error) {
	if c.Task == arch.TaskSpeech {
		return loadSpeech(c)
	}
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
	return &splits{train: split{images: train}, val: split{images: valSet}, test: split{images: te},
		source: src.String(), task: arch.TaskImage, classes: tr.ClassNames}, nil
}

func loadSpeech(c DataConfig) (*splits, error) {
	fe := c.Speech.Frontend
	var (
		tr, va, te *speech.Set
		err        error
		src        string
	)
	if c.Speech.Dir == "" {
		tr, va, te, err = speech.LoadEmbeddedDigits(fe)
		src = "spoken digits, embedded subset (synthesised with espeak-ng; test and validation voices unseen in training)"
	} else {
		tr, va, te, err = speech.LoadCommands(c.Speech.Dir, fe, c.Speech.Classes)
		src = "keyword spotting data in " + c.Speech.Dir
	}
	if err != nil {
		return nil, err
	}
	if c.TrainLimit > 0 {
		tr = headSpeech(tr, c.TrainLimit)
	}
	if c.TestLimit > 0 {
		te = headSpeech(te, c.TestLimit)
	}
	src += fmt.Sprintf(": %d train / %d validation / %d test clips, %d classes, %d mel bins x %d frames",
		tr.N, va.N, te.N, len(tr.ClassNames), fe.Mels, fe.Frames)
	return &splits{train: split{speech: tr}, val: split{speech: va}, test: split{speech: te}, source: src,
		task: arch.TaskSpeech, speech: c.Speech, stats: tr.Stats(), classes: tr.ClassNames}, nil
}

// preprocess is how the model's inputs are normalised (stored in its checkpoint).
func (sp *splits) preprocess() checkpoint.Preprocess {
	if sp.task == arch.TaskSpeech {
		fe, _ := json.Marshal(sp.speech.Frontend)
		return checkpoint.Preprocess{Mean: sp.stats.Mean, Std: sp.stats.Std, Frontend: fe}
	}
	return checkpoint.Preprocess{Mean: data.FashionMNISTMean, Std: data.FashionMNISTStd}
}

// inputShape is (channels, height, width) of the model input.
func (sp *splits) inputShape() (int, int, int) {
	if sp.task == arch.TaskSpeech {
		return 1, sp.speech.Frontend.Mels, sp.speech.Frontend.Frames
	}
	im := sp.train.images
	return im.Channels, im.Height, im.Width
}

// checkModel refuses a model whose input or classes do not fit the data.
func (sp *splits) checkModel(what string, m *checkpoint.Model) error {
	c, h, w := sp.inputShape()
	a := m.Arch
	if a.InChannels != c || a.InHeight != h || a.InWidth != w || a.Classes != len(sp.classes) {
		return fmt.Errorf("%w: %s expects %dx%dx%d inputs and %d classes; the data has %dx%dx%d and %d classes",
			errConfig, what, a.InChannels, a.InHeight, a.InWidth, a.Classes, c, h, w, len(sp.classes))
	}
	return nil
}

// trainLoader shuffles, augments and drops the last short batch.
func (sp *splits) trainLoader(s split, batch int, seed uint64, aug data.Augment, pre checkpoint.Preprocess) (data.Batcher, error) {
	if s.speech != nil {
		return speech.NewLoader(s.speech, speech.LoaderConfig{BatchSize: batch, Seed: seed, Shuffle: true, DropLast: true,
			Mean: pre.Mean, Std: pre.Std, Augment: sp.speech.Augment})
	}
	return data.NewLoader(s.images, data.LoaderConfig{BatchSize: batch, Seed: seed, Shuffle: true, DropLast: true,
		Mean: pre.Mean, Std: pre.Std, Augment: aug})
}

// evalLoader keeps the order and pads the last batch.
func (sp *splits) evalLoader(s split, batch int, pre checkpoint.Preprocess) (data.Batcher, error) {
	if s.speech != nil {
		return speech.NewLoader(s.speech, speech.LoaderConfig{BatchSize: batch, Mean: pre.Mean, Std: pre.Std})
	}
	return data.NewLoader(s.images, data.LoaderConfig{BatchSize: batch, Mean: pre.Mean, Std: pre.Std})
}
