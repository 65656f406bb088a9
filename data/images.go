package data

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
)

// ErrDataset is wrapped by every error about a dataset whose parts do not fit together
// (counts, shapes, labels), as opposed to a malformed file (ErrBadIDX).
var ErrDataset = errors.New("invalid dataset")

// DebianFashionMNISTDir is where the Debian package dataset-fashion-mnist installs the four
// gzipped IDX files; LoadFashionMNIST uses it when no directory is given.
const DebianFashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// FashionMNISTMean and FashionMNISTStd are the mean and standard deviation of the full
// Fashion-MNIST training set's pixels scaled to [0, 1], for LoaderConfig.Mean and Std.
const (
	FashionMNISTMean = 0.2860
	FashionMNISTStd  = 0.3530
)

// fashionMNISTClasses returns the class names in label order, fresh on every call so that
// no caller can edit another's.
func fashionMNISTClasses() []string {
	return []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
		"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
}

// Images is a labelled set of equally sized images, stored as bytes so that a full
// Fashion-MNIST fits in 55 MB; Loader converts them to float32 batch by batch.
type Images struct {
	// Name identifies the set in messages, e.g. "fashion-mnist/train".
	Name string
	// N is the number of examples; Channels x Height x Width the size of each.
	N, Channels, Height, Width int
	// Classes is the number of labels; every label is below it.
	Classes int
	// Pixels holds N*Channels*Height*Width bytes, example-major then channel, row, column.
	Pixels []uint8
	// Labels holds N labels in 0..Classes-1.
	Labels []uint8
	// ClassNames is empty or names each of the Classes labels.
	ClassNames []string
}

// Validate checks that sizes, pixel and label counts and labels agree, naming the first
// problem.
func (s *Images) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("data: %s: %w: %s", s.Name, ErrDataset, fmt.Sprintf(format, args...))
	}
	switch {
	case s.N < 0:
		return bad("N is %d, want >= 0", s.N)
	case s.Channels < 1 || s.Height < 1 || s.Width < 1:
		return bad("image size %dx%dx%d, want every dimension >= 1", s.Channels, s.Height, s.Width)
	case s.Classes < 1 || s.Classes > 256:
		return bad("%d classes, want 1 to 256 (labels are bytes)", s.Classes)
	case len(s.ClassNames) != 0 && len(s.ClassNames) != s.Classes:
		return bad("%d class names for %d classes", len(s.ClassNames), s.Classes)
	case len(s.Labels) != s.N:
		return bad("%d labels for %d examples", len(s.Labels), s.N)
	}
	size, ok := MulInts(s.N, s.Channels, s.Height, s.Width)
	if !ok {
		return bad("%d examples of %dx%dx%d overflow int", s.N, s.Channels, s.Height, s.Width)
	}
	if len(s.Pixels) != size {
		return bad("%d pixel bytes, want %d examples x %dx%dx%d = %d",
			len(s.Pixels), s.N, s.Channels, s.Height, s.Width, size)
	}
	for i, l := range s.Labels {
		if int(l) >= s.Classes {
			return bad("label of example %d is %d, want < %d", i, l, s.Classes)
		}
	}
	return nil
}

// MulInts multiplies non-negative ints, reporting false on overflow or a negative factor
// (for sizes read from untrusted headers, checked before allocating).
func MulInts(xs ...int) (int, bool) {
	p := uint64(1)
	for _, x := range xs {
		if x < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(p, uint64(x))
		if hi != 0 || lo > math.MaxInt {
			return 0, false
		}
		p = lo
	}
	return int(p), true
}

// ImageSize returns Channels*Height*Width, the number of bytes (and of batch floats) per example.
func (s *Images) ImageSize() int { return s.Channels * s.Height * s.Width }

// Image returns the pixels of example i, sharing Pixels' storage.
func (s *Images) Image(i int) []uint8 {
	if i < 0 || i >= s.N {
		panic(fmt.Sprintf("data: Image(%d) of %d examples", i, s.N))
	}
	per := s.ImageSize()
	return s.Pixels[i*per : (i+1)*per : (i+1)*per]
}

// ClassCounts returns how many examples carry each label.
func (s *Images) ClassCounts() []int {
	counts := make([]int, s.Classes)
	for _, l := range s.Labels {
		if int(l) < len(counts) {
			counts[l]++
		}
	}
	return counts
}

// slice returns examples [from, to) sharing s's storage; the capacities are clipped so an
// append to one part can never overwrite the other.
func (s *Images) slice(from, to int, name string) *Images {
	per := s.ImageSize()
	out := *s
	out.Name = name
	out.N = to - from
	out.Pixels = s.Pixels[from*per : to*per : to*per]
	out.Labels = s.Labels[from:to:to]
	return &out
}

// Head returns the first min(n, N) examples, e.g. a quick set for tests or calibration. It
// shares storage with s. It panics if n < 0.
func (s *Images) Head(n int) *Images {
	if n < 0 {
		panic(fmt.Sprintf("data: Head(%d)", n))
	}
	n = min(n, s.N)
	return s.slice(0, n, fmt.Sprintf("%s[:%d]", s.Name, n))
}

// Split returns the first nFirst examples and the rest (e.g. train and validation), both
// sharing storage with s. It panics unless 0 <= nFirst <= N.
func (s *Images) Split(nFirst int) (a, b *Images) {
	if nFirst < 0 || nFirst > s.N {
		panic(fmt.Sprintf("data: Split(%d) of %d examples", nFirst, s.N))
	}
	return s.slice(0, nFirst, fmt.Sprintf("%s[:%d]", s.Name, nFirst)),
		s.slice(nFirst, s.N, fmt.Sprintf("%s[%d:]", s.Name, nFirst))
}

// Source kinds: where LoadFashionMNIST found the data.
const (
	// SourcePath: the directory the caller named.
	SourcePath = "path"
	// SourceDebian: DebianFashionMNISTDir, from the Debian package dataset-fashion-mnist.
	SourceDebian = "debian"
	// SourceEmbedded: the subset compiled into the binary (see LoadEmbeddedFashionMNIST).
	SourceEmbedded = "embedded"
)

// Source records where a dataset came from, so that logs and checkpoints can say which data
// a model saw.
type Source struct {
	// Kind is SourcePath, SourceDebian or SourceEmbedded.
	Kind string
	// Path is the directory read; empty for SourceEmbedded.
	Path string
	// Train and Test are the numbers of examples loaded.
	Train, Test int
}

// String describes the source for a log line, e.g. "Fashion-MNIST from
// /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist): 60000 train /
// 10000 test".
func (s Source) String() string {
	var from string
	switch s.Kind {
	case SourceDebian:
		from = "from " + s.Path + " (Debian package dataset-fashion-mnist)"
	case SourceEmbedded:
		from = fmt.Sprintf("embedded subset (%d per class train, %d per class test)",
			embeddedTrainPerClass, embeddedTestPerClass)
	default:
		from = "from " + s.Path
	}
	return fmt.Sprintf("Fashion-MNIST %s: %d train / %d test", from, s.Train, s.Test)
}

// LoadFashionMNIST loads the Fashion-MNIST training and test sets. With dir != "" it reads
// the four standard files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally ending in .gz) from dir
// and fails if one is missing. Otherwise it reads DebianFashionMNISTDir if that exists, and
// falls back to the embedded subset. An existing but broken directory is an error, never a
// silent fallback.
func LoadFashionMNIST(dir string) (train, test *Images, src Source, err error) {
	return loadFashionMNIST(dir, DebianFashionMNISTDir)
}

// loadFashionMNIST is LoadFashionMNIST with the Debian directory as a parameter, so that
// tests can exercise each branch on any machine.
func loadFashionMNIST(dir, debianDir string) (train, test *Images, src Source, err error) {
	switch {
	case dir != "":
		src = Source{Kind: SourcePath, Path: dir}
	case isDir(debianDir):
		src = Source{Kind: SourceDebian, Path: debianDir}
	default:
		train, test, err = LoadEmbeddedFashionMNIST()
		if err != nil {
			return nil, nil, Source{}, err
		}
		return train, test, Source{Kind: SourceEmbedded, Train: train.N, Test: test.N}, nil
	}
	train, test, err = loadFashionMNISTFS(os.DirFS(src.Path), src.Path)
	if err != nil {
		return nil, nil, Source{}, err
	}
	src.Train, src.Test = train.N, test.N
	return train, test, src, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// loadFashionMNISTFS reads both splits from fsys; where names the directory in errors.
func loadFashionMNISTFS(fsys fs.FS, where string) (train, test *Images, err error) {
	train, err = readImageSet(fsys, where, "train", "fashion-mnist/train")
	if err != nil {
		return nil, nil, err
	}
	test, err = readImageSet(fsys, where, "t10k", "fashion-mnist/test")
	if err != nil {
		return nil, nil, err
	}
	if train.Height != test.Height || train.Width != test.Width {
		return nil, nil, fmt.Errorf("data: %s: %w: train images are %dx%d, test images %dx%d",
			where, ErrDataset, train.Height, train.Width, test.Height, test.Width)
	}
	return train, test, nil
}

// readImageSet reads <prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte (or .gz) of
// Fashion-MNIST: the IDX pair of readAnyImageSet, which must hold grey images of its 10
// classes.
func readImageSet(fsys fs.FS, where, prefix, name string) (*Images, error) {
	set, err := readAnyImageSet(fsys, where, prefix, name)
	if err != nil {
		return nil, err
	}
	if set.Channels != 1 {
		return nil, fmt.Errorf("data: %s: %w: %s images have %d channels, want 1 (Fashion-MNIST is grey)", where, ErrDataset, prefix, set.Channels)
	}
	set.Classes, set.ClassNames = 10, fashionMNISTClasses()
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("%w (labels from %s)", err, filepath.Join(where, prefix+"-labels-idx1-ubyte"))
	}
	return set, nil
}

// readIDXFile opens base or base.gz in fsys and decodes it; it returns the path read for
// use in later messages.
func readIDXFile(fsys fs.FS, where, base string) (*IDX, string, error) {
	for _, name := range []string{base, base + ".gz"} {
		f, err := fsys.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		path := filepath.Join(where, name)
		if err != nil {
			return nil, path, fmt.Errorf("data: %s: %w", where, err)
		}
		idx, err := ReadIDX(f, path, Limits{})
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("data: %s: %w", path, cerr)
		}
		return idx, path, err
	}
	return nil, "", fmt.Errorf("data: %s: missing %s (or %s.gz): %w", where, base, base, fs.ErrNotExist)
}

// ChannelStats returns the mean and standard deviation of each channel's pixels scaled to
// [0, 1], over every example (for per-channel normalisation measured on a training split).
// An empty set or a constant channel gives std 1, so that normalising stays defined.
func (s *Images) ChannelStats() (mean, std []float32) {
	mean, std = make([]float32, s.Channels), make([]float32, s.Channels)
	plane := s.Height * s.Width
	for c := range s.Channels {
		var hist [256]int64
		for i := range s.N {
			for _, v := range s.Image(i)[c*plane : (c+1)*plane] {
				hist[v]++
			}
		}
		var n, sum, sq float64
		for v, k := range hist {
			x := float64(v) / 255
			n += float64(k)
			sum += float64(k) * x
			sq += float64(k) * x * x
		}
		if n == 0 {
			mean[c], std[c] = 0, 1
			continue
		}
		m := sum / n
		sd := math.Sqrt(max(sq/n-m*m, 0))
		if sd == 0 {
			sd = 1
		}
		mean[c], std[c] = float32(m), float32(sd)
	}
	return mean, std
}
