// Command mkembed regenerates data/embedded: a balanced subset of Fashion-MNIST compiled
// into package data. It takes the first -train examples of each class from the training
// file and the first -test of each class from the test file, keeping file order, and writes
// them as gzipped IDX files (best compression, no name or time in the gzip header, so the
// output depends only on the input and the Go version's compressor).
//
// Fashion-MNIST is Copyright (c) 2017 Zalando SE (Zalando Research), MIT licensed.
//
// Run from the repository root:
//
//	go run ./data/internal/mkembed
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ofa-go/ofa/data"
)

func main() {
	src := flag.String("src", data.DebianFashionMNISTDir, "directory holding the full Fashion-MNIST IDX files")
	out := flag.String("out", filepath.Join("data", "embedded"), "directory to write the subset to")
	perTrain := flag.Int("train", 600, "training examples per class")
	perTest := flag.Int("test", 100, "test examples per class")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mkembed: ")
	if err := run(*src, *out, *perTrain, *perTest); err != nil {
		log.Fatal(err)
	}
}

func run(src, out string, perTrain, perTest int) error {
	if src == "" {
		return fmt.Errorf("-src is empty")
	}
	train, test, from, err := data.LoadFashionMNIST(src)
	if err != nil {
		return err
	}
	log.Printf("read %v", from)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, part := range []struct {
		set    *data.Images
		prefix string
		per    int
	}{{train, "train", perTrain}, {test, "t10k", perTest}} {
		sub, err := firstPerClass(part.set, part.per)
		if err != nil {
			return err
		}
		if err := writeGz(filepath.Join(out, part.prefix+"-images-idx3-ubyte.gz"),
			[]int{sub.N, sub.Height, sub.Width}, sub.Pixels); err != nil {
			return err
		}
		if err := writeGz(filepath.Join(out, part.prefix+"-labels-idx1-ubyte.gz"),
			[]int{sub.N}, sub.Labels); err != nil {
			return err
		}
	}
	return nil
}

// firstPerClass keeps the first per examples of every class, in file order.
func firstPerClass(set *data.Images, per int) (*data.Images, error) {
	seen := make([]int, set.Classes)
	size := set.ImageSize()
	sub := *set
	sub.N, sub.Pixels, sub.Labels = 0, nil, nil
	for i, l := range set.Labels {
		if seen[l] == per {
			continue
		}
		seen[l]++
		sub.N++
		sub.Pixels = append(sub.Pixels, set.Pixels[i*size:(i+1)*size]...)
		sub.Labels = append(sub.Labels, l)
	}
	for c, n := range seen {
		if n != per {
			return nil, fmt.Errorf("%s: class %d has only %d examples, want %d", set.Name, c, n, per)
		}
	}
	return &sub, sub.Validate()
}

func writeGz(path string, dims []int, b []uint8) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := data.WriteIDX(zw, dims, b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s: %v, %d bytes", path, dims, buf.Len())
	return nil
}
