package data

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// ErrBadIDX is wrapped by every error about a malformed, truncated or oversized IDX file,
// so callers can tell a bad file from, say, a permission problem.
var ErrBadIDX = errors.New("bad IDX file")

// DefaultMaxElements is the element limit used when Limits.MaxElements is not set. It is
// about four times the full Fashion-MNIST training set (47,040,000 pixels), and small enough
// that a hostile header cannot make the reader claim more than 200 MB.
const DefaultMaxElements = 200_000_000

// IDX dtype codes from the format's description (http://yann.lecun.com/exdb/mnist/).
const idxUbyte = 0x08

// maxIDXDims bounds the number of dimensions; MNIST-style data never needs more than 4.
const maxIDXDims = 4

// firstChunk is the largest buffer allocated before any data has arrived when the input's
// size is not known in advance (gzip, pipes): the buffer then doubles as data arrives, so a
// header that lies about its size costs at most about twice the bytes actually present.
const firstChunk = 1 << 20

// trailingProbe bounds how many surplus bytes are counted for the error message.
const trailingProbe = 1 << 20

// Limits bounds what ReadIDX accepts, checked before any allocation.
type Limits struct {
	// MaxElements is the largest product of dimensions accepted; <= 0 means DefaultMaxElements.
	MaxElements int64
}

// DefaultLimits returns the limits ReadIDX uses for a zero Limits.
func DefaultLimits() Limits { return Limits{MaxElements: DefaultMaxElements} }

func (l Limits) maxElements() int64 {
	m := l.MaxElements
	if m <= 0 {
		m = DefaultMaxElements
	}
	return min(m, int64(math.MaxInt))
}

// IDX is a decoded IDX file of unsigned bytes: Data holds product(Dims) elements in
// row-major order (the last dimension varies fastest).
type IDX struct {
	Dims []int
	Data []uint8
}

// idxError is a format error: it reads "data: <file>: <what>" and matches ErrBadIDX (and
// the underlying cause, if any) with errors.Is.
type idxError struct {
	name  string
	msg   string
	cause error
}

func (e *idxError) Error() string {
	s := "data: " + e.name + ": " + e.msg
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *idxError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrBadIDX}
	}
	return []error{ErrBadIDX, e.cause}
}

func badIDX(name string, cause error, format string, args ...any) error {
	return &idxError{name: name, msg: fmt.Sprintf(format, args...), cause: cause}
}

// isFormatError reports whether a read error means the bytes are bad (a broken or cut-off
// compressed stream) rather than that reading itself failed.
func isFormatError(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.As(err, &corrupt)
}

// dtypeName names the IDX dtype codes, for error messages.
func dtypeName(t byte) string {
	switch t {
	case 0x08:
		return "unsigned byte"
	case 0x09:
		return "signed byte"
	case 0x0B:
		return "int16"
	case 0x0C:
		return "int32"
	case 0x0D:
		return "float32"
	case 0x0E:
		return "float64"
	}
	return "unknown"
}

// ReadIDX decodes an IDX file of unsigned bytes from r, which may be plain or gzipped
// (recognised by the gzip magic 1f 8b). name is used only in error messages.
//
// The header is validated (magic, dtype, 1 to 4 dimensions, each > 0, product within lim)
// before anything is allocated, and exactly product(Dims) data bytes must follow: a short
// file and trailing bytes are both errors. Format errors wrap ErrBadIDX; failures of r
// itself are returned wrapped with the file name but without ErrBadIDX.
func ReadIDX(r io.Reader, name string, lim Limits) (*IDX, error) {
	remaining, sized := SizeHint(r)
	br := bufio.NewReader(r)
	var src io.Reader = br
	gzipped := false
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			if isFormatError(err) || errors.Is(err, io.EOF) {
				return nil, badIDX(name, err, "bad gzip header")
			}
			return nil, fmt.Errorf("data: %s: reading: %w", name, err)
		}
		src, gzipped, sized = zr, true, false
	}
	after := ""
	if gzipped {
		after = " after decompression"
	}

	var head [4 + 4*maxIDXDims]byte
	if n, err := ReadFull(src, head[:4]); err != nil {
		return nil, readErr(name, err, "truncated header: want 4 bytes of magic, file has %d"+after, n)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, badIDX(name, nil, "bad magic: want 00 00 <dtype> <ndims>, found % x", head[:4])
	}
	if head[2] != idxUbyte {
		return nil, badIDX(name, nil, "unsupported data type 0x%02x (%s): only 0x08 (unsigned byte) is supported",
			head[2], dtypeName(head[2]))
	}
	ndims := int(head[3])
	if ndims < 1 || ndims > maxIDXDims {
		return nil, badIDX(name, nil, "header declares %d dimensions, want 1 to %d", ndims, maxIDXDims)
	}
	hdrLen := 4 + 4*ndims
	if n, err := ReadFull(src, head[4:hdrLen]); err != nil {
		return nil, readErr(name, err, "truncated header: %d dimensions need %d bytes of sizes, file has %d"+after,
			ndims, 4*ndims, n)
	}

	maxEl := lim.maxElements()
	dims := make([]int, ndims)
	total := int64(1)
	for i := range dims {
		d := int64(binary.BigEndian.Uint32(head[4+4*i:]))
		if d == 0 {
			return nil, badIDX(name, nil, "dimension %d of %s is 0, want > 0", i, dimString(head[4:hdrLen]))
		}
		// total <= maxEl here, so the division keeps the check free of overflow.
		if d > maxEl/total {
			return nil, badIDX(name, nil, "header declares %s elements, more than the limit of %d",
				dimString(head[4:hdrLen]), maxEl)
		}
		total *= d
		dims[i] = int(d)
	}
	n := int(total)
	declared := func() string { return fmt.Sprintf("%s = %d bytes of data", dimString(head[4:hdrLen]), n) }

	if sized {
		// A plain file of known size: compare before allocating anything.
		if have := remaining - int64(hdrLen); have != total {
			if have < total {
				return nil, badIDX(name, nil, "truncated: header declares %s, file has %d", declared(), max(have, 0))
			}
			return nil, badIDX(name, nil, "trailing data: header declares %s, file has %d more", declared(), have-total)
		}
	}

	var buf []byte
	if sized {
		buf = make([]byte, 0, n)
	} else {
		buf = make([]byte, 0, min(n, firstChunk))
	}
	var tailErr error
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := ReadSome(src, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		switch {
		case err == nil:
		case len(buf) == n:
			// All the data arrived; the error is about what follows it.
			tailErr = err
		case errors.Is(err, io.EOF):
			return nil, badIDX(name, nil, "truncated: header declares %s, file has %d%s", declared(), len(buf), after)
		case errors.Is(err, io.ErrUnexpectedEOF) && gzipped:
			return nil, badIDX(name, err, "truncated gzip stream: header declares %s, stream ended after %d", declared(), len(buf))
		default:
			return nil, readErr(name, err, "reading data: header declares %s, read %d%s", declared(), len(buf), after)
		}
	}

	// Reading on to EOF also makes gzip verify its checksum and size trailer.
	var extra int64
	err := tailErr
	if err == nil {
		extra, err = countTrailing(src)
	}
	switch {
	case err == nil, errors.Is(err, io.EOF):
	case errors.Is(err, io.ErrUnexpectedEOF) && gzipped:
		return nil, badIDX(name, nil, "gzip stream cut off or followed by junk after the declared %s", declared())
	default:
		return nil, readErr(name, err, "checking the end of the stream after the declared %s", declared())
	}
	if extra > 0 {
		more := ""
		if extra == trailingProbe {
			more = " at least"
		}
		return nil, badIDX(name, nil, "trailing data: header declares %s, file has%s %d more%s", declared(), more, extra, after)
	}
	return &IDX{Dims: dims, Data: buf}, nil
}

// countTrailing reads r to its end, up to trailingProbe bytes, and returns how many bytes
// it found; io.EOF is not an error.
func countTrailing(r io.Reader) (int64, error) {
	var scratch [4096]byte
	var total int64
	for total < trailingProbe {
		m, err := ReadSome(r, scratch[:min(len(scratch), int(trailingProbe-total))])
		total += int64(m)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// readErr classifies an error from reading: a cut-off or corrupt stream is a bad file
// (described by format/args), anything else is an I/O failure.
func readErr(name string, err error, format string, args ...any) error {
	if errors.Is(err, io.EOF) || isFormatError(err) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = nil // the message already says it is short
		}
		return badIDX(name, err, format, args...)
	}
	return fmt.Errorf("data: %s: %s: %w", name, fmt.Sprintf(format, args...), err)
}

// dimString renders big-endian uint32 sizes as "60000x28x28".
func dimString(b []byte) string {
	parts := make([]string, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		parts = append(parts, strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[i:])), 10))
	}
	return strings.Join(parts, "x")
}

// WriteIDX writes an uncompressed IDX file of unsigned bytes; wrap w in a gzip.Writer for
// a .gz file. dims must have 1 to 4 entries, each in 1..2^32-1, with product len(data).
func WriteIDX(w io.Writer, dims []int, data []uint8) error {
	if len(dims) < 1 || len(dims) > maxIDXDims {
		return fmt.Errorf("data: WriteIDX: %d dimensions, want 1 to %d", len(dims), maxIDXDims)
	}
	head := make([]byte, 4+4*len(dims))
	head[2], head[3] = idxUbyte, byte(len(dims))
	total, overflow := uint64(1), false
	for i, d := range dims {
		if d < 1 || uint64(d) > math.MaxUint32 {
			return fmt.Errorf("data: WriteIDX: dimension %d is %d, want 1 to %d", i, d, uint64(math.MaxUint32))
		}
		binary.BigEndian.PutUint32(head[4+4*i:], uint32(d))
		hi, lo := bits.Mul64(total, uint64(d))
		total, overflow = lo, overflow || hi != 0
	}
	if overflow || total != uint64(len(data)) {
		return fmt.Errorf("data: WriteIDX: dimensions %v do not match %d bytes of data", dims, len(data))
	}
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("data: WriteIDX: header: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("data: WriteIDX: data: %w", err)
	}
	return nil
}
