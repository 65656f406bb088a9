package vision

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

type hfImage struct {
	Bytes []byte `parquet:"bytes"`
	Path  string `parquet:"path"`
}

type hfRow struct {
	Image hfImage `parquet:"image"`
	Label int64   `parquet:"label"`
}

// writeParquet writes rows as the datasets library does, with ClassLabel names if given.
func writeParquet(t testing.TB, path string, rows []hfRow, names []string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var opts []parquet.WriterOption
	if names != nil {
		q := `"` + strings.Join(names, `","`) + `"`
		opts = append(opts, parquet.KeyValueMetadata("huggingface",
			`{"info":{"features":{"image":{"_type":"Image"},"label":{"names":[`+q+`],"_type":"ClassLabel"}}}}`))
	}
	w := parquet.NewGenericWriter[hfRow](f, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func pngBytes(t testing.TB, i, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{pixel(i, x, y, 0), pixel(i, x, y, 1), pixel(i, x, y, 2), 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// TestLoadParquet: a Hub-style dataset (data/train-*.parquet, data/test-*.parquet) loads
// with the ClassLabel names, the image bytes' exact pixels, a held-out validation; a label
// out of range and a file without an image column are refused with the file named.
func TestLoadParquet(t *testing.T) {
	root := t.TempDir()
	var train, test []hfRow
	for i := range 12 {
		train = append(train, hfRow{Image: hfImage{Bytes: pngBytes(t, i, 4, 4), Path: "x.png"}, Label: int64(i % 3)})
	}
	for i := range 3 {
		test = append(test, hfRow{Image: hfImage{Bytes: pngBytes(t, 100+i, 4, 4)}, Label: int64(i)})
	}
	names := []string{"cat", "dog", "fox"}
	writeParquet(t, filepath.Join(root, "data", "train-00000-of-00002.parquet"), train[:6], names)
	writeParquet(t, filepath.Join(root, "data", "train-00001-of-00002.parquet"), train[6:], names)
	writeParquet(t, filepath.Join(root, "data", "test-00000-of-00001.parquet"), test, names)
	if !IsParquetDataset(root) || IsFolderDataset(root) {
		t.Fatal("layout not recognised as Parquet")
	}
	d, err := LoadParquet(root, Options{ValFraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	ds := d.Description
	if !slices.Equal(ds.Classes, names) || ds.Train != 9 || ds.Val != 3 || ds.Test != 3 || ds.Channels != 3 || ds.ValFrom != "held-out" || ds.Kind != "parquet" {
		t.Fatalf("description %+v", ds)
	}
	for k := range 3 {
		img := d.Test.Image(k)
		if img[0] != pixel(100+k, 0, 0, 0) || img[16+5] != pixel(100+k, 1, 1, 1) || int(d.Test.Labels[k]) != k {
			t.Fatalf("test image %d: pixels or label differ", k)
		}
	}

	bad := t.TempDir()
	writeParquet(t, filepath.Join(bad, "train.parquet"), []hfRow{{Image: hfImage{Bytes: pngBytes(t, 0, 4, 4)}, Label: 7}}, names)
	if _, err := LoadParquet(bad, Options{}); err == nil || !strings.Contains(err.Error(), "label 7 out of range") ||
		!strings.Contains(err.Error(), "train.parquet") {
		t.Errorf("label out of range: %v", err)
	}
	type other struct {
		X int64 `parquet:"x"`
	}
	other2 := t.TempDir()
	f, _ := os.Create(filepath.Join(other2, "train.parquet"))
	w := parquet.NewGenericWriter[other](f)
	w.Write([]other{{1}})
	w.Close()
	f.Close()
	if _, err := LoadParquet(other2, Options{}); err == nil || !strings.Contains(err.Error(), "want an image column") {
		t.Errorf("no image column: %v", err)
	}
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "train.parquet"), []byte("not parquet at all"), 0o644)
	if _, err := LoadParquet(junk, Options{}); err == nil || !strings.Contains(err.Error(), "train.parquet") {
		t.Errorf("junk file: %v", err)
	}
}
