package checkpoint

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// readChunk is the most tensor bytes read at once; tensor data is converted chunk by
// chunk so that decoding needs no second copy of the file.
const readChunk = 1 << 20

// tensorInfo is one validated header entry.
type tensorInfo struct {
	name       string
	order      int // position in the header, to break ties between empty tensors
	dtype      string
	shape      []int
	begin, end int64 // data_offsets, relative to the byte buffer
	elems      int64
}

// Decode reads a safetensors file of size bytes from r. Tensors come back in file order
// (see File); Metadata is never nil.
//
// Everything is validated before any tensor memory is allocated: the header length against
// lim and size; the header as UTF-8 JSON without duplicate keys, holding only "__metadata__"
// (an object of strings) and tensor entries with exactly the fields dtype, shape and
// data_offsets; dtype "F32"; dimensions >= 0 with an element count that does not overflow;
// data_offsets that hold exactly 4 bytes per element and that, sorted, tile the byte
// buffer after the header from 0 to its end with no hole, overlap or trailing byte; and the
// tensor count and total size against lim. Unless lim.AllowNonFinite, NaN and Inf values
// are rejected as the data is read.
//
// Format errors, including a file shorter than size, wrap ErrBadCheckpoint and say what
// was expected and what was found. Errors from r itself are returned wrapped, without
// ErrBadCheckpoint.
func Decode(r io.ReaderAt, size int64, lim Limits) (*File, error) {
	lim = lim.withDefaults()
	meta, infos, dataStart, err := decodeHeader(r, size, lim)
	if err != nil {
		return nil, err
	}
	bufSize := size - dataStart

	f := &File{Metadata: meta, Tensors: make([]Tensor, len(infos))}
	chunk := make([]byte, min(bufSize, readChunk))
	for i, ti := range infos {
		t := &f.Tensors[i]
		t.Name, t.Shape, t.Data = ti.name, ti.shape, make([]float32, ti.elems)
		var j int64 // elements done
		for j < ti.elems {
			k := min(int64(len(chunk))/4, ti.elems-j)
			p := chunk[:4*k]
			if err := readAt(r, p, dataStart+ti.begin+4*j, fmt.Sprintf("tensor %q", ti.name)); err != nil {
				return nil, err
			}
			for e := range k {
				bits := binary.LittleEndian.Uint32(p[4*e:])
				if !lim.AllowNonFinite && bits&0x7f800000 == 0x7f800000 {
					return nil, nonFinite(ti, j+e, bits)
				}
				t.Data[j+e] = math.Float32frombits(bits)
			}
			j += k
		}
	}
	return f, nil
}

// decodeHeader reads and checks the header (length, JSON, tensor layout against size)
// and returns the metadata, the tensors' places and where their data starts.
func decodeHeader(r io.ReaderAt, size int64, lim Limits) (meta map[string]string, infos []tensorInfo, dataStart int64, err error) {
	if size < 8 {
		return nil, nil, 0, bad("file is %d bytes, too short for the 8-byte header length", size)
	}
	var prefix [8]byte
	if err := readAt(r, prefix[:], 0, "header length"); err != nil {
		return nil, nil, 0, err
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > uint64(lim.MaxHeaderBytes) {
		return nil, nil, 0, bad("header length %d exceeds the limit of %d bytes (Limits.MaxHeaderBytes)", n, lim.MaxHeaderBytes)
	}
	if n > uint64(size-8) {
		return nil, nil, 0, bad("header length %d exceeds the %d bytes that follow it in the %d-byte file", n, size-8, size)
	}
	header := make([]byte, n)
	if err := readAt(r, header, 8, "header"); err != nil {
		return nil, nil, 0, err
	}
	meta, infos, err = parseHeader(header, lim.MaxTensors)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := checkLayout(infos, size-8-int64(n), lim); err != nil {
		return nil, nil, 0, err
	}
	return meta, infos, 8 + int64(n), nil
}

// readAt fills p from r at off. A short read means the file is shorter than the size
// Decode was given, which is a format error (a truncated file); other failures are not.
func readAt(r io.ReaderAt, p []byte, off int64, what string) error {
	got, err := r.ReadAt(p, off)
	if got == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return bad("reading %s: file ends at byte %d, want %d bytes from byte %d: %w",
			what, off+int64(got), len(p), off, io.ErrUnexpectedEOF)
	}
	return ioErr("reading %s at byte %d: %w", what, off, err)
}

// nonFinite describes the first NaN or Inf found in a tensor.
func nonFinite(ti tensorInfo, e int64, bits uint32) error {
	v := float64(math.Float32frombits(bits))
	kind := "NaN"
	if math.IsInf(v, 1) {
		kind = "+Inf"
	} else if math.IsInf(v, -1) {
		kind = "-Inf"
	}
	return bad("tensor %q: element %d (index %v) is %s, want a finite value (Limits.AllowNonFinite accepts it)",
		ti.name, e, unravel(e, ti.shape), kind)
}

// checkLayout validates each entry against its shape and the byte buffer, then sorts infos
// into file order and checks that they tile the buffer exactly.
func checkLayout(infos []tensorInfo, bufSize int64, lim Limits) error {
	for i := range infos {
		ti := &infos[i]
		if ti.dtype != dtypeF32 {
			return bad("tensor %q: dtype %q is not supported, want %q (float32)", ti.name, ti.dtype, dtypeF32)
		}
		elems, err := numElements(ti.shape)
		if err != nil {
			return bad("tensor %q: %w", ti.name, err)
		}
		ti.elems = elems
		if ti.end < ti.begin {
			return bad("tensor %q: data_offsets [%d, %d] end before they begin", ti.name, ti.begin, ti.end)
		}
		if ti.end-ti.begin != 4*elems {
			return bad("tensor %q: data_offsets [%d, %d] hold %d bytes, shape %v needs %d",
				ti.name, ti.begin, ti.end, ti.end-ti.begin, ti.shape, 4*elems)
		}
		if ti.end > bufSize {
			return bad("tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data buffer (file truncated?)",
				ti.name, ti.begin, ti.end, bufSize)
		}
	}

	slices.SortFunc(infos, func(a, b tensorInfo) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.order, b.order))
	})
	var pos int64
	for i, ti := range infos {
		switch {
		case ti.begin > pos && i == 0:
			return bad("tensor %q: data_offsets [%d, %d] leave a hole: the first tensor must begin at 0",
				ti.name, ti.begin, ti.end)
		case ti.begin > pos:
			return bad("tensor %q: data_offsets [%d, %d] leave a hole of %d bytes after tensor %q, which ends at %d",
				ti.name, ti.begin, ti.end, ti.begin-pos, infos[i-1].name, pos)
		case ti.begin < pos:
			return bad("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d",
				ti.name, ti.begin, ti.end, infos[i-1].name, pos)
		}
		pos = ti.end
	}
	if pos != bufSize {
		return bad("tensors cover %d bytes but the data buffer after the header has %d: %d trailing bytes",
			pos, bufSize, bufSize-pos)
	}
	if bufSize > lim.MaxTotalBytes {
		return bad("tensor data is %d bytes, more than the limit of %d (Limits.MaxTotalBytes)", bufSize, lim.MaxTotalBytes)
	}
	return nil
}

// parseHeader parses the JSON header by streaming tokens, which catches duplicate keys
// (encoding/json's map decoding silently keeps the last) and bounds the tensor count as it
// goes. It checks syntax and types only; checkLayout checks the values.
func parseHeader(header []byte, maxTensors int) (map[string]string, []tensorInfo, error) {
	if !utf8.Valid(header) {
		return nil, nil, bad("header is not valid UTF-8")
	}
	p := &headerParser{dec: json.NewDecoder(bytes.NewReader(header))}
	p.dec.UseNumber()
	if err := p.delim('{', "header"); err != nil {
		return nil, nil, err
	}
	meta := map[string]string{}
	var infos []tensorInfo
	seen := map[string]bool{}
	for p.dec.More() {
		key, err := p.key("header")
		if err != nil {
			return nil, nil, err
		}
		if seen[key] {
			if key == metadataKey {
				return nil, nil, bad("header has key %q twice", key)
			}
			return nil, nil, bad("tensor %q: name appears twice in the header", key)
		}
		seen[key] = true
		if key == metadataKey {
			if meta, err = p.metadata(); err != nil {
				return nil, nil, err
			}
			continue
		}
		if len(infos) == maxTensors {
			return nil, nil, bad("header lists more than %d tensors (Limits.MaxTensors)", maxTensors)
		}
		ti, err := p.tensor(key)
		if err != nil {
			return nil, nil, err
		}
		ti.order = len(infos)
		infos = append(infos, ti)
	}
	if err := p.delim('}', "header"); err != nil {
		return nil, nil, err
	}
	// Only the whitespace padding may follow the object.
	if tok, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, bad("header is not valid JSON after the top-level object: %w", err)
		}
		return nil, nil, bad("header has %s after the top-level object, want only space padding", describe(tok))
	}
	return meta, infos, nil
}

// headerParser reads the header's JSON tokens, turning syntax errors into format errors.
type headerParser struct {
	dec *json.Decoder
}

// token returns the next token; where says what is being parsed, for error messages.
func (p *headerParser) token(where string) (json.Token, error) {
	tok, err := p.dec.Token()
	switch {
	case err == io.EOF:
		return nil, bad("%s: header JSON ends early: %w", where, io.ErrUnexpectedEOF)
	case err != nil:
		return nil, bad("%s: header is not valid JSON: %w", where, err)
	}
	return tok, nil
}

// delim consumes the delimiter want.
func (p *headerParser) delim(want json.Delim, where string) error {
	tok, err := p.token(where)
	if err != nil {
		return err
	}
	if tok != want {
		return bad("%s: found %s, want %q", where, describe(tok), string(want))
	}
	return nil
}

// key reads an object key; the decoder guarantees keys are strings.
func (p *headerParser) key(where string) (string, error) {
	tok, err := p.token(where)
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", bad("%s: found %s, want a key", where, describe(tok))
	}
	return s, nil
}

// metadata reads the "__metadata__" object, whose values must all be strings.
func (p *headerParser) metadata() (map[string]string, error) {
	const where = metadataKey
	tok, err := p.token(where)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, bad("%s is %s, want an object of strings", where, describe(tok))
	}
	meta := map[string]string{}
	for p.dec.More() {
		k, err := p.key(where)
		if err != nil {
			return nil, err
		}
		if _, dup := meta[k]; dup {
			return nil, bad("%s: key %q appears twice", where, k)
		}
		tok, err := p.token(where)
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			return nil, bad("%s: value of %q is %s, want a string", where, k, describe(tok))
		}
		meta[k] = v
	}
	return meta, p.delim('}', where)
}

// tensor reads one tensor entry: exactly the fields dtype, shape and data_offsets.
func (p *headerParser) tensor(name string) (tensorInfo, error) {
	ti := tensorInfo{name: name}
	where := fmt.Sprintf("tensor %q", name)
	tok, err := p.token(where)
	if err != nil {
		return ti, err
	}
	if tok != json.Delim('{') {
		return ti, bad("%s: entry is %s, want an object with dtype, shape and data_offsets", where, describe(tok))
	}
	var hasDtype, hasShape, hasOffsets bool
	for p.dec.More() {
		field, err := p.key(where)
		if err != nil {
			return ti, err
		}
		switch field {
		case "dtype":
			if hasDtype {
				return ti, bad("%s: field %q appears twice", where, field)
			}
			hasDtype = true
			tok, err := p.token(where)
			if err != nil {
				return ti, err
			}
			s, ok := tok.(string)
			if !ok {
				return ti, bad("%s: dtype is %s, want a string", where, describe(tok))
			}
			ti.dtype = s
		case "shape":
			if hasShape {
				return ti, bad("%s: field %q appears twice", where, field)
			}
			hasShape = true
			dims, err := p.ints(where, "shape")
			if err != nil {
				return ti, err
			}
			ti.shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt {
					return ti, bad("%s: shape dimension %d overflows int", where, d)
				}
				ti.shape[i] = int(d)
			}
		case "data_offsets":
			if hasOffsets {
				return ti, bad("%s: field %q appears twice", where, field)
			}
			hasOffsets = true
			offs, err := p.ints(where, "data_offsets")
			if err != nil {
				return ti, err
			}
			if len(offs) != 2 {
				return ti, bad("%s: data_offsets has %d numbers, want 2 ([begin, end])", where, len(offs))
			}
			ti.begin, ti.end = offs[0], offs[1]
		default:
			return ti, bad("%s: unknown field %q, want only dtype, shape and data_offsets", where, field)
		}
	}
	switch {
	case !hasDtype:
		return ti, bad("%s: missing field \"dtype\"", where)
	case !hasShape:
		return ti, bad("%s: missing field \"shape\"", where)
	case !hasOffsets:
		return ti, bad("%s: missing field \"data_offsets\"", where)
	}
	return ti, p.delim('}', where)
}

// ints reads an array of non-negative integers that fit in an int64.
func (p *headerParser) ints(where, field string) ([]int64, error) {
	tok, err := p.token(where)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, bad("%s: %s is %s, want an array of integers", where, field, describe(tok))
	}
	out := []int64{}
	for p.dec.More() {
		tok, err := p.token(where)
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, bad("%s: %s holds %s, want a non-negative integer", where, field, describe(tok))
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || v < 0 {
			return nil, bad("%s: %s holds %s, want a non-negative integer below 2^63", where, field, num)
		}
		out = append(out, v)
	}
	return out, p.delim(']', where)
}

// describe names a JSON token for error messages.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		if len(t) > 40 {
			t = t[:40] + "..."
		}
		return fmt.Sprintf("the string %q", t)
	case json.Number:
		return "the number " + string(t)
	case bool:
		return fmt.Sprintf("%t", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
