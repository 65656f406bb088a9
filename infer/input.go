// Package infer runs a model file on input files: it recognises each file's kind by its
// first bytes (a small table of input kinds: image files, IDX files, WAV clips), turns it
// into model inputs with the same preprocessing and normalisation the training loaders
// apply (data.PixelNorm, vision.ToPixels, speech.Norm and the speech front end), runs the
// model through supernet.Runner and reports each input's most probable classes by name
// (the model file's class names).
package infer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/data/vision"
	"github.com/ofa-go/ofa/modelfile"
)

// ErrInput is wrapped by every error about an input file that the model cannot take: an
// unknown format, a wrong size or channel count, a file of the other task.
var ErrInput = errors.New("unusable input")

// MaxImageBytes bounds an image file for prediction (any format), checked before it is
// read; its header's pixel count is checked (vision.DefaultMaxPixels) before it is
// decoded. IDX and WAV files are bounded by their readers (data.DefaultMaxElements,
// speech.DefaultMaxSamples).
const MaxImageBytes = 64 << 20

// Input is one example for prediction: where it came from and the model input it becomes,
// normalised as the model's loaders normalise (C*H*W values, channel-major).
type Input struct {
	// Name is the file, with "[i]" for the i-th image of an IDX file.
	Name string
	X    []float32
}

// Kind is one kind of input file: how it is recognised, which task's models take it and
// how it becomes inputs.
type Kind struct {
	// Name is what the kind's files are called in messages ("WAV files (RIFF/WAVE)"), One
	// what one of them is called ("a WAV file").
	Name, One string
	// Task is the task (arch.TaskImage, arch.TaskSpeech) whose models take these files.
	Task string
	// Match recognises the kind by a file's first bytes (at most HeadBytes of them).
	Match func(head []byte) bool
	// Read turns the file at path (open as f, at its start) into inputs of model m.
	Read func(m *modelfile.Model, f *os.File, path string) ([]Input, error)
}

// HeadBytes is how many of a file's first bytes Kind.Match sees.
const HeadBytes = 12

// kinds is the table of input kinds, tried in order (an image's RIFF container, WebP, is
// tried before WAV's); it is not changed after start-up.
var kinds = []Kind{
	{Name: "image files (PNG, JPEG, GIF, BMP, TIFF, WebP)", One: "an image file", Task: arch.TaskImage, Match: isImageHead, Read: readImage},
	{Name: "IDX files (gzipped or not)", One: "an IDX file", Task: arch.TaskImage, Match: isIDXHead, Read: readIDX},
	{Name: "WAV files (RIFF/WAVE)", One: "a WAV file", Task: arch.TaskSpeech, Match: isWAVHead, Read: readWAV},
}

// Kinds lists the input kinds ReadInputs recognises, in the order it tries them.
func Kinds() []Kind { return append([]Kind(nil), kinds...) }

// takes names the kinds of files a task's models take ("image files (...) or IDX files").
func takes(task string) string {
	var names []string
	for _, k := range kinds {
		if k.Task == task {
			names = append(names, k.Name)
		}
	}
	return strings.Join(names, " or ")
}

// ReadInputs reads the examples of one file for model m, recognised by content (Kinds):
// for image models an image file (PNG, JPEG, GIF, BMP, TIFF or WebP: one example) or an
// IDX file of unsigned bytes, plain or gzipped (every image in it); for speech models a
// WAV file (one example).
//
// Image files of any size go through the training data's preprocessing (vision.ToPixels):
// an image of the model's size is taken as it is, any other is scaled by its shorter side
// and centre-cropped; a 1-channel model takes their luma (color.GrayModel: ITU-R BT.601
// weights 0.299, 0.587, 0.114 on 16-bit values, then the high byte; grey images keep their
// values), a 3-channel model their red, green and blue values; transparent pixels count as
// composited over black. Pixels are normalised with the model's per-channel mean and std
// (data.PixelNorm, as the image loader). IDX files hold (N, H, W) images for 1-channel
// models, (N, C, H, W), or one (H, W) image. WAV clips go through the training front end:
// decoded to mono, resampled to the front end's rate with speech.Resample, turned into a
// log-mel spectrogram with speech.Frontend.LogMel (the clip fitted to the model's frames)
// and normalised with speech.Norm, as the data set loader computes them.
func ReadInputs(m *modelfile.Model, path string) ([]Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf [HeadBytes]byte
	n, err := data.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	head := buf[:n]
	task := m.Arch.Task
	if task != arch.TaskImage && task != arch.TaskSpeech {
		return nil, fmt.Errorf("%s: %w: the model's task is %q, want %s or %s", path, ErrInput, task, arch.TaskImage, arch.TaskSpeech)
	}
	for _, k := range kinds {
		if !k.Match(head) {
			continue
		}
		if k.Task != task {
			return nil, fmt.Errorf("%s: %w: %s, but this is %s model: it takes %s", path, ErrInput, k.One, article(task), takes(task))
		}
		return k.Read(m, f, path)
	}
	return nil, fmt.Errorf("%s: %w: %s model takes %s, this file starts with % x", path, ErrInput, article(task), takes(task), head)
}

// article is "an image" or "a speech".
func article(task string) string {
	if task == arch.TaskImage {
		return "an image"
	}
	return "a " + task
}

// isImageHead recognises the image formats vision.Decode reads by their first bytes.
func isImageHead(h []byte) bool {
	for _, magic := range []string{"\x89PNG\r\n\x1a\n", "\xff\xd8", "GIF8", "BM", "II*\x00", "MM\x00*"} {
		if bytes.HasPrefix(h, []byte(magic)) {
			return true
		}
	}
	return len(h) >= 12 && bytes.HasPrefix(h, []byte("RIFF")) && string(h[8:12]) == "WEBP"
}

// isIDXHead recognises gzip (a gzipped IDX file) and the IDX magic of unsigned bytes.
func isIDXHead(h []byte) bool {
	return bytes.HasPrefix(h, []byte{0x1f, 0x8b}) || bytes.HasPrefix(h, []byte{0, 0, 0x08})
}

// isWAVHead recognises a RIFF container (a WebP image is recognised before it).
func isWAVHead(h []byte) bool { return bytes.HasPrefix(h, []byte("RIFF")) }

// pixelNorm is the model's normalisation of c-channel images.
func pixelNorm(pre modelfile.Preprocess, c int) data.PixelNorm {
	return data.NewPixelNorm(pre.PerChannel(c))
}

// readImage decodes an image file of any size into the model's input through the
// training data's preprocessing (vision.ToPixels: the centre square of the shorter side
// scaled to the input size, or the pixels as they are when the image has the input's size).
func readImage(m *modelfile.Model, _ *os.File, path string) ([]Input, error) {
	a := m.Arch
	if a.InChannels != 1 && a.InChannels != 3 {
		return nil, fmt.Errorf("%s: %w: image files need a model of 1 (grey) or 3 (RGB) channels, this one has %d: give an IDX file", path, ErrInput, a.InChannels)
	}
	if a.InHeight != a.InWidth {
		return nil, fmt.Errorf("%s: %w: the model takes %dx%d inputs; image files are cut to squares, give an IDX file", path, ErrInput, a.InHeight, a.InWidth)
	}
	b, err := data.ReadFileLimited(path, MaxImageBytes)
	if err != nil {
		return nil, err
	}
	img, _, err := vision.Decode(b, path, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	px := make([]uint8, a.InChannels*a.InHeight*a.InWidth)
	vision.ToPixels(px, img, a.InChannels, a.InHeight)
	x := make([]float32, len(px))
	pixelNorm(m.Preprocess, a.InChannels).Apply(x, px)
	return []Input{{Name: path, X: x}}, nil
}

// readIDX reads every image of an IDX file.
func readIDX(m *modelfile.Model, f *os.File, path string) ([]Input, error) {
	a := m.Arch
	idx, err := data.ReadIDX(f, path, data.Limits{})
	if err != nil {
		return nil, err
	}
	d := idx.Dims
	var n, c, h, w int
	switch len(d) {
	case 2:
		n, c, h, w = 1, 1, d[0], d[1]
	case 3:
		n, c, h, w = d[0], 1, d[1], d[2]
	case 4:
		n, c, h, w = d[0], d[1], d[2], d[3]
	default:
		return nil, fmt.Errorf("%s: %w: IDX dimensions %v, want (N, H, W), (N, C, H, W) or (H, W)", path, ErrInput, d)
	}
	if c != a.InChannels || h != a.InHeight || w != a.InWidth {
		return nil, fmt.Errorf("%s: %w: IDX dimensions %v hold %dx%dx%d images, the model takes %dx%dx%d (channels x height x width)",
			path, ErrInput, d, c, h, w, a.InChannels, a.InHeight, a.InWidth)
	}
	size := c * h * w
	norm := pixelNorm(m.Preprocess, c)
	x := make([]float32, n*size)
	out := make([]Input, n)
	for i := range out {
		xi := x[i*size : (i+1)*size : (i+1)*size]
		norm.Apply(xi, idx.Data[i*size:(i+1)*size])
		out[i] = Input{Name: path + "[" + strconv.Itoa(i) + "]", X: xi}
	}
	return out, nil
}

// Frontend returns a speech model's log-mel front end, from its preprocessing metadata.
func Frontend(m *modelfile.Model) (speech.Frontend, error) {
	var fe speech.Frontend
	if m.Arch.Task != arch.TaskSpeech {
		return fe, fmt.Errorf("%w: the model's task is %q; only speech models have a front end", ErrInput, m.Arch.Task)
	}
	dec := json.NewDecoder(bytes.NewReader(m.Preprocess.Frontend))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fe); err != nil {
		return fe, fmt.Errorf("%w: metadata %q: frontend: %v", modelfile.ErrNotModel, modelfile.KeyPreprocess, err)
	}
	if err := fe.Validate(); err != nil {
		return fe, fmt.Errorf("%w: metadata %q: %w", modelfile.ErrNotModel, modelfile.KeyPreprocess, err)
	}
	return fe, nil
}

// readWAV turns a WAV file into a speech model's input.
func readWAV(m *modelfile.Model, f *os.File, path string) ([]Input, error) {
	fe, err := Frontend(m)
	if err != nil {
		return nil, err
	}
	au, err := speech.ReadWAV(f, path, speech.Limits{})
	if err != nil {
		return nil, err
	}
	if len(au.Samples) == 0 {
		return nil, fmt.Errorf("%w: %s: the WAV file holds no samples: nothing to classify", ErrInput, path)
	}
	samples := au.Samples
	if au.Rate != fe.Rate {
		samples = speech.Resample(samples, au.Rate, fe.Rate)
	}
	feat := fe.LogMel(samples)
	x := make([]float32, len(feat))
	speech.NewNorm(m.Preprocess.Mean, m.Preprocess.Std).Apply(x, feat)
	return []Input{{Name: path, X: x}}, nil
}
