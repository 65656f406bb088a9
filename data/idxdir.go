package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IDXClassList is the optional file beside IDX files that names the classes, one per line
// in label order (e.g. "zero" to "nine" for MNIST digits).
const IDXClassList = "classes.txt"

// fashionMNISTLabelsSHA256 is the SHA-256 of the full Fashion-MNIST's training labels then
// test labels (60,000 + 10,000 bytes): an IDX directory holding exactly these labels is the
// real Fashion-MNIST and gets its class names without a classes.txt.
const fashionMNISTLabelsSHA256 = "8ab940a680640f36c0bf1d2549cb2f3b3d4068c12547116cc7b1161b1d26663d"

// IDXDir is a pair of IDX splits read from a directory, with its description.
type IDXDir struct {
	Train, Test *Images
	// FashionMNIST is true for the real Fashion-MNIST (recognised by its labels).
	FashionMNIST bool
	// Fingerprint is a hex SHA-256 of every split's pixels and labels.
	Fingerprint string
}

// IsIDXDir reports whether dir holds train-images-idx3-ubyte (or .gz, or the idx4 name).
func IsIDXDir(dir string) bool {
	for _, n := range idxImageNames("train") {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

func idxImageNames(prefix string) []string {
	return []string{prefix + "-images-idx3-ubyte", prefix + "-images-idx3-ubyte.gz",
		prefix + "-images-idx4-ubyte", prefix + "-images-idx4-ubyte.gz"}
}

// LoadIDXDir reads any pair of IDX splits from dir: train-images-idx3-ubyte (N x H x W) or
// train-images-idx4-ubyte (N x C x H x W, C = 1 or 3) with train-labels-idx1-ubyte, and the
// same with the t10k prefix, each optionally gzipped. Class names come from classes.txt in
// dir, else, for the real Fashion-MNIST, its names, else they are the label numbers; the
// number of classes is one more than the largest label (or the length of classes.txt).
func LoadIDXDir(dir string) (*IDXDir, error) {
	fsys := os.DirFS(dir)
	train, err := readAnyImageSet(fsys, dir, "train", filepath.Base(dir)+"/train")
	if err != nil {
		return nil, err
	}
	test, err := readAnyImageSet(fsys, dir, "t10k", filepath.Base(dir)+"/test")
	if err != nil {
		return nil, err
	}
	if train.Channels != test.Channels || train.Height != test.Height || train.Width != test.Width {
		return nil, fmt.Errorf("data: %s: %w: train images are %dx%dx%d, test images %dx%dx%d", dir, ErrDataset,
			train.Channels, train.Height, train.Width, test.Channels, test.Height, test.Width)
	}
	h := sha256.New()
	h.Write(train.Labels)
	h.Write(test.Labels)
	out := &IDXDir{Train: train, Test: test, FashionMNIST: hex.EncodeToString(h.Sum(nil)) == fashionMNISTLabelsSHA256 &&
		train.Channels == 1 && train.Height == 28 && train.Width == 28}
	h.Write(train.Pixels)
	h.Write(test.Pixels)
	out.Fingerprint = hex.EncodeToString(h.Sum(nil))

	maxLabel := 0
	for _, s := range []*Images{train, test} {
		for _, l := range s.Labels {
			maxLabel = max(maxLabel, int(l))
		}
	}
	var names []string
	listPath := filepath.Join(dir, IDXClassList)
	b, err := ReadFileLimited(listPath, 1<<20)
	switch {
	case err == nil:
		if names, err = ParseClassNames(string(b), listPath); err != nil {
			return nil, err
		}
		if len(names) <= maxLabel {
			return nil, fmt.Errorf("data: %s: %w: %d class names, but the labels go up to %d", listPath, ErrDataset, len(names), maxLabel)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case out.FashionMNIST:
		names = fashionMNISTClasses()
	default:
		for l := range maxLabel + 1 {
			names = append(names, strconv.Itoa(l))
		}
	}
	for _, s := range []*Images{train, test} {
		s.Classes, s.ClassNames = len(names), append([]string(nil), names...)
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseClassNames reads one name per line, ignoring blank lines and surrounding spaces, and
// refuses duplicates and more than 256 names.
func ParseClassNames(s, path string) ([]string, error) {
	var names []string
	seen := map[string]int{}
	for i, line := range strings.Split(s, "\n") {
		n := strings.TrimSpace(line)
		if n == "" {
			continue
		}
		if j, dup := seen[n]; dup {
			return nil, fmt.Errorf("data: %s: %w: line %d repeats class %q of line %d", path, ErrDataset, i+1, n, j)
		}
		seen[n] = i + 1
		names = append(names, n)
	}
	if len(names) == 0 || len(names) > 256 {
		return nil, fmt.Errorf("data: %s: %w: %d class names, want 1 to 256", path, ErrDataset, len(names))
	}
	return names, nil
}

// readAnyImageSet reads <prefix>-images-idx3-ubyte or -idx4-ubyte and the labels, without
// assuming a class count (the caller sets it).
func readAnyImageSet(fsys fs.FS, where, prefix, name string) (*Images, error) {
	base := prefix + "-images-idx3-ubyte"
	for _, n := range []string{prefix + "-images-idx4-ubyte", prefix + "-images-idx4-ubyte.gz"} {
		if _, err := fs.Stat(fsys, n); err == nil {
			base = prefix + "-images-idx4-ubyte"
		}
	}
	imgs, imgFile, err := readIDXFile(fsys, where, base)
	if err != nil {
		return nil, err
	}
	c, dims := 1, imgs.Dims
	switch {
	case len(dims) == 3:
	case len(dims) == 4 && (dims[1] == 1 || dims[1] == 3):
		c, dims = dims[1], []int{dims[0], dims[2], dims[3]}
	default:
		return nil, fmt.Errorf("data: %s: %w: images have %d dimensions %v, want count x height x width or count x channels (1 or 3) x height x width",
			imgFile, ErrDataset, len(imgs.Dims), imgs.Dims)
	}
	labels, labelFile, err := readIDXFile(fsys, where, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("data: %s: %w: labels have %d dimensions %v, want 1 (count)",
			labelFile, ErrDataset, len(labels.Dims), labels.Dims)
	}
	if dims[0] != labels.Dims[0] {
		return nil, fmt.Errorf("data: %w: %s holds %d images but %s holds %d labels",
			ErrDataset, imgFile, dims[0], labelFile, labels.Dims[0])
	}
	return &Images{Name: name, N: dims[0], Channels: c, Height: dims[1], Width: dims[2],
		Classes: 256, Pixels: imgs.Data, Labels: labels.Data}, nil
}
