package data

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// ReadSome calls r.Read until it returns data or an error, giving up with io.ErrNoProgress
// after 100 empty reads as bufio does: io.ReadFull and io.Copy would spin forever on a
// reader that never delivers. The file readers (IDX, WAV) read through it.
func ReadSome(r io.Reader, p []byte) (int, error) {
	for range 100 {
		if n, err := r.Read(p); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// ReadFull is io.ReadFull built on ReadSome.
func ReadFull(r io.Reader, p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		var m int
		m, err = ReadSome(r, p[n:])
		n += m
	}
	switch {
	case n == len(p):
		err = nil
	case n > 0 && errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// SizeHint returns how many bytes remain in r when that is cheap to know: in-memory readers
// and seekable regular files (os.File, embed.FS files). Readers use it to reject a header
// that declares more data than the file holds before allocating for it.
func SizeHint(r io.Reader) (int64, bool) {
	switch v := r.(type) {
	case *bytes.Reader:
		return int64(v.Len()), true
	case *bytes.Buffer:
		return int64(v.Len()), true
	case *strings.Reader:
		return int64(v.Len()), true
	case interface {
		Stat() (fs.FileInfo, error)
		io.Seeker
	}:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0, false
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil || off > fi.Size() {
			return 0, false
		}
		return fi.Size() - off, true
	}
	return 0, false
}

// ErrTooLarge is wrapped when a file is larger than its reader allows.
var ErrTooLarge = errors.New("file too large")

// ReadFileLimited reads a whole small file (a configuration, a subnet, a latency table, a
// manifest) of at most limit bytes. A regular file's size is checked before anything is
// read; devices, pipes and files that grow are cut off after limit bytes and refused, so
// /dev/zero costs at most limit bytes of memory. Errors name the file.
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	f, pipe, err := openForReading(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, want a file", path)
	}
	if fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d allowed", path, ErrTooLarge, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, limit)
	}
	if pipe && len(b) == 0 {
		return nil, fmt.Errorf("%s: is a named pipe with no writer: nothing to read", path)
	}
	return b, nil
}

// openForReading opens path for reading. A named pipe is opened without waiting for a
// writer (opening one with none blocks forever); reading it then waits for a writer's
// data, or ends at once when there is none, which pipe reports so the caller can say so.
func openForReading(path string) (f *os.File, pipe bool, err error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		return f, true, err
	}
	f, err = os.Open(path)
	return f, false, err
}
