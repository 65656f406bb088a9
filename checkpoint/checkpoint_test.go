package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the files in testdata")

// smallFile is the content of the golden file testdata/small.safetensors: a matrix, a
// scalar, an empty tensor and a vector of awkward values, plus metadata.
func smallFile() *File {
	return &File{
		Metadata: map[string]string{"format": "pt", "arch": `{"dim":2,"layers":[{"heads":1}]}`},
		Tensors: []Tensor{
			{Name: "blocks.0.attn.qkv.weight", Shape: []int{3, 2}, Data: []float32{1, 2, 3, 4, 5, 6}},
			{Name: "scale", Shape: []int{}, Data: []float32{0.125}},
			{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
			{Name: "head.bias", Shape: []int{4}, Data: []float32{float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32, -1.5}},
		},
	}
}

// encode returns Encode's output, failing the test on error.
func encode(t testing.TB, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, f); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

// decode decodes b with lim.
func decode(b []byte, lim Limits) (*File, error) {
	return Decode(bytes.NewReader(b), int64(len(b)), lim)
}

// raw builds a file by hand, independently of Encode: the header exactly as given (no
// padding added) and then data, which may be float32s or raw bytes.
func raw(header string, data ...float32) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for _, v := range data {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// sameFile reports how got differs from want: names, shapes, metadata (nil equals empty)
// and data bit for bit, so that NaN payloads and -0 count.
func sameFile(t testing.TB, got, want *File) {
	t.Helper()
	if len(got.Metadata) != len(want.Metadata) {
		t.Errorf("metadata = %q, want %q", got.Metadata, want.Metadata)
	}
	for k, v := range want.Metadata {
		if g, ok := got.Metadata[k]; !ok || g != v {
			t.Errorf("metadata[%q] = %q, %t; want %q", k, g, ok, v)
		}
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i, w := range want.Tensors {
		g := got.Tensors[i]
		if g.Name != w.Name {
			t.Errorf("tensor %d: name %q, want %q", i, g.Name, w.Name)
		}
		if !slices.Equal(g.Shape, w.Shape) || g.Shape == nil {
			t.Errorf("tensor %q: shape %v (nil %t), want %v", w.Name, g.Shape, g.Shape == nil, w.Shape)
		}
		if len(g.Data) != len(w.Data) || g.Data == nil {
			t.Errorf("tensor %q: %d values (nil %t), want %d", w.Name, len(g.Data), g.Data == nil, len(w.Data))
			continue
		}
		for j := range w.Data {
			if math.Float32bits(g.Data[j]) != math.Float32bits(w.Data[j]) {
				t.Errorf("tensor %q: Data[%d] = %v, want %v", w.Name, j, g.Data[j], w.Data[j])
				break
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		f    *File
	}{
		{"nothing", &File{}},
		{"metadata only", &File{Metadata: map[string]string{"format": "pt"}}},
		{"scalar", &File{Tensors: []Tensor{{Name: "s", Shape: []int{}, Data: []float32{-7}}}}},
		{"zero size", &File{Tensors: []Tensor{{Name: "z", Shape: []int{3, 0, 2}, Data: []float32{}}}}},
		{"only zero size", &File{Tensors: []Tensor{
			{Name: "z1", Shape: []int{0}, Data: []float32{}},
			{Name: "z2", Shape: []int{0, 0}, Data: []float32{}},
		}}},
		{"zero size between", &File{Tensors: []Tensor{
			{Name: "a", Shape: []int{1}, Data: []float32{1}},
			{Name: "z", Shape: []int{0}, Data: []float32{}},
			{Name: "b", Shape: []int{1}, Data: []float32{2}},
		}}},
		{"small", smallFile()},
		{"unsorted names kept in order", &File{Tensors: []Tensor{
			{Name: "z", Shape: []int{1}, Data: []float32{1}},
			{Name: "a", Shape: []int{2}, Data: []float32{2, 3}},
		}}},
		{"awkward strings", &File{
			Metadata: map[string]string{"": "", "<&>": "line\nbreak\t\"quoted\" \\ \x01\x1f\x7f", "héllo": "wörld ✓ 😀"},
			Tensors: []Tensor{
				{Name: "", Shape: []int{1}, Data: []float32{1}},
				{Name: "a\"b\\c\n\u2028", Shape: []int{1}, Data: []float32{2}},
				{Name: "名前", Shape: []int{1, 1, 1, 1, 1, 1}, Data: []float32{3}},
			},
		}},
		{"larger than a write chunk", &File{Tensors: []Tensor{
			{Name: "big", Shape: []int{3, writeChunk/4 + 7}, Data: ramp(3 * (writeChunk/4 + 7))},
			{Name: "tail", Shape: []int{5}, Data: ramp(5)},
		}}},
		{"larger than a read chunk", &File{Tensors: []Tensor{
			{Name: "big", Shape: []int{readChunk/4 + 3}, Data: ramp(readChunk/4 + 3)},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encode(t, tt.f)
			got, err := decode(b, Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.Metadata == nil {
				t.Error("Metadata is nil, want an empty map")
			}
			sameFile(t, got, tt.f)
		})
	}
}

// ramp returns n distinct finite values.
func ramp(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)*0.5 - 3
	}
	return out
}

func TestEncodeDeterministic(t *testing.T) {
	// Same content, maps filled in different orders: Go randomises map iteration, so
	// repeated encodings would differ if Encode ranged over the map.
	a := smallFile()
	b := smallFile()
	b.Metadata = map[string]string{}
	for _, k := range []string{"arch", "format", "z", "a", "m"} {
		b.Metadata[k] = "v" + k
	}
	a.Metadata = map[string]string{}
	for _, k := range []string{"m", "z", "format", "a", "arch"} {
		a.Metadata[k] = "v" + k
	}
	first := encode(t, a)
	for range 20 {
		if got := encode(t, a); !bytes.Equal(got, first) {
			t.Fatalf("encoding twice differs:\n%q\n%q", got, first)
		}
		if got := encode(t, b); !bytes.Equal(got, first) {
			t.Fatalf("same content, different map order, differs:\n%q\n%q", got, first)
		}
	}
	want := `{"__metadata__":{"a":"va","arch":"varch","format":"vformat","m":"vm","z":"vz"},` +
		`"blocks.0.attn.qkv.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},` +
		`"scale":{"dtype":"F32","shape":[],"data_offsets":[24,28]},` +
		`"empty":{"dtype":"F32","shape":[0,4],"data_offsets":[28,28]},` +
		`"head.bias":{"dtype":"F32","shape":[4],"data_offsets":[28,44]}}`
	n := binary.LittleEndian.Uint64(first)
	if got := strings.TrimRight(string(first[8:8+n]), " "); got != want {
		t.Errorf("header\n%s\nwant\n%s", got, want)
	}
}

func TestHeaderAlignment(t *testing.T) {
	for n := range 17 {
		f := &File{Tensors: []Tensor{{Name: strings.Repeat("x", n), Shape: []int{2}, Data: []float32{1, 2}}}}
		b := encode(t, f)
		hlen := binary.LittleEndian.Uint64(b)
		if hlen%8 != 0 {
			t.Errorf("name of %d bytes: header length %d is not a multiple of 8", n, hlen)
		}
		header := string(b[8 : 8+hlen])
		end := strings.LastIndexByte(header, '}')
		if pad := header[end+1:]; strings.Trim(pad, " ") != "" || len(pad) >= 8 {
			t.Errorf("name of %d bytes: padding %q, want fewer than 8 spaces", n, pad)
		}
		if got := uint64(len(b)) - 8 - hlen; got != 8 {
			t.Errorf("name of %d bytes: %d data bytes, want 8", n, got)
		}
	}
}

func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "small.safetensors")
	got := encode(t, smallFile())
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode(smallFile()) differs from %s:\n got %q\nwant %q", path, got, want)
	}
	f, err := decode(want, Limits{})
	if err != nil {
		t.Fatalf("Decode(%s): %v", path, err)
	}
	sameFile(t, f, smallFile())
}

// pythonFiles are byte strings written by hand as Python's safetensors (serde_json, sorted
// names, space padding to 8 bytes) writes them, so that a bug shared by Encode and Decode
// cannot hide. The first two are the expected outputs in the Rust crate's own tests.
func pythonFiles() []pythonFile {
	return []pythonFile{
		{
			name: "attn0",
			bytes: "\x48\x00\x00\x00\x00\x00\x00\x00" +
				`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}` + "       " +
				"\x00\x00\x00\x00" + "\x00\x00\x80\x3f" + "\x00\x00\x00\x40" +
				"\x00\x00\x40\x40" + "\x00\x00\x80\x40" + "\x00\x00\xa0\x40",
			want: &File{Tensors: []Tensor{{Name: "attn0", Shape: []int{1, 1, 2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}}}},
		},
		{
			name:  "metadata only",
			bytes: "\x28\x00\x00\x00\x00\x00\x00\x00" + `{"__metadata__":{"framework":"pt"}}` + "     ",
			want:  &File{Metadata: map[string]string{"framework": "pt"}},
		},
		{
			name:  "empty",
			bytes: "\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
			want:  &File{},
		},
		{
			name: "vector scalar empty",
			bytes: "\xf0\x00\x00\x00\x00\x00\x00\x00" +
				`{"__metadata__":{"format":"pt"},` +
				`"blocks.0.mlp.fc1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
				`"head.weight":{"dtype":"F32","shape":[],"data_offsets":[8,12]},` +
				`"pos_embed":{"dtype":"F32","shape":[0,3],"data_offsets":[12,12]}}` + "       " +
				"\x00\x00\x00\x3f" + "\x00\x00\x20\xc0" + "\x00\x00\x40\x40",
			want: &File{
				Metadata: map[string]string{"format": "pt"},
				Tensors: []Tensor{
					{Name: "blocks.0.mlp.fc1.bias", Shape: []int{2}, Data: []float32{0.5, -2.5}},
					{Name: "head.weight", Shape: []int{}, Data: []float32{3}},
					{Name: "pos_embed", Shape: []int{0, 3}, Data: []float32{}},
				},
			},
		},
	}
}

// pythonFile is a file as Python's safetensors writes it and the File it holds.
type pythonFile struct {
	name  string
	bytes string
	want  *File
}

func TestPythonBytes(t *testing.T) {
	for _, tt := range pythonFiles() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode([]byte(tt.bytes), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			sameFile(t, got, tt.want)
			if enc := encode(t, tt.want); string(enc) != tt.bytes {
				t.Errorf("Encode differs from Python's bytes:\n got %q\nwant %q", enc, tt.bytes)
			}
		})
	}
}

func TestDecodeOrder(t *testing.T) {
	// Header order differs from data order, with ties between empty tensors: Tensors
	// follow the data, ties keep header order.
	b := raw(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},`+
		`"z2":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},`+
		`"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},`+
		`"z1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 1, 2)
	f, err := decode(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, t := range f.Tensors {
		names = append(names, t.Name)
	}
	if got, want := strings.Join(names, " "), "a z2 z1 b"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

// messWith returns a copy of b changed by fn (archive/zip's test idea).
func messWith(b []byte, fn func([]byte) []byte) []byte {
	return fn(bytes.Clone(b))
}

// entry is one tensor header entry, for building bad headers.
func entry(name, dtype, shape, offsets string) string {
	return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offsets + `}`
}

func TestDecodeErrors(t *testing.T) {
	valid := encode(t, smallFile())
	hlen := int(binary.LittleEndian.Uint64(valid))
	setLen := func(n uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint64(b, n); return b }
	}
	tests := []struct {
		name string
		in   []byte
		lim  Limits
		want string // substring of the error
	}{
		{"empty input", nil, Limits{}, "too short"},
		{"cut inside length", valid[:5], Limits{}, "too short"},
		{"cut inside header", valid[:8+hlen/2], Limits{}, "exceeds the"},
		{"truncated data", valid[:len(valid)-4], Limits{}, `"head.bias": data_offsets [28, 44] run past the end of the 40-byte`},
		{"header length larger than file", messWith(valid, setLen(uint64(len(valid)))), Limits{}, "exceeds the"},
		{"header length 1<<62", messWith(valid, setLen(1<<62)), Limits{}, "MaxHeaderBytes"},
		{"header length 1<<64-1", messWith(valid, setLen(math.MaxUint64)), Limits{MaxHeaderBytes: math.MaxInt64}, "exceeds the"},
		{"header length too small", messWith(valid, setLen(uint64(hlen-8))), Limits{}, "ends early"},
		{"header length zero", messWith(valid, setLen(0)), Limits{}, "ends early"},
		{"trailing bytes", append(bytes.Clone(valid), 0, 0, 0, 0), Limits{}, "4 trailing bytes"},
		{"trailing partial value", append(bytes.Clone(valid), 0), Limits{}, "1 trailing bytes"},
		{"wrong dtype", raw(`{`+entry("w", "F16", "[2]", "[0,4]")+`}`, 0), Limits{}, `tensor "w": dtype "F16" is not supported`},
		{"dtype not a string", raw(`{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}`, 0), Limits{}, "dtype is the number 32"},
		{"size mismatch", raw(`{`+entry("blocks.0.attn.qkv.weight", "F32", "[192,64]", "[0,100]")+`}`, make([]float32, 25)...), Limits{},
			`tensor "blocks.0.attn.qkv.weight": data_offsets [0, 100] hold 100 bytes, shape [192 64] needs 49152`},
		{"huge shape", raw(`{`+entry("w", "F32", "[1099511627776,1099511627776]", "[0,4]")+`}`, 0), Limits{}, "overflows"},
		{"overflowing product", raw(`{` + entry("w", "F32", "[4294967296,4294967296]", "[0,0]") + `}`), Limits{}, "overflows"},
		{"overflowing bytes", raw(`{` + entry("w", "F32", "[2147483648,2147483648]", "[0,0]") + `}`), Limits{}, "overflows"},
		{"overflow hidden by zero", raw(`{` + entry("w", "F32", "[4294967296,4294967296,0]", "[0,0]") + `}`), Limits{}, "overflows"},
		{"dimension above int64", raw(`{` + entry("w", "F32", "[9223372036854775808]", "[0,0]") + `}`), Limits{}, "below 2^63"},
		{"negative dimension", raw(`{` + entry("w", "F32", "[-1]", "[0,0]") + `}`), Limits{}, "holds -1"},
		{"fractional dimension", raw(`{` + entry("w", "F32", "[1.5]", "[0,0]") + `}`), Limits{}, "holds 1.5"},
		{"exponent dimension", raw(`{`+entry("w", "F32", "[1e0]", "[0,4]")+`}`, 0), Limits{}, "holds 1e0"},
		{"string dimension", raw(`{`+entry("w", "F32", `["1"]`, "[0,4]")+`}`, 0), Limits{}, `holds the string "1"`},
		{"shape not an array", raw(`{`+entry("w", "F32", `1`, "[0,4]")+`}`, 0), Limits{}, "shape is the number 1"},
		{"one offset", raw(`{`+entry("w", "F32", "[1]", "[4]")+`}`, 0), Limits{}, "data_offsets has 1 numbers"},
		{"three offsets", raw(`{`+entry("w", "F32", "[1]", "[0,4,4]")+`}`, 0), Limits{}, "data_offsets has 3 numbers"},
		{"reversed offsets", raw(`{`+entry("w", "F32", "[0]", "[4,0]")+`}`, 0), Limits{}, "end before they begin"},
		{"offsets overlapping", raw(`{`+entry("a", "F32", "[2]", "[0,8]")+`,`+entry("b", "F32", "[2]", "[4,12]")+`}`, 1, 2, 3), Limits{},
			`tensor "b": data_offsets [4, 12] overlap tensor "a", which ends at 8`},
		{"same offsets", raw(`{`+entry("a", "F32", "[1]", "[0,4]")+`,`+entry("b", "F32", "[1]", "[0,4]")+`}`, 1), Limits{}, "overlap"},
		{"empty tensor inside another", raw(`{`+entry("a", "F32", "[2]", "[0,8]")+`,`+entry("z", "F32", "[0]", "[4,4]")+`}`, 1, 2), Limits{}, `"z": data_offsets [4, 4] overlap`},
		{"hole between tensors", raw(`{`+entry("a", "F32", "[1]", "[0,4]")+`,`+entry("b", "F32", "[1]", "[8,12]")+`}`, 1, 2, 3), Limits{},
			`tensor "b": data_offsets [8, 12] leave a hole of 4 bytes after tensor "a"`},
		{"hole at start", raw(`{`+entry("a", "F32", "[1]", "[4,8]")+`}`, 1, 2), Limits{}, "must begin at 0"},
		{"offsets past the end", raw(`{`+entry("a", "F32", "[2]", "[0,8]")+`}`, 1), Limits{}, "run past the end"},
		{"no tensors but data", raw(`{}`, 1), Limits{}, "4 trailing bytes"},
		{"duplicate names", raw(`{`+entry("a", "F32", "[1]", "[0,4]")+`,`+entry("a", "F32", "[1]", "[4,8]")+`}`, 1, 2), Limits{},
			`tensor "a": name appears twice`},
		{"duplicate metadata", raw(`{"__metadata__":{},"__metadata__":{}}`), Limits{}, `"__metadata__" twice`},
		{"duplicate metadata key", raw(`{"__metadata__":{"k":"a","k":"b"}}`), Limits{}, `key "k" appears twice`},
		{"duplicate field", raw(`{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 0), Limits{}, `field "dtype" appears twice`},
		{"non-string metadata", raw(`{"__metadata__":{"epoch":3}}`), Limits{}, `value of "epoch" is the number 3, want a string`},
		{"nested metadata", raw(`{"__metadata__":{"arch":{"dim":3}}}`), Limits{}, `value of "arch" is an object`},
		{"null metadata", raw(`{"__metadata__":null}`), Limits{}, "null, want an object"},
		{"metadata array", raw(`{"__metadata__":["a"]}`), Limits{}, "an array, want an object"},
		{"missing dtype", raw(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, 0), Limits{}, `missing field "dtype"`},
		{"missing shape", raw(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 0), Limits{}, `missing field "shape"`},
		{"missing offsets", raw(`{"w":{"dtype":"F32","shape":[1]}}`, 0), Limits{}, `missing field "data_offsets"`},
		{"unknown field", raw(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offset":0}}`, 0), Limits{}, `unknown field "offset"`},
		{"entry not an object", raw(`{"w":[1]}`), Limits{}, "entry is an array"},
		{"invalid JSON", raw(`{"w":{"dtype":"F32",}}`), Limits{}, "not valid JSON"},
		{"trailing comma", raw(`{` + entry("w", "F32", "[0]", "[0,0]") + `,}`), Limits{}, "not valid JSON"},
		{"unterminated", raw(`{"w":`), Limits{}, "ends early"},
		{"not an object", raw(`[]`), Limits{}, `found an array, want "{"`},
		{"a string", raw(`"{}"`), Limits{}, `found the string "{}"`},
		{"second object", raw(`{}{}`), Limits{}, "after the top-level object"},
		{"NUL padding", raw("{}\x00\x00\x00\x00\x00\x00"), Limits{}, "not valid JSON after"},
		{"invalid UTF-8", raw("{\"\xff\":{}}"), Limits{}, "not valid UTF-8"},
		{"NaN value", raw(`{`+entry("w", "F32", "[2,2]", "[0,16]")+`}`, 1, 2, float32(math.NaN()), 4), Limits{},
			`tensor "w": element 2 (index [1 0]) is NaN`},
		{"+Inf value", raw(`{`+entry("a", "F32", "[1]", "[0,4]")+`,`+entry("w", "F32", "[3]", "[4,16]")+`}`, 0, 1, float32(math.Inf(1)), 2), Limits{},
			`tensor "w": element 1 (index [1]) is +Inf`},
		{"-Inf scalar", raw(`{`+entry("s", "F32", "[]", "[0,4]")+`}`, float32(math.Inf(-1))), Limits{}, `tensor "s": element 0 (index []) is -Inf`},
		{"too many tensors", encode(t, smallFile()), Limits{MaxTensors: 3}, "more than 3 tensors"},
		{"too much data", encode(t, smallFile()), Limits{MaxTotalBytes: 43}, "tensor data is 44 bytes, more than the limit of 43"},
		{"header too big", encode(t, smallFile()), Limits{MaxHeaderBytes: int64(hlen - 1)}, "MaxHeaderBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decode(tt.in, tt.lim)
			if err == nil {
				t.Fatalf("Decode succeeded with %d tensors, want an error containing %q", len(f.Tensors), tt.want)
			}
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Errorf("error %q does not wrap ErrBadCheckpoint", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "checkpoint: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestLimitsBoundaries(t *testing.T) {
	valid := encode(t, smallFile())
	hlen := int64(binary.LittleEndian.Uint64(valid))
	for _, lim := range []Limits{
		{MaxTensors: 4},
		{MaxTotalBytes: 44},
		{MaxHeaderBytes: hlen},
		{MaxHeaderBytes: -1, MaxTensors: -1, MaxTotalBytes: -1},
		DefaultLimits(),
	} {
		if _, err := decode(valid, lim); err != nil {
			t.Errorf("Limits %+v: %v", lim, err)
		}
	}
	if got, want := DefaultLimits(), (Limits{16 << 20, 100_000, 4 << 30, false}); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
}

func TestAllowNonFinite(t *testing.T) {
	nan := math.Float32frombits(0x7fc00123) // a NaN with a payload, which must survive
	f := &File{Tensors: []Tensor{{Name: "w", Shape: []int{4}, Data: []float32{nan, float32(math.Inf(1)), float32(math.Inf(-1)), 1}}}}
	b := encode(t, f) // Encode writes non-finite values as given
	if _, err := decode(b, Limits{}); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("default Limits: err = %v, want ErrBadCheckpoint", err)
	}
	got, err := decode(b, Limits{AllowNonFinite: true})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got, f)
}

// lyingReader serves a header and claims a huge file behind it; reading past the header
// fails the test, since Decode must reject the file from its header alone.
type lyingReader struct {
	t      *testing.T
	header []byte
}

func (r lyingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(r.header)) {
		r.t.Errorf("Decode read %d bytes at %d, past the %d-byte header", len(p), off, len(r.header))
		return 0, io.EOF
	}
	return copy(p, r.header[off:]), nil
}

func TestHugeClaimsDoNotAllocate(t *testing.T) {
	const huge = 1 << 62
	tests := []struct {
		name string
		in   []byte
		size int64
		lim  Limits
	}{
		{"header length 1<<62, file as large", binary.LittleEndian.AppendUint64(nil, huge), huge + 8, Limits{}},
		{"header length 1<<62, MaxHeaderBytes unlimited", binary.LittleEndian.AppendUint64(nil, huge), 1 << 20, Limits{MaxHeaderBytes: math.MaxInt64}},
		{"shape [1<<40, 1<<40]", raw(`{` + entry("w", "F32", "[1099511627776,1099511627776]", "[0,4]") + `}`), huge, Limits{}},
		{"shape [1<<40], data that size", raw(`{` + entry("w", "F32", "[1099511627776]", "[0,4398046511104]") + `}`), 0, Limits{}},
		{"shape [1<<40], MaxTotalBytes raised but short", raw(`{` + entry("w", "F32", "[1099511627776]", "[0,4398046511104]") + `}`), 0, Limits{MaxTotalBytes: 1 << 41}},
		{"shape [1<<40] in a small file", raw(`{` + entry("w", "F32", "[1099511627776]", "[0,4398046511104]") + `}`), -1, Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			switch size {
			case 0: // exactly what the header claims
				size = int64(len(tt.in)) + 4<<40
			case -1: // what is really there
				size = int64(len(tt.in))
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Decode(lyingReader{t, tt.in}, size, tt.lim)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Errorf("err = %v, want ErrBadCheckpoint", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("Decode allocated %d bytes before rejecting the file", got)
			}
			t.Log(err)
		})
	}
}

// shortReader returns fewer bytes than Decode is told the file has.
type shortReader struct {
	b   []byte
	err error // returned after the data
}

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, r.err
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, r.err
	}
	return n, nil
}

func TestDecodeReaderErrors(t *testing.T) {
	valid := encode(t, smallFile())
	cut := valid[:len(valid)-5]
	// A file shorter than its stated size is a truncated file.
	_, err := Decode(shortReader{cut, io.EOF}, int64(len(valid)), Limits{})
	if !errors.Is(err, ErrBadCheckpoint) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short file: err = %v, want ErrBadCheckpoint and io.ErrUnexpectedEOF", err)
	}
	// A failing reader is not a bad checkpoint.
	disk := errors.New("disk on fire")
	_, err = Decode(shortReader{cut, disk}, int64(len(valid)), Limits{})
	if errors.Is(err, ErrBadCheckpoint) || !errors.Is(err, disk) {
		t.Errorf("failing reader: err = %v, want the reader's error without ErrBadCheckpoint", err)
	}
	_, err = Decode(shortReader{nil, disk}, int64(len(valid)), Limits{})
	if errors.Is(err, ErrBadCheckpoint) || !errors.Is(err, disk) {
		t.Errorf("failing reader at 0: err = %v, want the reader's error without ErrBadCheckpoint", err)
	}
}

// failWriter fails with err after accepting n bytes.
type failWriter struct {
	n   int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodeErrors(t *testing.T) {
	errFull := errors.New("device full")
	tensor := func(name string, shape []int, n int) Tensor {
		return Tensor{Name: name, Shape: shape, Data: make([]float32, n)}
	}
	tests := []struct {
		name string
		f    *File
		want string
	}{
		{"too few values", &File{Tensors: []Tensor{tensor("w", []int{2, 3}, 5)}}, `tensor "w": has 5 values, shape [2 3] needs 6`},
		{"too many values", &File{Tensors: []Tensor{tensor("w", []int{}, 2)}}, `tensor "w": has 2 values, shape [] needs 1`},
		{"values for zero size", &File{Tensors: []Tensor{tensor("w", []int{0}, 1)}}, "needs 0"},
		{"negative dimension", &File{Tensors: []Tensor{tensor("w", []int{-2, -3}, 6)}}, "negative dimension -2"},
		{"overflowing shape", &File{Tensors: []Tensor{tensor("w", []int{math.MaxInt, math.MaxInt}, 0)}}, "overflows"},
		{"duplicate names", &File{Tensors: []Tensor{tensor("w", []int{1}, 1), tensor("w", []int{1}, 1)}}, `"w": name appears twice`},
		{"reserved name", &File{Tensors: []Tensor{tensor("__metadata__", []int{1}, 1)}}, "reserved"},
		{"invalid UTF-8 name", &File{Tensors: []Tensor{tensor("\xff", []int{1}, 1)}}, "not valid UTF-8"},
		{"invalid UTF-8 metadata key", &File{Metadata: map[string]string{"\xff": ""}}, "not valid UTF-8"},
		{"invalid UTF-8 metadata value", &File{Metadata: map[string]string{"k": "\xc3"}}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &failWriter{n: 0, err: errFull} // nothing may be written for an invalid File
			err := Encode(w, tt.f)
			if !errors.Is(err, ErrBadCheckpoint) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrBadCheckpoint containing %q", err, tt.want)
			}
		})
	}

	// Writer failures at every point are reported as such, not as bad checkpoints.
	valid := encode(t, smallFile())
	for _, n := range []int{0, 7, 8, 20, len(valid) - 1} {
		err := Encode(&failWriter{n: n, err: errFull}, smallFile())
		if !errors.Is(err, errFull) || errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("writer failing after %d bytes: err = %v, want errFull only", n, err)
		}
	}
}

func TestGet(t *testing.T) {
	f := smallFile()
	got, ok := f.Get("scale")
	if !ok || got.Name != "scale" || got.Data[0] != 0.125 {
		t.Fatalf("Get(scale) = %+v, %t", got, ok)
	}
	got.Data[0] = 2 // Get points into f.Tensors
	if f.Tensors[1].Data[0] != 2 {
		t.Error("Get returned a copy, want a pointer into Tensors")
	}
	if got, ok := f.Get("missing"); ok || got != nil {
		t.Errorf("Get(missing) = %+v, %t", got, ok)
	}
}

func BenchmarkEncode(b *testing.B) {
	f := &File{Tensors: []Tensor{{Name: "w", Shape: []int{1024, 1024}, Data: ramp(1 << 20)}}}
	b.SetBytes(4 << 20)
	for b.Loop() {
		if err := Encode(io.Discard, f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	f := &File{Tensors: []Tensor{{Name: "w", Shape: []int{1024, 1024}, Data: ramp(1 << 20)}}}
	enc := encode(b, f)
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := decode(enc, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
