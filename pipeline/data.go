package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
)

// Split is one part of a dataset, images or spectrograms, behind one interface.
type Split interface {
	// N is the number of examples.
	N() int
	// Head is the first n examples (sharing storage).
	Head(n int) Split
	// Loader batches the split. Training loaders shuffle, augment and drop the last short
	// batch; evaluation loaders keep the order and pad the last batch.
	Loader(c LoaderConfig) (data.Batcher, error)
}

// LoaderConfig says how a split is batched and normalised.
type LoaderConfig struct {
	Batch int
	// Train shuffles with Seed, augments and drops the last short batch.
	Train bool
	Seed  uint64
	// Pre normalises the inputs as the model expects.
	Pre modelfile.Preprocess
}

type imageSplit struct {
	images *data.Images
	aug    data.Augment
}

func (s imageSplit) N() int           { return s.images.N }
func (s imageSplit) Head(n int) Split { return imageSplit{s.images.Head(n), s.aug} }
func (s imageSplit) Loader(c LoaderConfig) (data.Batcher, error) {
	lc := data.LoaderConfig{BatchSize: c.Batch, Mean: c.Pre.Mean, Std: c.Pre.Std,
		ChannelMean: c.Pre.ChannelMean, ChannelStd: c.Pre.ChannelStd}
	if c.Train {
		lc.Seed, lc.Shuffle, lc.DropLast, lc.Augment = c.Seed, true, true, s.aug
	}
	return data.NewLoader(s.images, lc)
}

type speechSplit struct {
	set *speech.Set
	aug speech.Augment
}

func (s speechSplit) N() int { return s.set.N }
func (s speechSplit) Head(n int) Split {
	return speechSplit{headSpeech(s.set, n), s.aug}
}
func (s speechSplit) Loader(c LoaderConfig) (data.Batcher, error) {
	lc := speech.LoaderConfig{BatchSize: c.Batch, Mean: c.Pre.Mean, Std: c.Pre.Std}
	if c.Train {
		lc.Seed, lc.Shuffle, lc.DropLast, lc.Augment = c.Seed, true, true, s.aug
	}
	return speech.NewLoader(s.set, lc)
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

// Dataset is the data a step works on: training, validation (held out from the training
// split for images; the dataset's own validation list for speech) and test.
type Dataset struct {
	Train, Val, Test Split
	// Source says where the data came from, for the first line of output and reports.
	Source string
	// Task is arch.TaskImage or arch.TaskSpeech.
	Task    string
	Classes []string
	// Channels, Height and Width are the model input's shape.
	Channels, Height, Width int
	pre                     modelfile.Preprocess
}

// LoadData loads the dataset the section describes.
func LoadData(c DataConfig) (*Dataset, error) {
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
		return nil, fmt.Errorf("%w: data.val_size: %d leaves no training examples out of %d", ErrConfig, val, tr.N)
	}
	train, valSet := tr.Split(tr.N - val)
	return &Dataset{Train: imageSplit{train, c.Augment}, Val: imageSplit{valSet, c.Augment}, Test: imageSplit{te, c.Augment},
		Source: src.String(), Task: arch.TaskImage, Classes: tr.ClassNames,
		Channels: tr.Channels, Height: tr.Height, Width: tr.Width,
		pre: modelfile.Preprocess{Mean: data.FashionMNISTMean, Std: data.FashionMNISTStd}}, nil
}

func loadSpeech(c DataConfig) (*Dataset, error) {
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
	stats := tr.Stats()
	fej, err := json.Marshal(fe)
	if err != nil {
		return nil, err
	}
	aug := c.Speech.Augment
	return &Dataset{Train: speechSplit{tr, aug}, Val: speechSplit{va, aug}, Test: speechSplit{te, aug}, Source: src,
		Task: arch.TaskSpeech, Classes: tr.ClassNames, Channels: 1, Height: fe.Mels, Width: fe.Frames,
		pre: modelfile.Preprocess{Mean: stats.Mean, Std: stats.Std, Frontend: fej}}, nil
}

// Preprocess is how this data's inputs are normalised (stored in every model trained on it).
func (d *Dataset) Preprocess() modelfile.Preprocess { return d.pre }

// CheckModel refuses a model whose input or classes do not fit the data.
func (d *Dataset) CheckModel(what string, m *modelfile.Model) error {
	a := m.Arch
	if a.InChannels != d.Channels || a.InHeight != d.Height || a.InWidth != d.Width || a.Classes != len(d.Classes) {
		return fmt.Errorf("%w: %s expects %dx%dx%d inputs and %d classes; the data has %dx%dx%d and %d classes",
			ErrConfig, what, a.InChannels, a.InHeight, a.InWidth, a.Classes, d.Channels, d.Height, d.Width, len(d.Classes))
	}
	return nil
}

// TrainLoader shuffles split s with seed, augments and drops the last short batch.
func TrainLoader(s Split, batch int, seed uint64, pre modelfile.Preprocess) (data.Batcher, error) {
	return s.Loader(LoaderConfig{Batch: batch, Train: true, Seed: seed, Pre: pre})
}

// EvalLoader batches split s in order, padding the last batch, and returns the batch size
// it used: batch capped at the split's size, so that a huge batch never builds a graph
// larger than the data.
func EvalLoader(s Split, batch int, pre modelfile.Preprocess) (data.Batcher, int, error) {
	batch = max(1, min(batch, s.N()))
	l, err := s.Loader(LoaderConfig{Batch: batch, Pre: pre})
	return l, batch, err
}

// Evaluate measures named subnets of the model (a, p) on split s.
func Evaluate(a arch.Arch, p *supernet.Params, ops nn.Ops, s Split, batch int, pre modelfile.Preprocess, named []train.Named) ([]train.SubnetEval, error) {
	l, batch, err := EvalLoader(s, batch, pre)
	if err != nil {
		return nil, err
	}
	return train.Evaluate(a, p, ops, l, batch, named)
}

// Accuracy is the accuracy of the whole model (a, p) on split s.
func Accuracy(a arch.Arch, p *supernet.Params, ops nn.Ops, s Split, pre modelfile.Preprocess) (float64, error) {
	r, err := Evaluate(a, p, ops, s, testBatch, pre, []train.Named{{Name: "model", Subnet: arch.Largest(a)}})
	if err != nil {
		return 0, err
	}
	return r[0].Accuracy, nil
}

// testBatch is the batch of test-split evaluations.
const testBatch = 250

// Ops returns the operation implementations the "ops" key names.
func Ops(name string) nn.Ops {
	if name == "composed" {
		return nn.Composed{}
	}
	return nn.Fused{}
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// maxSideFile bounds the side files (JSON results, manifests) the pipeline reads back.
const maxSideFile = 16 << 20

// readJSON decodes a side file written by this package, refusing files over maxSideFile
// before reading them.
func readJSON(path string, v any) error {
	b, err := data.ReadFileLimited(path, maxSideFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
