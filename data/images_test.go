package data

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSet writes an IDX images/labels pair for prefix ("train" or "t10k") into dir,
// gzipped or not.
func writeSet(t *testing.T, dir, prefix string, n, h, w int, labels []uint8, gzipped bool) {
	t.Helper()
	write := func(base string, dims []int, b []uint8) {
		var buf bytes.Buffer
		if err := WriteIDX(&buf, dims, b); err != nil {
			t.Fatal(err)
		}
		out := buf.Bytes()
		if gzipped {
			base += ".gz"
			out = gz(t, out)
		}
		if err := os.WriteFile(filepath.Join(dir, base), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(prefix+"-images-idx3-ubyte", []int{n, h, w}, seq(n*h*w))
	write(prefix+"-labels-idx1-ubyte", []int{len(labels)}, labels)
}

func TestLoadEmbeddedFashionMNIST(t *testing.T) {
	train, test, err := LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set      *Images
		n, per   int
		nameWant string
	}{
		{train, 6000, 600, "fashion-mnist-embedded/train"},
		{test, 1000, 100, "fashion-mnist-embedded/test"},
	} {
		s := tc.set
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if s.N != tc.n || s.Channels != 1 || s.Height != 28 || s.Width != 28 || s.Classes != 10 || s.Name != tc.nameWant {
			t.Errorf("%s: N=%d %dx%dx%d, %d classes", s.Name, s.N, s.Channels, s.Height, s.Width, s.Classes)
		}
		for c, k := range s.ClassCounts() {
			if k != tc.per {
				t.Errorf("%s: class %d (%s) has %d examples, want %d", s.Name, c, s.ClassNames[c], k, tc.per)
			}
		}
	}
	if train.ClassNames[0] != "T-shirt/top" || train.ClassNames[9] != "Ankle boot" {
		t.Errorf("class names %q", train.ClassNames)
	}
}

// TestEmbeddedMatchesDebian regenerates the subset from the full Debian copy, as mkembed
// does, and compares: the committed files are what the README says they are.
func TestEmbeddedMatchesDebian(t *testing.T) {
	if testing.Short() || !isDir(DebianFashionMNISTDir) {
		t.Skip("needs " + DebianFashionMNISTDir + " and no -short")
	}
	full, fullTest, src, err := LoadFashionMNIST("")
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind != SourceDebian || src.Train != 60000 || src.Test != 10000 {
		t.Errorf("source %+v", src)
	}
	want := "Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist): 60000 train / 10000 test"
	if src.String() != want {
		t.Errorf("String() = %q, want %q", src, want)
	}
	train, test, err := LoadEmbeddedFashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		full, sub *Images
		per       int
	}{{full, train, 600}, {fullTest, test, 100}} {
		seen, j := make([]int, 10), 0
		for i, l := range tc.full.Labels {
			if seen[l] == tc.per {
				continue
			}
			seen[l]++
			if j >= tc.sub.N || tc.sub.Labels[j] != l || !bytes.Equal(tc.sub.Image(j), tc.full.Image(i)) {
				t.Fatalf("%s: example %d is not example %d of %s", tc.sub.Name, j, i, tc.full.Name)
			}
			j++
		}
		if j != tc.sub.N {
			t.Errorf("%s has %d examples, want %d", tc.sub.Name, tc.sub.N, j)
		}
	}
}

func TestLoadFashionMNISTFromDir(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, "train", 4, 3, 2, []uint8{0, 9, 3, 3}, true)
	writeSet(t, dir, "t10k", 2, 3, 2, []uint8{1, 2}, false) // plain files are accepted too
	train, test, src, err := LoadFashionMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind != SourcePath || src.Path != dir || src.Train != 4 || src.Test != 2 {
		t.Errorf("source %+v", src)
	}
	if got, want := src.String(), "Fashion-MNIST from "+dir+": 4 train / 2 test"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if train.N != 4 || train.Height != 3 || train.Width != 2 || !bytes.Equal(train.Pixels, seq(24)) ||
		!bytes.Equal(train.Labels, []uint8{0, 9, 3, 3}) || test.N != 2 || len(test.ClassNames) != 10 {
		t.Errorf("train %+v, test %+v", train, test)
	}
}

func TestLoadFashionMNISTFallbacks(t *testing.T) {
	debian := t.TempDir()
	writeSet(t, debian, "train", 3, 2, 2, []uint8{0, 1, 2}, true)
	writeSet(t, debian, "t10k", 1, 2, 2, []uint8{5}, true)

	_, _, src, err := loadFashionMNIST("", debian)
	if err != nil || src.Kind != SourceDebian || src.Path != debian || src.Train != 3 {
		t.Errorf("with the Debian directory: %+v, %v", src, err)
	}
	_, _, src, err = loadFashionMNIST("", filepath.Join(debian, "absent"))
	if err != nil || src.Kind != SourceEmbedded || src.Train != 6000 || src.Test != 1000 {
		t.Errorf("without it: %+v, %v", src, err)
	}
	if got, want := src.String(), "Fashion-MNIST embedded subset (600 per class train, 100 per class test): 6000 train / 1000 test"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	// A broken Debian directory is reported, not silently replaced.
	if err := os.Remove(filepath.Join(debian, "t10k-labels-idx1-ubyte.gz")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := loadFashionMNIST("", debian); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("broken Debian directory: err = %v", err)
	}
}

func TestLoadFashionMNISTErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string)
		target  error
		wantMsg string
	}{
		{"missing directory", func(*testing.T, string) {}, fs.ErrNotExist, "missing train-images-idx3-ubyte (or train-images-idx3-ubyte.gz)"},
		{"missing test labels", func(t *testing.T, dir string) {
			writeSet(t, dir, "train", 2, 2, 2, []uint8{0, 1}, true)
			writeSet(t, dir, "t10k", 2, 2, 2, []uint8{0, 1}, true)
			os.Remove(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
		}, fs.ErrNotExist, "missing t10k-labels-idx1-ubyte"},
		{"count mismatch", func(t *testing.T, dir string) {
			writeSet(t, dir, "train", 3, 2, 2, []uint8{0, 1}, true)
		}, ErrDataset, "holds 3 images but"},
		{"label out of range", func(t *testing.T, dir string) {
			writeSet(t, dir, "train", 2, 2, 2, []uint8{0, 10}, true)
		}, ErrDataset, "label of example 1 is 10, want < 10"},
		{"corrupt file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte"), []byte{0, 0, 8, 3, 0}, 0o644)
		}, ErrBadIDX, "train-images-idx3-ubyte: truncated header"},
		{"labels as images", func(t *testing.T, dir string) {
			var buf bytes.Buffer
			WriteIDX(&buf, []int{4}, seq(4))
			os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte"), buf.Bytes(), 0o644)
		}, ErrDataset, "images have 1 dimensions"},
		{"image sizes differ", func(t *testing.T, dir string) {
			writeSet(t, dir, "train", 2, 2, 2, []uint8{0, 1}, true)
			writeSet(t, dir, "t10k", 2, 3, 2, []uint8{0, 1}, true)
		}, ErrDataset, "train images are 2x2, test images 3x2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fmnist")
			os.Mkdir(dir, 0o755)
			tc.setup(t, dir)
			if tc.name == "missing directory" {
				os.Remove(dir)
			}
			_, _, _, err := LoadFashionMNIST(dir)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want %v containing %q", err, tc.target, tc.wantMsg)
			}
		})
	}
}

func tinySet() *Images {
	return &Images{Name: "tiny", N: 3, Channels: 1, Height: 2, Width: 2, Classes: 3,
		Pixels: seq(12), Labels: []uint8{0, 1, 2}}
}

func TestImagesValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *Images)
		ok     bool
	}{
		{"valid", func(*Images) {}, true},
		{"empty", func(s *Images) { s.N, s.Pixels, s.Labels = 0, nil, nil }, true},
		{"names", func(s *Images) { s.ClassNames = []string{"a", "b", "c"} }, true},
		{"negative N", func(s *Images) { s.N = -1 }, false},
		{"zero width", func(s *Images) { s.Width = 0 }, false},
		{"no classes", func(s *Images) { s.Classes = 0 }, false},
		{"too many classes", func(s *Images) { s.Classes = 257 }, false},
		{"wrong name count", func(s *Images) { s.ClassNames = []string{"a"} }, false},
		{"short labels", func(s *Images) { s.Labels = s.Labels[:2] }, false},
		{"short pixels", func(s *Images) { s.Pixels = s.Pixels[:11] }, false},
		{"label too large", func(s *Images) { s.Labels[1] = 3 }, false},
		{"overflow", func(s *Images) { s.Height, s.Width = 1<<40, 1<<40 }, false},
	} {
		s := tinySet()
		tc.change(s)
		err := s.Validate()
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrDataset)) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestImagesHeadSplit(t *testing.T) {
	s := tinySet()
	for _, tc := range []struct {
		n, want int
	}{{0, 0}, {2, 2}, {3, 3}, {10, 3}} {
		h := s.Head(tc.n)
		if h.N != tc.want || len(h.Labels) != tc.want || !bytes.Equal(h.Pixels, s.Pixels[:4*tc.want]) || h.Validate() != nil {
			t.Errorf("Head(%d) = %+v", tc.n, h)
		}
	}
	for nFirst := 0; nFirst <= s.N; nFirst++ {
		a, b := s.Split(nFirst)
		if a.N != nFirst || b.N != s.N-nFirst || a.Validate() != nil || b.Validate() != nil ||
			!bytes.Equal(append(append([]uint8{}, a.Pixels...), b.Pixels...), s.Pixels) ||
			!bytes.Equal(append(append([]uint8{}, a.Labels...), b.Labels...), s.Labels) {
			t.Errorf("Split(%d) = %+v, %+v", nFirst, a, b)
		}
		// Appending to the first part must not overwrite the second.
		_ = append(a.Labels, 99)
		if !bytes.Equal(s.Labels, []uint8{0, 1, 2}) {
			t.Fatalf("append to Split(%d)'s first part changed the set: %v", nFirst, s.Labels)
		}
	}
	if a, b := s.Split(1); a.Name != "tiny[:1]" || b.Name != "tiny[1:]" {
		t.Errorf("names %q, %q", a.Name, b.Name)
	}
	for _, bad := range []func(){func() { s.Head(-1) }, func() { s.Split(-1) }, func() { s.Split(4) }, func() { s.Image(3) }} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "data: ") {
					t.Errorf("recovered %v, want a data: panic", r)
				}
			}()
			bad()
		}()
	}
}

// TestMulInts: products that fit are exact; overflow and negative factors are refused.
func TestMulInts(t *testing.T) {
	for _, c := range []struct {
		xs   []int
		want int
		ok   bool
	}{
		{nil, 1, true}, {[]int{6000, 28, 28}, 4704000, true}, {[]int{0, math.MaxInt}, 0, true},
		{[]int{1 << 32, 1 << 32}, 0, false}, {[]int{math.MaxInt, 2}, 0, false}, {[]int{3, -1}, 0, false},
	} {
		if got, ok := MulInts(c.xs...); got != c.want || ok != c.ok {
			t.Errorf("MulInts(%v) = %d, %v; want %d, %v", c.xs, got, ok, c.want, c.ok)
		}
	}
}
