package speech

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzReadWAV feeds arbitrary bytes to ReadWAV, seeded from testdata/. Whatever the input:
// no panic; a failure is ErrBadWAV (a bytes.Reader cannot fail); knowing the size or not
// gives the same answer; success means a rate in range, samples in [-1, 1], as many of
// them as the header declares (checked by an independent walk of the chunks) and within
// the limit; and the clip survives a 16-bit round trip to within half a step.
func FuzzReadWAV(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.wav"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files in testdata: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	lim := Limits{MaxSamples: 1 << 16}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ReadWAV(bytes.NewReader(b), "fuzz", lim)
		sa, serr := ReadWAV(streaming{bytes.NewReader(b)}, "fuzz", lim)
		if (err == nil) != (serr == nil) {
			t.Fatalf("sized err = %v, streamed err = %v", err, serr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadWAV) || !errors.Is(serr, ErrBadWAV) {
				t.Fatalf("errors %v / %v do not wrap ErrBadWAV", err, serr)
			}
			return
		}
		if !reflect.DeepEqual(a, sa) {
			t.Fatalf("sized and streamed results differ")
		}
		if a.Rate < MinRate || a.Rate > MaxRate {
			t.Fatalf("rate %d", a.Rate)
		}
		frames, ok := wavOracle(b)
		if !ok || len(a.Samples) != frames || int64(frames) > lim.MaxSamples {
			t.Fatalf("%d samples; the header declares %d (found: %v)", len(a.Samples), frames, ok)
		}
		for i, v := range a.Samples {
			if !(v >= -1 && v <= 1) {
				t.Fatalf("sample %d is %v", i, v)
			}
		}
		var buf bytes.Buffer
		if err := WriteWAV(&buf, a, 16); err != nil {
			t.Fatalf("WriteWAV of a decoded clip: %v", err)
		}
		again, err := ReadWAV(&buf, "again", lim)
		if err != nil || again.Rate != a.Rate || len(again.Samples) != len(a.Samples) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range a.Samples {
			if math.Abs(float64(a.Samples[i]-again.Samples[i])) > 0.5/32768+1e-9 {
				t.Fatalf("round trip: sample %d %v -> %v", i, a.Samples[i], again.Samples[i])
			}
		}
	})
}
