package infer

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/internal/testfile"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"gorgonia.org/tensor"
)

// tinyModel is an untrained model of architecture a with seeded weights whose biases and
// norms are perturbed too, so that every input pixel matters to the logits.
func tinyModel(t *testing.T, a arch.Arch, pre modelfile.Preprocess) *modelfile.Model {
	t.Helper()
	p, err := supernet.NewParams(a, tensor.Float32, 11)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range p.Names() {
		w := p.Float32(name)
		for j := range w {
			w[j] += 0.05 * float32(math.Sin(float64(7*i+13*j)))
		}
	}
	return &modelfile.Model{Kind: modelfile.KindExtracted, Arch: a, Params: p, Preprocess: pre, Extra: map[string]string{}}
}

// TestPredictImages: IDX and PNG files of embedded test images become exactly the inputs
// the evaluation loader makes, and the predictions' accuracy and loss on them equal what
// `ofa eval` (train.Evaluate) measures on the same images.
func TestPredictImages(t *testing.T) {
	const n = 70 // more than one prediction graph's batch
	_, test, err := data.LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	test = test.Head(n)
	a := arch.Default()
	a.Dim, a.HeadDim = 16, 4
	a.Layers = arch.Uniform(2, arch.Layer{Heads: 2, MLP: 24})
	m := tinyModel(t, a, modelfile.Preprocess{Mean: data.FashionMNISTMean, Std: data.FashionMNISTStd})
	if err := m.SetClassNames(test.ClassNames); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{n, 28, 28}, test.Pixels); err != nil {
		t.Fatal(err)
	}
	inputs, err := ReadInputs(m, testfile.Write(t, filepath.Join(dir, "test.idx"), idx.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) != n || inputs[5].Name != filepath.Join(dir, "test.idx")+"[5]" {
		t.Fatalf("%d inputs, the 6th named %q", len(inputs), inputs[5].Name)
	}
	l, err := data.NewLoader(test, data.LoaderConfig{BatchSize: n, Mean: m.Preprocess.Mean, Std: m.Preprocess.Std})
	if err != nil {
		t.Fatal(err)
	}
	var b data.Batch
	l.Batch(0, 0, &b)
	size := 28 * 28
	for i, in := range inputs {
		if !slices.Equal(in.X, b.X[i*size:(i+1)*size]) {
			t.Fatalf("IDX image %d differs from the loader's input", i)
		}
	}

	// PNG round trip, grey and colour (grey colours have luma equal to their value)
	gray := image.NewGray(image.Rect(0, 0, 28, 28))
	rgb := image.NewRGBA(image.Rect(0, 0, 28, 28))
	for y := range 28 {
		for x := range 28 {
			v := test.Image(3)[y*28+x]
			gray.SetGray(x, y, color.Gray{Y: v})
			rgb.SetRGBA(x, y, color.RGBA{R: v, G: v, B: v, A: 255})
		}
	}
	// a wider image whose centre square is the test image: cropped, not rescaled
	wide := image.NewGray(image.Rect(0, 0, 40, 28))
	for y := range 28 {
		for x := range 28 {
			wide.SetGray(x+6, y, color.Gray{Y: test.Image(3)[y*28+x]})
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, gray, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadInputs(m, testfile.Write(t, filepath.Join(dir, "gray.jpg"), jb.Bytes())); err != nil || len(got) != 1 || len(got[0].X) != size {
		t.Errorf("JPEG input: %v", err)
	}
	for name, img := range map[string]image.Image{"gray.png": gray, "rgb.png": rgb, "wide.png": wide} {
		got, err := ReadInputs(m, testfile.Write(t, filepath.Join(dir, name), testfile.PNG(t, img)))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !slices.Equal(got[0].X, inputs[3].X) {
			t.Errorf("%s: the PNG's input differs from the IDX image's", name)
		}
	}

	preds, err := Predict(m, arch.Largest(a), nn.Fused{}, inputs, 3)
	if err != nil {
		t.Fatal(err)
	}
	correct, loss := 0, 0.0
	for i, p := range preds {
		if len(p.Logits) != 10 || len(p.Top) != 3 {
			t.Fatalf("prediction %d: %d logits, %d top classes", i, len(p.Logits), len(p.Top))
		}
		sum := 0.0
		for _, q := range p.Probabilities {
			sum += q
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("prediction %d: probabilities sum to %v", i, sum)
		}
		best := p.Top[0]
		if best.Class != test.ClassNames[best.Label] || p.Top[0].Probability < p.Top[1].Probability || p.Top[1].Probability < p.Top[2].Probability {
			t.Fatalf("prediction %d: top %v", i, p.Top)
		}
		if best.Label == int(test.Labels[i]) {
			correct++
		}
		loss -= math.Log(p.Probabilities[test.Labels[i]])
	}
	res, err := train.Evaluate(a, m.Params, nn.Fused{}, l, n, []train.Named{{Name: "model", Subnet: arch.Largest(a)}})
	if err != nil {
		t.Fatal(err)
	}
	if acc := float64(correct) / n; acc != res[0].Accuracy || math.Abs(loss/n-res[0].Loss) > 1e-5 {
		t.Fatalf("predictions: accuracy %v, loss %v; evaluation: accuracy %v, loss %v", acc, loss/n, res[0].Accuracy, res[0].Loss)
	}
	if slices.Equal(preds[0].Logits, preds[1].Logits) {
		t.Fatal("two different images have the same logits; the test would prove nothing")
	}

	// inputs the model cannot take
	small := image.NewGray(image.Rect(0, 0, 27, 28))
	wav := filepath.Join(dir, "tone.wav")
	var w bytes.Buffer
	if err := speech.WriteWAV(&w, &speech.Audio{Rate: 8000, Samples: make([]float32, 800)}, 16); err != nil {
		t.Fatal(err)
	}
	testfile.Write(t, wav, w.Bytes())
	var idx4 bytes.Buffer
	if err := data.WriteIDX(&idx4, []int{1, 3, 28, 28}, make([]uint8, 3*28*28)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"cut.png", testfile.PNG(t, small)[:60], "bad image file"},
		{"clip.wav", w.Bytes(), "a WAV file, but this is an image model"},
		{"notes.txt", []byte("hello"), "takes image files (PNG, JPEG"},
		{"rgb.idx", idx4.Bytes(), "3x28x28"},
	} {
		_, err := ReadInputs(m, testfile.Write(t, filepath.Join(dir, c.name), c.body))
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: error %v, want %v naming the file and %q", c.name, err, ErrInput, c.want)
		}
	}
}

// tone is a clip of two sine waves.
func tone(rate int, seconds, f1, f2 float64) *speech.Audio {
	x := make([]float32, int(float64(rate)*seconds))
	for i := range x {
		tt := float64(i) / float64(rate)
		x[i] = float32(0.4*math.Sin(2*math.Pi*f1*tt) + 0.2*math.Sin(2*math.Pi*f2*tt))
	}
	return &speech.Audio{Rate: rate, Samples: x}
}

// TestPredictWAV: a WAV clip (8 kHz, so resampled; longer than the model's frames, so
// cropped) becomes exactly the input the speech data set loader makes of it, and predicts
// the logits of that input.
func TestPredictWAV(t *testing.T) {
	fe := speech.DefaultFrontend()
	fe.Mels, fe.Frames = 16, 20
	dir := t.TempDir()
	for class, clip := range map[string]*speech.Audio{"high": tone(8000, 0.45, 1500, 2300), "low": tone(8000, 0.15, 300, 700)} {
		var w bytes.Buffer
		if err := speech.WriteWAV(&w, clip, 16); err != nil {
			t.Fatal(err)
		}
		testfile.Write(t, filepath.Join(dir, class, "synth_nohash_0.wav"), w.Bytes())
	}
	testfile.Write(t, filepath.Join(dir, speech.ValidationList), nil)
	testfile.Write(t, filepath.Join(dir, speech.TestingList), nil)
	set, _, _, err := speech.LoadCommands(dir, fe, nil)
	if err != nil {
		t.Fatal(err)
	}
	fej, _ := json.Marshal(fe)
	st := set.Stats()
	pre := modelfile.Preprocess{Mean: st.Mean, Std: st.Std, Frontend: fej}
	a := arch.Arch{Task: arch.TaskSpeech, InChannels: 1, InHeight: fe.Mels, InWidth: fe.Frames, PatchHeight: fe.Mels, PatchWidth: 4,
		Dim: 16, HeadDim: 4, Classes: 2, NormEps: 1e-6, Activation: arch.ActivationGELUTanh,
		Layers: arch.Uniform(2, arch.Layer{Heads: 2, MLP: 24})}
	m := tinyModel(t, a, pre)
	l, err := speech.NewLoader(set, speech.LoaderConfig{BatchSize: 2, Mean: pre.Mean, Std: pre.Std})
	if err != nil {
		t.Fatal(err)
	}
	var b data.Batch
	l.Batch(0, 0, &b)
	size := fe.FeatureSize()
	for i, class := range set.ClassNames {
		in, err := ReadInputs(m, filepath.Join(dir, class, "synth_nohash_0.wav"))
		if err != nil {
			t.Fatal(err)
		}
		if len(in) != 1 || !slices.Equal(in[0].X, b.X[i*size:(i+1)*size]) {
			t.Fatalf("%s: the WAV file's input differs from the data set's", class)
		}
		preds, err := Predict(m, arch.Largest(a), nn.Fused{}, in, 5)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Logits(a, m.Params, arch.Largest(a), nn.Fused{}, b.X[i*size:(i+1)*size], 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(preds[0].Logits, want) || len(preds[0].Top) != 2 || preds[0].Top[0].Class != strings.TrimSpace(preds[0].Top[0].Class) {
			t.Fatalf("%s: prediction %+v, logits of the data set's input %v", class, preds[0], want)
		}
	}
	if slices.Equal(b.X[:size], b.X[size:2*size]) {
		t.Fatal("the two clips have the same features; the test would prove nothing")
	}
	// a PNG for a speech model is refused
	png := testfile.Write(t, filepath.Join(dir, "x.png"), testfile.PNG(t, image.NewGray(image.Rect(0, 0, fe.Frames, fe.Mels))))
	if _, err := ReadInputs(m, png); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "WAV") {
		t.Errorf("PNG for a speech model: %v", err)
	}
}

// TestInputKinds: each kind of file is recognised by its first bytes whatever its name (a
// WebP image is not taken for a WAV clip), a file of the other task's kind is refused
// naming both, and each task's message lists the kinds its models take.
func TestInputKinds(t *testing.T) {
	dir := t.TempDir()
	image := &modelfile.Model{Arch: arch.Arch{Task: arch.TaskImage}}
	speechModel := &modelfile.Model{Arch: arch.Arch{Task: arch.TaskSpeech}}
	webp := append([]byte("RIFF\x10\x00\x00\x00WEBPVP8 "), make([]byte, 8)...)
	wav := append([]byte("RIFF\x10\x00\x00\x00WAVEfmt "), make([]byte, 8)...)
	for _, c := range []struct {
		name string
		m    *modelfile.Model
		body []byte
		want string
	}{
		{"webp.bin", speechModel, webp, "an image file, but this is a speech model: it takes WAV files (RIFF/WAVE)"},
		{"wav.png", image, wav, "a WAV file, but this is an image model: it takes image files (PNG, JPEG, GIF, BMP, TIFF, WebP) or IDX files (gzipped or not)"},
		{"idx.wav", speechModel, []byte{0, 0, 0x08, 1, 0, 0, 0, 1, 0}, "an IDX file, but this is a speech model"},
		{"empty.png", image, nil, "an image model takes image files (PNG, JPEG, GIF, BMP, TIFF, WebP) or IDX files (gzipped or not), this file starts with"},
		{"text.wav", speechModel, []byte("hello"), "a speech model takes WAV files (RIFF/WAVE), this file starts with 68 65 6c 6c 6f"},
	} {
		_, err := ReadInputs(c.m, testfile.Write(t, filepath.Join(dir, c.name), c.body))
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: error %v, want %v naming the file and %q", c.name, err, ErrInput, c.want)
		}
	}
}

// TestPerChannelInputs: a 3-channel model with a mean and std per channel reads an IDX file
// of colour images into exactly the inputs the image loader makes with the same
// statistics (both through data.PixelNorm), and an RGB PNG of one of them into the same.
func TestPerChannelInputs(t *testing.T) {
	const n, side = 3, 8
	px := make([]uint8, n*3*side*side)
	for i := range px {
		px[i] = uint8(37*i + i/7)
	}
	mean, std := []float32{0.4, 0.5, 0.6}, []float32{0.2, 0.25, 0.3}
	a := arch.Default()
	a.InChannels, a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth = 3, side, side, 4, 4
	m := tinyModel(t, a, modelfile.ImagePreprocess(mean, std))
	dir := t.TempDir()
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{n, 3, side, side}, px); err != nil {
		t.Fatal(err)
	}
	inputs, err := ReadInputs(m, testfile.Write(t, filepath.Join(dir, "rgb.idx"), idx.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	set := &data.Images{Name: "rgb", N: n, Channels: 3, Height: side, Width: side, Classes: 1, Pixels: px, Labels: make([]uint8, n)}
	l, err := data.NewLoader(set, data.LoaderConfig{BatchSize: n, Mean: 0.5, Std: 0.25, ChannelMean: mean, ChannelStd: std})
	if err != nil {
		t.Fatal(err)
	}
	var b data.Batch
	l.Batch(0, 0, &b)
	size := 3 * side * side
	for i, in := range inputs {
		if !slices.Equal(in.X, b.X[i*size:(i+1)*size]) {
			t.Fatalf("IDX image %d differs from the loader's input", i)
		}
	}
	rgb := image.NewRGBA(image.Rect(0, 0, side, side))
	img := set.Image(1)
	for y := range side {
		for x := range side {
			p := y*side + x
			rgb.SetRGBA(x, y, color.RGBA{R: img[p], G: img[side*side+p], B: img[2*side*side+p], A: 255})
		}
	}
	got, err := ReadInputs(m, testfile.Write(t, filepath.Join(dir, "rgb.png"), testfile.PNG(t, rgb)))
	if err != nil || len(got) != 1 || !slices.Equal(got[0].X, inputs[1].X) {
		t.Fatalf("the RGB PNG's input differs from the IDX image's (%v)", err)
	}
	if slices.Equal(inputs[0].X[:side*side], inputs[0].X[side*side:2*side*side]) {
		t.Fatal("two channels have the same input; the test would prove nothing")
	}
}
