package data

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeIDX writes an IDX file (gzipped when the name ends in .gz).
func writeIDX(t *testing.T, path string, dims []int, body []uint8) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".gz") {
		zw := gzip.NewWriter(f)
		defer zw.Close()
		if err := WriteIDX(zw, dims, body); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := WriteIDX(f, dims, body); err != nil {
		t.Fatal(err)
	}
}

// TestLoadIDXDir: any IDX pair loads; class names come from classes.txt, else they are the
// label numbers (never Fashion-MNIST's); 3-channel idx4 images load; a class list too short
// for the labels is refused naming the file.
func TestLoadIDXDir(t *testing.T) {
	dir := t.TempDir()
	labels := []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1}
	writeIDX(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), []int{12, 4, 4}, make([]uint8, 12*16))
	writeIDX(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), []int{12}, labels)
	writeIDX(t, filepath.Join(dir, "t10k-images-idx3-ubyte"), []int{2, 4, 4}, make([]uint8, 2*16))
	writeIDX(t, filepath.Join(dir, "t10k-labels-idx1-ubyte"), []int{2}, []uint8{3, 9})
	if !IsIDXDir(dir) {
		t.Fatal("IsIDXDir false")
	}
	d, err := LoadIDXDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if d.FashionMNIST || !slices.Equal(d.Train.ClassNames, want) || d.Train.Classes != 10 || d.Test.N != 2 {
		t.Fatalf("without classes.txt: %+v names %v", d, d.Train.ClassNames)
	}
	digits := "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n"
	os.WriteFile(filepath.Join(dir, IDXClassList), []byte(digits), 0o644)
	if d, err = LoadIDXDir(dir); err != nil || d.Test.ClassNames[9] != "nine" {
		t.Fatalf("classes.txt: %v %v", err, d)
	}
	os.WriteFile(filepath.Join(dir, IDXClassList), []byte("a\nb\n"), 0o644)
	if _, err := LoadIDXDir(dir); err == nil || !strings.Contains(err.Error(), "classes.txt") {
		t.Fatalf("short class list: %v", err)
	}

	rgb := t.TempDir()
	writeIDX(t, filepath.Join(rgb, "train-images-idx4-ubyte"), []int{2, 3, 4, 4}, make([]uint8, 2*48))
	writeIDX(t, filepath.Join(rgb, "train-labels-idx1-ubyte"), []int{2}, []uint8{0, 1})
	writeIDX(t, filepath.Join(rgb, "t10k-images-idx4-ubyte"), []int{1, 3, 4, 4}, make([]uint8, 48))
	writeIDX(t, filepath.Join(rgb, "t10k-labels-idx1-ubyte"), []int{1}, []uint8{1})
	if d, err = LoadIDXDir(rgb); err != nil || d.Train.Channels != 3 || d.Train.Classes != 2 {
		t.Fatalf("3-channel IDX: %v %+v", err, d)
	}
}

// TestLoadIDXDirRecognisesFashionMNIST: the Debian package's files, given as a plain
// directory, are recognised and named (skipped where the package is not installed).
func TestLoadIDXDirRecognisesFashionMNIST(t *testing.T) {
	if !IsIDXDir(DebianFashionMNISTDir) {
		t.Skip("dataset-fashion-mnist not installed")
	}
	d, err := LoadIDXDir(DebianFashionMNISTDir)
	if err != nil {
		t.Fatal(err)
	}
	if !d.FashionMNIST || d.Train.ClassNames[1] != "Trouser" {
		t.Fatalf("the real Fashion-MNIST not recognised: %v", d.Train.ClassNames)
	}
}
