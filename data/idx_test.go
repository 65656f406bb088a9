package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the IDX fixtures in testdata/")

// idxBytes builds an IDX file: magic 00 00 dtype ndims, big-endian dims, then data.
func idxBytes(dtype byte, dims []uint32, data []byte) []byte {
	b := []byte{0, 0, dtype, byte(len(dims))}
	for _, d := range dims {
		b = append(b, byte(d>>24), byte(d>>16), byte(d>>8), byte(d))
	}
	return append(b, data...)
}

// seq returns n bytes 0, 1, 2, ... (mod 256).
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// streaming hides the reader's size, so ReadIDX takes its incremental path.
type streaming struct{ r io.Reader }

func (s streaming) Read(p []byte) (int, error) { return s.r.Read(p) }

// idxFixture is one file in testdata/: the seed corpus of FuzzReadIDX and the table of
// TestIDXFixtures. wantDims nil means the file must be rejected with ErrBadIDX.
type idxFixture struct {
	file     string
	contents func(t testing.TB) []byte
	wantDims []int
	wantMsg  string // part of the error message
}

func idxFixtures() []idxFixture {
	valid3d := idxBytes(0x08, []uint32{2, 3, 4}, seq(24))
	return []idxFixture{
		{"valid-1d.idx", func(testing.TB) []byte { return idxBytes(0x08, []uint32{5}, seq(5)) }, []int{5}, ""},
		{"valid-3d.idx", func(testing.TB) []byte { return valid3d }, []int{2, 3, 4}, ""},
		{"valid-4d.idx.gz", func(t testing.TB) []byte { return gz(t, idxBytes(0x08, []uint32{1, 2, 2, 3}, seq(12))) },
			[]int{1, 2, 2, 3}, ""},
		{"valid-labels.idx.gz", func(t testing.TB) []byte { return gz(t, idxBytes(0x08, []uint32{10}, seq(10))) },
			[]int{10}, ""},
		{"bad-magic.idx", func(testing.TB) []byte { return append([]byte{0x01, 0x00}, valid3d[2:]...) }, nil,
			"bad magic: want 00 00 <dtype> <ndims>, found 01 00 08 03"},
		{"bad-dtype.idx", func(testing.TB) []byte { return idxBytes(0x0D, []uint32{2}, seq(8)) }, nil,
			"unsupported data type 0x0d (float32)"},
		{"zero-ndims.idx", func(testing.TB) []byte { return idxBytes(0x08, nil, nil) }, nil,
			"header declares 0 dimensions, want 1 to 4"},
		{"five-dims.idx", func(testing.TB) []byte { return idxBytes(0x08, []uint32{1, 1, 1, 1, 1}, seq(1)) }, nil,
			"header declares 5 dimensions"},
		{"zero-dim.idx", func(testing.TB) []byte { return idxBytes(0x08, []uint32{2, 0, 3}, nil) }, nil,
			"dimension 1 of 2x0x3 is 0"},
		{"empty.idx", func(testing.TB) []byte { return nil }, nil, "truncated header"},
		{"truncated-header.idx", func(testing.TB) []byte { return valid3d[:9] }, nil,
			"truncated header: 3 dimensions need 12 bytes of sizes, file has 5"},
		{"truncated-data.idx", func(testing.TB) []byte { return valid3d[:16+10] }, nil,
			"truncated: header declares 2x3x4 = 24 bytes of data, file has 10"},
		{"trailing-data.idx", func(testing.TB) []byte { return append(append([]byte{}, valid3d...), 7, 7, 7) }, nil,
			"trailing data: header declares 2x3x4 = 24 bytes of data, file has 3 more"},
		{"huge-dims.idx", func(testing.TB) []byte {
			return idxBytes(0x08, []uint32{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, seq(16))
		}, nil, "more than the limit of 200000000"},
		{"truncated.idx.gz", func(t testing.TB) []byte { z := gz(t, valid3d); return z[:len(z)/2] }, nil, "truncated gzip stream"},
		{"bad-checksum.idx.gz", func(t testing.TB) []byte {
			z := gz(t, valid3d)
			z[len(z)-8] ^= 0xFF // first byte of the CRC-32 trailer
			return z
		}, nil, "checksum"},
		{"garbage-after-gzip.idx.gz", func(t testing.TB) []byte { return append(gz(t, valid3d), "this is not gzip"...) }, nil,
			"gzip: invalid header"},
		{"short-junk-after-gzip.idx.gz", func(t testing.TB) []byte { return append(gz(t, valid3d), "junk"...) }, nil,
			"gzip stream cut off or followed by junk"},
		{"cut-gzip-trailer.idx.gz", func(t testing.TB) []byte { z := gz(t, valid3d); return z[:len(z)-3] }, nil,
			"gzip stream cut off"},
		{"bad-gzip-header.idx.gz", func(testing.TB) []byte { return []byte{0x1f, 0x8b, 0x09, 0, 0, 0} }, nil,
			"bad gzip header"},
	}
}

// TestIDXFixtures checks the testdata/ files (rewritten with -update) against their
// definitions, then decodes each both with its size known and as a stream.
func TestIDXFixtures(t *testing.T) {
	for _, fx := range idxFixtures() {
		t.Run(fx.file, func(t *testing.T) {
			path := filepath.Join("testdata", fx.file)
			want := fx.contents(t)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				if !strings.HasSuffix(path, ".gz") {
					t.Fatalf("%s differs from its definition; run go test -update", path)
				}
				// Another Go version may compress differently; the stored file is what counts.
				t.Logf("%s differs from what this Go version's gzip writes", path)
			}
			for _, mode := range []string{"sized", "stream"} {
				var r io.Reader = bytes.NewReader(got)
				if mode == "stream" {
					r = streaming{r}
				}
				idx, err := ReadIDX(r, fx.file, Limits{})
				if fx.wantDims == nil {
					if !errors.Is(err, ErrBadIDX) {
						t.Fatalf("%s: err = %v, want ErrBadIDX", mode, err)
					}
					if msg := err.Error(); !strings.HasPrefix(msg, "data: "+fx.file+": ") ||
						!strings.Contains(msg, fx.wantMsg) {
						t.Errorf("%s: error %q, want the file name and %q", mode, msg, fx.wantMsg)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if !reflect.DeepEqual(idx.Dims, fx.wantDims) || !bytes.Equal(idx.Data, seq(len(idx.Data))) ||
					len(idx.Data) != product(idx.Dims) {
					t.Errorf("%s: got dims %v, %d bytes; want %v", mode, idx.Dims, len(idx.Data), fx.wantDims)
				}
			}
		})
	}
}

func product(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// TestIDXCorruptInsideGzip checks that the plain corrupted fixtures are still rejected, with
// the same message, when they arrive inside a valid gzip stream.
func TestIDXCorruptInsideGzip(t *testing.T) {
	for _, fx := range idxFixtures() {
		if fx.wantDims != nil || strings.HasSuffix(fx.file, ".gz") {
			continue
		}
		t.Run(fx.file, func(t *testing.T) {
			_, err := ReadIDX(bytes.NewReader(gz(t, fx.contents(t))), fx.file+".gz", Limits{})
			if !errors.Is(err, ErrBadIDX) || !strings.Contains(err.Error(), fx.wantMsg) {
				t.Errorf("err = %v, want ErrBadIDX containing %q", err, fx.wantMsg)
			}
		})
	}
}

func TestIDXRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		dims []int
	}{
		{"1d", []int{1}},
		{"labels", []int{1000}},
		{"images", []int{7, 28, 28}},
		{"4d", []int{2, 3, 4, 5}},
		{"larger than the first chunk", []int{3, 1024, 1024}},
	} {
		data := seq(product(tc.dims))
		var plain bytes.Buffer
		if err := WriteIDX(&plain, tc.dims, data); err != nil {
			t.Fatalf("%s: WriteIDX: %v", tc.name, err)
		}
		for _, enc := range []struct {
			name   string
			file   []byte
			stream bool
		}{
			{"plain", plain.Bytes(), false},
			{"plain stream", plain.Bytes(), true},
			{"gzip", gz(t, plain.Bytes()), false},
		} {
			var r io.Reader = bytes.NewReader(enc.file)
			if enc.stream {
				r = streaming{r}
			}
			idx, err := ReadIDX(r, tc.name, Limits{})
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.name, enc.name, err)
			}
			if !reflect.DeepEqual(idx.Dims, tc.dims) || !bytes.Equal(idx.Data, data) {
				t.Errorf("%s/%s: got dims %v and %d bytes, want %v", tc.name, enc.name, idx.Dims, len(idx.Data), tc.dims)
			}
		}
	}
}

func TestWriteIDXRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		dims []int
		n    int
	}{
		{"no dims", nil, 0},
		{"five dims", []int{1, 1, 1, 1, 1}, 1},
		{"zero dim", []int{0}, 0},
		{"negative dim", []int{-1}, 0},
		{"too large dim", []int{1 << 33}, 0},
		{"size mismatch", []int{2, 3}, 5},
		{"overflowing product", []int{1 << 31, 1 << 31, 1 << 31}, 0},
	} {
		if err := WriteIDX(io.Discard, tc.dims, make([]byte, tc.n)); err == nil {
			t.Errorf("%s: WriteIDX(%v, %d bytes) succeeded", tc.name, tc.dims, tc.n)
		}
	}
}

func TestIDXLimits(t *testing.T) {
	file := idxBytes(0x08, []uint32{10, 10}, seq(100))
	if _, err := ReadIDX(bytes.NewReader(file), "x", Limits{MaxElements: 100}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := ReadIDX(bytes.NewReader(file), "x", Limits{MaxElements: 99})
	if !errors.Is(err, ErrBadIDX) || !strings.Contains(err.Error(), "10x10 elements, more than the limit of 99") {
		t.Errorf("over the limit: err = %v", err)
	}
}

// TestIDXLyingHeaderAllocatesLittle: a header may claim up to the limit; the reader must
// not believe it before the bytes arrive.
func TestIDXLyingHeaderAllocatesLittle(t *testing.T) {
	huge := idxBytes(0x08, []uint32{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, seq(16))
	big := idxBytes(0x08, []uint32{150_000_000}, seq(10)) // under the default limit
	for _, tc := range []struct {
		name  string
		file  []byte
		gzip  bool
		limit uint64 // bytes allocated at most
	}{
		{"huge dims", huge, false, 64 << 10},
		{"huge dims gzip", huge, true, 64 << 10},
		{"big declared, sized", big, false, 64 << 10},
		{"big declared, gzip", big, true, 2*firstChunk + 64<<10},
	} {
		file := tc.file
		if tc.gzip {
			file = gz(t, file)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ReadIDX(bytes.NewReader(file), tc.name, Limits{})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBadIDX) {
			t.Errorf("%s: err = %v, want ErrBadIDX", tc.name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > tc.limit {
			t.Errorf("%s: allocated %d bytes, want <= %d", tc.name, got, tc.limit)
		}
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestIDXReadFailureIsNotBadIDX: an I/O failure is reported as such, not as a bad file.
func TestIDXReadFailureIsNotBadIDX(t *testing.T) {
	boom := errors.New("disk on fire")
	valid := idxBytes(0x08, []uint32{4}, seq(4))
	for n := range len(valid) {
		r := io.MultiReader(bytes.NewReader(valid[:n]), failingReader{boom})
		_, err := ReadIDX(r, "f", Limits{})
		if !errors.Is(err, boom) || errors.Is(err, ErrBadIDX) || !strings.HasPrefix(err.Error(), "data: f: ") {
			t.Errorf("after %d bytes: err = %v, want the read error without ErrBadIDX", n, err)
		}
	}
	// A reader that stops delivering without an error must not hang the reader.
	_, err := ReadIDX(io.MultiReader(bytes.NewReader(valid[:6]), stalled{}), "f", Limits{})
	if !errors.Is(err, io.ErrNoProgress) || errors.Is(err, ErrBadIDX) {
		t.Errorf("stalled reader: err = %v, want io.ErrNoProgress", err)
	}
}

type stalled struct{}

func (stalled) Read([]byte) (int, error) { return 0, nil }
