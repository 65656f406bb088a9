package checkpoint

import (
	"encoding/binary"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// headerAlign is the multiple the header is padded to with spaces, as safetensors does,
// so that the tensor data starts 8-byte aligned in the file (and in a memory map of it).
const headerAlign = 8

// writeChunk is the number of bytes converted per write of tensor data, so that encoding
// needs no second copy of the tensors.
const writeChunk = 64 << 10

// Encode writes f to w in the safetensors format, deterministically: the tensors' data in
// the order of f.Tensors, a header listing them in that same order after the metadata
// (keys sorted, omitted when empty), compact JSON as Python's safetensors writes it, padded
// with spaces to a multiple of 8 bytes. For tensors given in sorted name order the output is
// byte-identical to Python's safetensors.serialize.
//
// f is checked before anything is written: names must be unique, valid UTF-8 and not
// "__metadata__"; every dimension must be >= 0 and len(Data) must equal the product of
// Shape; metadata must be valid UTF-8. Such errors wrap ErrBadCheckpoint. NaN and Inf values
// are written as they are (Decode rejects them unless Limits.AllowNonFinite), and no Limits
// apply: a file larger than DefaultLimits allows needs larger Limits to be read back.
func Encode(w io.Writer, f *File) error {
	header, err := encodeHeader(f)
	if err != nil {
		return err
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return ioErr("writing header length: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return ioErr("writing header: %w", err)
	}
	var largest int
	for _, t := range f.Tensors {
		largest = max(largest, len(t.Data))
	}
	buf := make([]byte, 0, min(4*largest, writeChunk)) // a multiple of 4

	for _, t := range f.Tensors {
		for i := 0; i < len(t.Data); {
			buf = buf[:0]
			for ; i < len(t.Data) && len(buf) < cap(buf); i++ {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(t.Data[i]))
			}
			if _, err := w.Write(buf); err != nil {
				return ioErr("writing tensor %q: %w", t.Name, err)
			}
		}
	}
	return nil
}

// encodeHeader validates f and returns its padded JSON header.
func encodeHeader(f *File) ([]byte, error) {
	keys := make([]string, 0, len(f.Metadata))
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) {
			return nil, bad("metadata key %q is not valid UTF-8", k)
		}
		if !utf8.ValidString(v) {
			return nil, bad("metadata %q: value %q is not valid UTF-8", k, v)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	b := make([]byte, 0, 64*len(f.Tensors)+32*len(keys)+16)
	b = append(b, '{')
	if len(keys) > 0 {
		b = appendString(b, metadataKey)
		b = append(b, ":{"...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, f.Metadata[k])
		}
		b = append(b, '}')
	}

	seen := make(map[string]struct{}, len(f.Tensors))
	var offset int64
	for i, t := range f.Tensors {
		switch {
		case !utf8.ValidString(t.Name):
			return nil, bad("tensor %d: name %q is not valid UTF-8", i, t.Name)
		case t.Name == metadataKey:
			return nil, bad("tensor %d: name %q is reserved for metadata", i, t.Name)
		}
		if _, dup := seen[t.Name]; dup {
			return nil, bad("tensor %q: name appears twice", t.Name)
		}
		seen[t.Name] = struct{}{}
		n, err := numElements(t.Shape)
		if err != nil {
			return nil, bad("tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != n {
			return nil, bad("tensor %q: has %d values, shape %v needs %d", t.Name, len(t.Data), t.Shape, n)
		}
		end := offset + 4*n
		if end < offset {
			return nil, bad("tensor %q: data ends past byte %d, which overflows int64", t.Name, int64(math.MaxInt64))
		}

		if len(keys) > 0 || i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t.Name)
		b = append(b, `:{"dtype":"F32","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, offset, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, end, 10)
		b = append(b, "]}"...)
		offset = end
	}
	b = append(b, '}')
	for len(b)%headerAlign != 0 {
		b = append(b, ' ')
	}
	return b, nil
}

// appendString appends s, which must be valid UTF-8, as a JSON string escaped the way
// serde_json (and so Python's safetensors) does: only '"', '\\' and control characters.
// encoding/json would also escape <, > and &, breaking byte-compatibility.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
