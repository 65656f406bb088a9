package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/data/vision"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrInput is wrapped by every error about an input file that the model cannot take: an
// unknown format, a wrong size or channel count, a file of the other task.
var ErrInput = errors.New("unusable input")

// MaxPNGBytes bounds an image file for prediction (any format, the name is historical),
// checked before it is read; its header's pixel count is checked (vision.DefaultMaxPixels)
// before it is decoded. IDX and WAV files are bounded by their readers
// (data.DefaultMaxElements, speech.DefaultMaxSamples).
const MaxPNGBytes = 64 << 20

// Input is one example for prediction: where it came from and the model input it becomes,
// normalised as the model's loaders normalise (C*H*W values, channel-major).
type Input struct {
	// Name is the file, with "[i]" for the i-th image of an IDX file.
	Name string
	X    []float32
}

// ReadInputs reads the examples of one file for model m, recognised by content: for image
// models an image file (PNG, JPEG, GIF, BMP, TIFF or WebP: one example) or an IDX file of
// unsigned bytes, plain or gzipped (every image in it); for speech models a WAV file (one
// example).
//
// Image files of any size go through the training data's preprocessing (vision.ToPixels):
// an image of the model's size is taken as it is, any other is scaled by its shorter side
// and centre-cropped; a 1-channel model takes their luma (color.GrayModel: ITU-R BT.601
// weights 0.299, 0.587, 0.114 on 16-bit values, then the high byte; grey images keep their
// values), a 3-channel model their red, green and blue values; transparent pixels count as
// composited over black. Pixels are normalised with the model's per-channel mean and std.
// IDX files hold (N, H, W) images for 1-channel models, (N, C, H, W), or one (H, W) image.
// WAV clips go through the training front end: decoded to mono, resampled to the front
// end's rate with speech.Resample, turned into a log-mel spectrogram with
// speech.Frontend.LogMel (the clip fitted to the model's frames), as the data set loader
// computes them.
func ReadInputs(m *modelfile.Model, path string) ([]Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [12]byte
	n, err := data.ReadFull(f, magic[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	head := magic[:n]
	a := m.Arch
	switch a.Task {
	case arch.TaskSpeech:
		if !bytes.HasPrefix(head, []byte("RIFF")) {
			return nil, fmt.Errorf("%s: %w: a speech model takes WAV files (RIFF/WAVE), this file starts with % x", path, ErrInput, head)
		}
		x, err := wavInput(m, f, path)
		if err != nil {
			return nil, err
		}
		return []Input{{Name: path, X: x}}, nil
	case arch.TaskImage:
		switch {
		case isImageHead(head):
			f.Close()
			x, err := imageInput(m, path)
			if err != nil {
				return nil, err
			}
			return []Input{{Name: path, X: x}}, nil
		case bytes.HasPrefix(head, []byte{0x1f, 0x8b}), bytes.HasPrefix(head, []byte{0, 0, 0x08}):
			return idxInputs(m, f, path)
		}
		if bytes.HasPrefix(head, []byte("RIFF")) {
			return nil, fmt.Errorf("%s: %w: a WAV file, but this is an image model: it takes image files or IDX files (gzipped or not)", path, ErrInput)
		}
		return nil, fmt.Errorf("%s: %w: an image model takes image files (PNG, JPEG, GIF, BMP, TIFF, WebP) or IDX files (gzipped or not), this file starts with % x", path, ErrInput, head)
	}
	return nil, fmt.Errorf("%s: %w: the model's task is %q, want %s or %s", path, ErrInput, a.Task, arch.TaskImage, arch.TaskSpeech)
}

// normalizePixels turns 8-bit pixels (channel-major, any number of images) into model
// inputs exactly as data.Loader does: (pixel/255 - mean[c]) / std[c].
func normalizePixels(px []uint8, pre modelfile.Preprocess, channels int) []float32 {
	mean, std := pre.PerChannel(channels)
	plane := len(px) / channels
	x := make([]float32, len(px))
	for i, v := range px {
		c := 0
		if len(mean) > 1 {
			c = (i / plane) % channels
		}
		x[i] = (float32(v)/255 - mean[c]) / std[c]
	}
	return x
}

// imageInput decodes an image file of any size into the model's input through the
// training data's preprocessing (vision.ToPixels: the centre square of the shorter side
// scaled to the input size, or the pixels as they are when the image has the input's size).
func imageInput(m *modelfile.Model, path string) ([]float32, error) {
	a := m.Arch
	if a.InChannels != 1 && a.InChannels != 3 {
		return nil, fmt.Errorf("%s: %w: image files need a model of 1 (grey) or 3 (RGB) channels, this one has %d: give an IDX file", path, ErrInput, a.InChannels)
	}
	if a.InHeight != a.InWidth {
		return nil, fmt.Errorf("%s: %w: the model takes %dx%d inputs; image files are cut to squares, give an IDX file", path, ErrInput, a.InHeight, a.InWidth)
	}
	b, err := data.ReadFileLimited(path, MaxPNGBytes)
	if err != nil {
		return nil, err
	}
	img, _, err := vision.Decode(b, path, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	px := make([]uint8, a.InChannels*a.InHeight*a.InWidth)
	vision.ToPixels(px, img, a.InChannels, a.InHeight)
	return normalizePixels(px, m.Preprocess, a.InChannels), nil
}

// idxInputs reads every image of an IDX file.
func idxInputs(m *modelfile.Model, f *os.File, path string) ([]Input, error) {
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
	x := make([]float32, 0, len(idx.Data))
	for i := range n {
		x = append(x, normalizePixels(idx.Data[i*size:(i+1)*size], m.Preprocess, c)...)
	}
	out := make([]Input, n)
	for i := range out {
		out[i] = Input{Name: path + "[" + strconv.Itoa(i) + "]", X: x[i*size : (i+1)*size : (i+1)*size]}
	}
	return out, nil
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

// wavInput turns a WAV file into a speech model's input.
func wavInput(m *modelfile.Model, f *os.File, path string) ([]float32, error) {
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
	return NormalizeFeatures(fe.LogMel(samples), m.Preprocess), nil
}

// NormalizeFeatures turns log-mel features into model inputs exactly as speech.Loader does
// for evaluation: (feature - mean) * (1/std), in float32.
func NormalizeFeatures(feat []float32, pre modelfile.Preprocess) []float32 {
	mean, inv := pre.Mean, 1/pre.Std
	x := make([]float32, len(feat))
	for i, v := range feat {
		x[i] = (v - mean) * inv
	}
	return x
}

// ClassNames returns the model's class names in label order: the KeyClasses metadata, or
// the labels "0", "1", ... for files that do not carry it.
func ClassNames(m *modelfile.Model) ([]string, error) {
	s, ok := m.Extra[modelfile.KeyClasses]
	if !ok {
		names := make([]string, m.Arch.Classes)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		return names, nil
	}
	var names []string
	if err := json.Unmarshal([]byte(s), &names); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %v (want a JSON list of strings)", modelfile.ErrNotModel, modelfile.KeyClasses, err)
	}
	if len(names) != m.Arch.Classes {
		return nil, fmt.Errorf("%w: metadata %q names %d classes, the architecture has %d", modelfile.ErrNotModel, modelfile.KeyClasses, len(names), m.Arch.Classes)
	}
	return names, nil
}

// storeClasses records the data's class names in a model that has none (a new supernet, or
// the resume state of a run that predates the key).
func storeClasses(m *modelfile.Model, classes []string) error {
	if _, ok := m.Extra[modelfile.KeyClasses]; ok || len(classes) != m.Arch.Classes {
		return nil
	}
	b, err := json.Marshal(classes)
	if err != nil {
		return err
	}
	if m.Extra == nil {
		m.Extra = map[string]string{}
	}
	m.Extra[modelfile.KeyClasses] = string(b)
	return nil
}

// copyClasses copies the class names of model from into the metadata of a model derived
// from it.
func copyClasses(extra map[string]string, from *modelfile.Model) map[string]string {
	if c, ok := from.Extra[modelfile.KeyClasses]; ok {
		extra[modelfile.KeyClasses] = c
	}
	return extra
}

// Score is one class's probability for one input.
type Score struct {
	Label       int     `json:"label"`
	Class       string  `json:"class"`
	Probability float64 `json:"probability"`
}

// Prediction is the model's answer for one input.
type Prediction struct {
	Input string `json:"input"`
	// Logits are the model's outputs, Probabilities their softmax (in float64).
	Logits        []float32 `json:"logits"`
	Probabilities []float64 `json:"probabilities"`
	// Top are the most probable classes, most probable first (ties: lower label first).
	Top []Score `json:"top"`
}

// predictBatch is the most examples one prediction graph runs at once.
const predictBatch = 64

// Predict runs subnet s of model m (arch.Largest for anything but a supernet) on the inputs
// and returns, per input, the logits, the probabilities and the top classes (at most top).
func Predict(m *modelfile.Model, s arch.Subnet, ops nn.Ops, inputs []Input, top int) ([]Prediction, error) {
	a := m.Arch
	if err := s.Validate(a); err != nil {
		return nil, err
	}
	names, err := ClassNames(m)
	if err != nil {
		return nil, err
	}
	size := a.InChannels * a.InHeight * a.InWidth
	x := make([]float32, 0, len(inputs)*size)
	for _, in := range inputs {
		if len(in.X) != size {
			return nil, fmt.Errorf("%s: %w: %d input values, the model takes %dx%dx%d = %d", in.Name, ErrInput, len(in.X), a.InChannels, a.InHeight, a.InWidth, size)
		}
		x = append(x, in.X...)
	}
	z, err := Logits(a, m.Params, s, ops, x, len(inputs))
	if err != nil {
		return nil, err
	}
	c := a.Classes
	out := make([]Prediction, len(inputs))
	for i, in := range inputs {
		row := z[i*c : (i+1)*c : (i+1)*c]
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s: logit %d is %v", in.Name, j, v)
			}
		}
		p := Softmax(row)
		order := make([]int, c)
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(u, v int) int {
			switch {
			case p[u] > p[v]:
				return -1
			case p[u] < p[v]:
				return 1
			}
			return 0
		})
		pr := Prediction{Input: in.Name, Logits: row, Probabilities: p}
		for _, j := range order[:min(top, c)] {
			pr.Top = append(pr.Top, Score{Label: j, Class: names[j], Probability: p[j]})
		}
		out[i] = pr
	}
	return out, nil
}

// Softmax returns softmax(z) computed in float64.
func Softmax(z []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	p := make([]float64, len(z))
	var sum float64
	for i, v := range z {
		p[i] = math.Exp(float64(v) - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// Logits runs subnet s of the model (a, p) on n normalised examples x (n*C*H*W values) and
// returns n*classes logits, example-major. It builds one forward graph of at most 64
// examples (fewer if the architecture's evaluation memory budget asks for it) and runs the
// examples through it in order.
func Logits(a arch.Arch, p *supernet.Params, s arch.Subnet, ops nn.Ops, x []float32, n int) ([]float32, error) {
	size := a.InChannels * a.InHeight * a.InWidth
	if n < 1 || len(x) != n*size {
		return nil, fmt.Errorf("%w: %d input values for %d examples of %d", ErrInput, len(x), n, size)
	}
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	batch := min(n, predictBatch, train.MaxEvalBatch(a))
	if batch < 1 {
		return nil, fmt.Errorf("%w: one example of this architecture does not fit the evaluation memory budget", ErrInput)
	}
	g := G.NewGraph()
	net, err := supernet.Build(g, a, p, s, supernet.NewPatches(a, batch, tensor.Float32), ops)
	if err != nil {
		return nil, err
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	c := a.Classes
	out := make([]float32, 0, n*c)
	for lo := 0; lo < n; lo += batch {
		k := min(batch, n-lo)
		if err := supernet.Patchify(a, x[lo*size:(lo+k)*size], k, net.Patches); err != nil {
			return nil, err
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			return nil, err
		}
		z := net.Logits.Value().Data().([]float32)
		out = append(out, z[:k*c]...)
	}
	return out, nil
}
