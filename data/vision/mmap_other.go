//go:build !unix

package vision

import (
	"io"
	"os"
)

// mapFile reads the first size bytes of f (no memory mapping on this system).
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	b := make([]byte, size)
	_, err := io.ReadFull(io.NewSectionReader(f, 0, int64(size)), b)
	return b, func() error { return nil }, err
}

// mapWritable returns a buffer written back to f when released.
func mapWritable(f *os.File, size int) ([]byte, func() error, error) {
	b := make([]byte, size)
	return b, func() error { _, err := f.WriteAt(b, 0); return err }, nil
}
