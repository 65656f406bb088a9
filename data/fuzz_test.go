package data

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzReadIDX feeds arbitrary bytes to ReadIDX, seeded from testdata/. Whatever the input:
// no panic; a failure is ErrBadIDX (a bytes.Reader cannot fail); success means
// len(Data) == product(Dims); knowing the size or not gives the same answer; and writing
// the result back reads back the same.
func FuzzReadIDX(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.idx*"))
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
	lim := Limits{MaxElements: 1 << 16}
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := ReadIDX(bytes.NewReader(b), "fuzz", lim)
		sidx, serr := ReadIDX(streaming{bytes.NewReader(b)}, "fuzz", lim)
		if (err == nil) != (serr == nil) {
			t.Fatalf("sized err = %v, streamed err = %v", err, serr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadIDX) || !errors.Is(serr, ErrBadIDX) {
				t.Fatalf("errors %v / %v do not wrap ErrBadIDX", err, serr)
			}
			return
		}
		if !reflect.DeepEqual(idx, sidx) {
			t.Fatalf("sized and streamed results differ")
		}
		n := 1
		for _, d := range idx.Dims {
			if d <= 0 {
				t.Fatalf("dims %v", idx.Dims)
			}
			n *= d
		}
		if len(idx.Data) != n || int64(n) > lim.MaxElements {
			t.Fatalf("dims %v, %d bytes of data", idx.Dims, len(idx.Data))
		}
		var buf bytes.Buffer
		if err := WriteIDX(&buf, idx.Dims, idx.Data); err != nil {
			t.Fatalf("WriteIDX of a decoded file: %v", err)
		}
		again, err := ReadIDX(&buf, "again", lim)
		if err != nil || !reflect.DeepEqual(again, idx) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
