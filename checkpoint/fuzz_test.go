package checkpoint

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// seedFiles are the fuzzing seeds committed in testdata, valid and invalid, besides the
// golden small.safetensors. TestSeedFiles regenerates them with -update and checks that
// each still decodes, or fails, as stated.
func seedFiles(t *testing.T) map[string]struct {
	b     []byte
	valid bool
} {
	valid := encode(t, smallFile())
	py := pythonFiles()
	return map[string]struct {
		b     []byte
		valid bool
	}{
		"python_attn0.safetensors":               {[]byte(py[0].bytes), true},
		"python_vector_scalar_empty.safetensors": {[]byte(py[3].bytes), true},
		"empty.safetensors":                      {[]byte(py[2].bytes), true},
		"bad_truncated.safetensors":              {valid[:len(valid)-3], false},
		"bad_hole.safetensors": {raw(`{`+entry("a", "F32", "[1]", "[0,4]")+`,`+
			entry("b", "F32", "[1]", "[8,12]")+`}`, 1, 2, 3), false},
		"bad_overlap.safetensors": {raw(`{`+entry("a", "F32", "[2]", "[0,8]")+`,`+
			entry("b", "F32", "[1]", "[4,8]")+`}`, 1, 2), false},
		"bad_dtype.safetensors":     {raw(`{`+entry("a", "BF16", "[2]", "[0,4]")+`}`, 1), false},
		"bad_nan.safetensors":       {raw(`{`+entry("a", "F32", "[2,1]", "[0,8]")+`}`, 1, float32(math.NaN())), false},
		"bad_duplicate.safetensors": {raw(`{"__metadata__":{"k":"v","k":"w"}}`), false},
		"bad_overflow.safetensors":  {raw(`{` + entry("a", "F32", "[4294967296,4294967296]", "[0,0]") + `}`), false},
	}
}

func TestSeedFiles(t *testing.T) {
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, seed := range seedFiles(t) {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, seed.b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test -update to create it)", err)
			continue
		}
		if !bytes.Equal(b, seed.b) {
			t.Errorf("%s is out of date (run go test -update)", path)
		}
		_, err = decode(b, Limits{})
		switch {
		case seed.valid && err != nil:
			t.Errorf("%s: %v, want it valid", path, err)
		case !seed.valid && !errors.Is(err, ErrBadCheckpoint):
			t.Errorf("%s: err = %v, want ErrBadCheckpoint", path, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed files in testdata")
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Small limits keep each run fast; they are part of what is being tested.
		lim := Limits{MaxHeaderBytes: 1 << 16, MaxTensors: 1000, MaxTotalBytes: 1 << 20}
		for _, allow := range []bool{false, true} {
			lim.AllowNonFinite = allow
			got, err := decode(b, lim)
			if err != nil {
				if !errors.Is(err, ErrBadCheckpoint) {
					t.Fatalf("in-memory input: err = %v, want ErrBadCheckpoint", err)
				}
				continue
			}
			enc := encode(t, got) // anything Decode accepts, Encode must write
			// Re-encoding drops whitespace and escapes but may add up to 7 bytes of padding.
			relim := lim
			relim.MaxHeaderBytes += 8
			again, err := decode(enc, relim)
			if err != nil {
				t.Fatalf("decoding the re-encoded file: %v\ninput %q\nre-encoded %q", err, b, enc)
			}
			sameFile(t, again, got)
			if enc2 := encode(t, again); !bytes.Equal(enc2, enc) {
				t.Fatalf("encoding is not stable:\n%q\n%q", enc, enc2)
			}
		}
	})
}
