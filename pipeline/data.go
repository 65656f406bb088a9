package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/data/vision"
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
// split unless the data has its own; the dataset's own validation list for speech) and
// test (the validation split again when the data has no test split: Description.NoTest).
type Dataset struct {
	Train, Val, Test Split
	// Source says where the data came from, for the first line of output and reports.
	Source string
	// Description is what the data is, for model files and reports (see data.Description).
	Description data.Description
	// Task is arch.TaskImage or arch.TaskSpeech.
	Task    string
	Classes []string
	// Channels, Height and Width are the model input's shape.
	Channels, Height, Width int
	pre                     modelfile.Preprocess
	record                  *modelfile.DataRecord
}

// LoadData loads the dataset the section describes.
func LoadData(c DataConfig) (*Dataset, error) { return LoadDataWith(c, nil) }

// LoadDataWith is LoadData drawing the progress of image decoding on progress (a bar on a
// terminal, lines otherwise; nil draws nothing).
func LoadDataWith(c DataConfig, progress io.Writer) (*Dataset, error) {
	if c.Task == arch.TaskSpeech {
		return loadSpeech(c)
	}
	var (
		tr, va, te *data.Images
		desc       data.Description
		err        error
		fmnist     = true // the real Fashion-MNIST, which keeps its published statistics
	)
	switch {
	case c.Embedded:
		tr, te, err = data.LoadEmbeddedFashionMNIST()
		desc = data.Description{Kind: data.KindFashionMNISTEmbedded}
	case c.Dir == "":
		var src data.Source
		tr, te, src, err = data.LoadFashionMNIST("")
		desc = data.Description{Kind: data.KindFashionMNISTEmbedded}
		if src.Kind == data.SourceDebian {
			desc = data.Description{Kind: data.KindFashionMNISTDebian, Root: src.Path}
		}
	case vision.IsFolderDataset(c.Dir) || vision.IsParquetDataset(c.Dir):
		return loadVision(c, progress)
	case data.IsIDXDir(c.Dir):
		var d *data.IDXDir
		if d, err = data.LoadIDXDir(c.Dir); err == nil {
			tr, te, fmnist = d.Train, d.Test, d.FashionMNIST
			desc = data.Description{Kind: data.KindIDX, Root: c.Dir, Fingerprint: d.Fingerprint}
		}
	default:
		return nil, fmt.Errorf("%w: data.dir: %s holds no dataset this tool reads: want image folders (%s/train/<class>/<image>), "+
			"Hugging Face Parquet files (*.parquet with image and label columns) or IDX files (train-images-idx3-ubyte[.gz] ...)",
			ErrConfig, c.Dir, c.Dir)
	}
	if err != nil {
		return nil, err
	}
	if desc.Fingerprint == "" {
		desc.Fingerprint = contentFingerprint(tr, te)
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
	tr, va = tr.Split(tr.N - val)
	desc.ValFrom = "held-out"
	// The real Fashion-MNIST keeps its published statistics (and every model trained on it
	// its preprocessing); other data is measured on its training split.
	var mean, std []float32
	if fmnist {
		mean, std = []float32{data.FashionMNISTMean}, []float32{data.FashionMNISTStd}
	} else {
		mean, std = tr.ChannelStats()
	}
	return imageDataset(c, tr, va, te, desc, mean, std)
}

// imageDataset assembles a Dataset of image splits, applying data.mean/data.std if given.
func imageDataset(c DataConfig, tr, va, te *data.Images, desc data.Description, mean, std []float32) (*Dataset, error) {
	if len(c.Mean) > 0 {
		mean, std = c.Mean, c.Std
	}
	if len(mean) == 1 && tr.Channels > 1 {
		mean = slices.Repeat(mean, tr.Channels)
		std = slices.Repeat(std, tr.Channels)
	}
	if len(mean) != tr.Channels {
		return nil, fmt.Errorf("%w: data.mean/data.std: %d values for %d-channel images, want 1 or %d", ErrConfig, len(mean), tr.Channels, tr.Channels)
	}
	pre := modelfile.ImagePreprocess(mean, std)
	pre.Resize = desc.Resize
	noTest := te == nil || te.N == 0
	if noTest {
		te = va
		desc.NoTest = true
	}
	desc.Train, desc.Val, desc.Test = tr.N, va.N, te.N
	if noTest {
		desc.Test = 0
	}
	desc.Classes = append([]string(nil), tr.ClassNames...)
	if len(desc.Classes) == 0 {
		for l := range tr.Classes {
			desc.Classes = append(desc.Classes, strconv.Itoa(l))
		}
	}
	desc.Channels, desc.Height, desc.Width = tr.Channels, tr.Height, tr.Width
	desc.Mean, desc.Std = pre.PerChannel(tr.Channels)
	if desc.SizesSeen == "" {
		desc.SizesSeen = fmt.Sprintf("%dx%d", tr.Width, tr.Height)
	}
	aug := c.Augment
	rec := imageRecord(desc.Kind, desc.Root, desc.String(), tr, va, te, pre, aug)
	rec.ValFrom = desc.ValFrom
	return &Dataset{Train: imageSplit{tr, aug}, Val: imageSplit{va, aug}, Test: imageSplit{te, aug},
		Source: desc.String(), Description: desc, Task: arch.TaskImage, Classes: desc.Classes,
		Channels: tr.Channels, Height: tr.Height, Width: tr.Width, pre: pre, record: rec}, nil
}

// decodeProgress draws decoding progress on w: a bar on a terminal, else a line every 10%.
func decodeProgress(w io.Writer) func(done, total int) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		return func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("decoding images"),
					progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetWidth(24),
					progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
			}
			_ = bar.Set(done)
		}
	}
	start, next := time.Now(), 0
	return func(done, total int) {
		if pct := 100 * done / max(total, 1); pct >= next {
			fmt.Fprintf(w, "decoding images %d/%d (%d%%) %.0f images/s\n", done, total, pct, float64(done)/time.Since(start).Seconds())
			next = pct/10*10 + 10
		}
	}
}

// contentFingerprint hashes the pixels and labels of the splits (for embedded data).
func contentFingerprint(sets ...*data.Images) string {
	h := sha256.New()
	for _, s := range sets {
		h.Write(s.Pixels)
		h.Write(s.Labels)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// loadVision reads image folders or Parquet files through data/vision.
func loadVision(c DataConfig, progress io.Writer) (*Dataset, error) {
	o := vision.Options{Size: c.ImageSize, Channels: c.Channels, ValFraction: c.ValFraction, Seed: c.SplitSeed,
		ByName: c.OrderByName, SkipBad: c.SkipBad}
	switch c.Cache {
	case "off":
	case "":
		dir, err := os.UserCacheDir()
		if err == nil {
			o.CacheDir = filepath.Join(dir, "ofa", "images")
		}
	default:
		o.CacheDir = c.Cache
	}
	if progress != nil {
		o.Progress = decodeProgress(progress)
	}
	var (
		d   *vision.Dataset
		err error
	)
	if vision.IsFolderDataset(c.Dir) {
		d, err = vision.LoadFolder(c.Dir, o)
	} else {
		d, err = vision.LoadParquet(c.Dir, o)
	}
	if err != nil {
		return nil, err
	}
	tr, va, te := d.Train, d.Val, d.Test
	if c.TrainLimit > 0 {
		tr = tr.Head(c.TrainLimit)
	}
	if c.TestLimit > 0 && te != nil {
		te = te.Head(c.TestLimit)
	}
	return imageDataset(c, tr, va, te, d.Description, d.Description.Mean, d.Description.Std)
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
	desc := data.Description{Kind: data.KindSpeechEmbedded, Root: c.Speech.Dir, Fingerprint: speechFingerprint(tr, va, te),
		Train: tr.N, Val: va.N, Test: te.N, ValFrom: "split", Classes: append([]string(nil), tr.ClassNames...),
		Channels: 1, Height: fe.Mels, Width: fe.Frames, Mean: []float32{stats.Mean}, Std: []float32{stats.Std}}
	if c.Speech.Dir != "" {
		desc.Kind = data.KindSpeechCommands
	}
	pre := modelfile.Preprocess{Mean: stats.Mean, Std: stats.Std, Frontend: fej}
	return &Dataset{Train: speechSplit{tr, aug}, Val: speechSplit{va, aug}, Test: speechSplit{te, aug}, Source: src, Description: desc,
		Task: arch.TaskSpeech, Classes: tr.ClassNames, Channels: 1, Height: fe.Mels, Width: fe.Frames, pre: pre,
		record: speechRecord(c.Speech.Dir, src, tr, va, te, pre, aug)}, nil
}

// speechFingerprint hashes the spectrograms and labels of the splits.
func speechFingerprint(sets ...*speech.Set) string {
	h := sha256.New()
	var b [4]byte
	for _, s := range sets {
		for _, v := range s.Features {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
		h.Write(s.Labels)
	}
	return hex.EncodeToString(h.Sum(nil))
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
