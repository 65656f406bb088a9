package data

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
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
