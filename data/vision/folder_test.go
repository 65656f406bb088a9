package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/internal/testfile"
)

// pixel is the test images' deterministic content.
func pixel(i, x, y, c int) uint8 { return uint8((i*31 + x*7 + y*13 + c*61) % 256) }

// writePNG writes image i of w x h; gray writes image.Gray, else image.NRGBA.
func writePNG(t testing.TB, path string, i, w, h int, gray bool) {
	t.Helper()
	var img image.Image
	if gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				g.SetGray(x, y, color.Gray{pixel(i, x, y, 0)})
			}
		}
		img = g
	} else {
		c := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				c.SetNRGBA(x, y, color.NRGBA{pixel(i, x, y, 0), pixel(i, x, y, 1), pixel(i, x, y, 2), 255})
			}
		}
		img = c
	}
	testfile.Write(t, path, testfile.PNG(t, img))
}

// tinyFolder writes splits with per images of each of the classes, w x h.
func tinyFolder(t testing.TB, splits []string, classes []string, per, w, h int, gray bool) string {
	root := t.TempDir()
	i := 0
	for _, s := range splits {
		for _, c := range classes {
			for k := range per {
				writePNG(t, filepath.Join(root, s, c, string(rune('a'+k))+".png"), i, w, h, gray)
				i++
			}
		}
	}
	return root
}

// TestLoadFolderExactPixels: same-size images are copied without resampling, image by
// image in class-then-name order, with the right labels, channels and split sizes; a second
// load through the cache gives the same bytes without decoding.
func TestLoadFolderExactPixels(t *testing.T) {
	for _, gray := range []bool{true, false} {
		root := tinyFolder(t, []string{"train", "val", "test"}, []string{"b", "a"}, 3, 5, 5, gray)
		cache := t.TempDir()
		d, err := LoadFolder(root, Options{CacheDir: cache, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		wantC := 3
		if gray {
			wantC = 1
		}
		ds := d.Description
		if ds.Channels != wantC || ds.Height != 5 || ds.Train != 6 || ds.Val != 6 || ds.Test != 6 || ds.NoTest ||
			!slices.Equal(ds.Classes, []string{"a", "b"}) || ds.Resize != "" || len(ds.Mean) != wantC {
			t.Fatalf("gray=%v: description %+v", gray, ds)
		}
		// train/a/{a,b,c} were images 3..5 (class b was written first), label 0.
		for k := range 3 {
			img := d.Train.Image(k)
			for y := range 5 {
				for x := range 5 {
					for c := range wantC {
						if got, want := img[c*25+y*5+x], pixel(3+k, x, y, c); got != want {
							t.Fatalf("gray=%v: train %d (%d,%d,%d) = %d, want %d", gray, k, c, y, x, got, want)
						}
					}
				}
			}
			if d.Train.Labels[k] != 0 || d.Train.Labels[3+k] != 1 {
				t.Fatalf("labels %v", d.Train.Labels)
			}
		}
		again, err := LoadFolder(root, Options{CacheDir: cache, Workers: 2, Progress: func(int, int) { t.Error("decoded again despite the cache") }})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Train.Pixels, d.Train.Pixels) || !bytes.Equal(again.Test.Labels, d.Test.Labels) ||
			again.Description.Fingerprint != ds.Fingerprint {
			t.Fatal("cached load differs")
		}
	}
}

// TestLoadFolderResizeAndHoldOut: mixed sizes need a size, are scaled and cropped; without
// val the hold-out is stratified and seeded; without test the description says so.
func TestLoadFolderResizeAndHoldOut(t *testing.T) {
	root := tinyFolder(t, []string{"train"}, []string{"x", "y", "z"}, 10, 12, 8, false)
	writePNG(t, filepath.Join(root, "train", "x", "big.png"), 99, 40, 30, false)
	if _, err := LoadFolder(root, Options{}); err == nil || !strings.Contains(err.Error(), "data.image_size") {
		t.Fatalf("mixed sizes without a size: %v", err)
	}
	a, err := LoadFolder(root, Options{Size: 6, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	ds := a.Description
	if ds.Height != 6 || ds.Resize != "shorter-side-bilinear-centre-crop" || !ds.NoTest || a.Test != nil ||
		ds.ValFrom != "held-out" || ds.Val != 3 || ds.Train != 28 {
		t.Fatalf("description %+v", ds)
	}
	counts := a.Val.ClassCounts()
	if !slices.Equal(counts, []int{1, 1, 1}) {
		t.Errorf("held-out validation per class %v, want one of each", counts)
	}
	b, err := LoadFolder(root, Options{Size: 6, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Val.Pixels, b.Val.Pixels) || !bytes.Equal(a.Train.Pixels, b.Train.Pixels) {
		t.Error("same seed, different split")
	}
	c, err := LoadFolder(root, Options{Size: 6, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Val.Pixels, c.Val.Pixels) {
		t.Error("another seed held out the same images")
	}
}

// TestLoadFolderBadData: every kind of bad data is refused with the file or folder named,
// and with SkipBad the bad files are skipped and listed.
func TestLoadFolderBadData(t *testing.T) {
	huge := func() []byte { // a PNG header declaring 100000 x 100000 pixels
		var b bytes.Buffer
		png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
		p := b.Bytes()
		copy(p[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
		binary.BigEndian.PutUint32(p[29:33], crc32.ChecksumIEEE(p[12:29])) // IHDR's CRC
		return p
	}
	var jb bytes.Buffer
	jpeg.Encode(&jb, image.NewRGBA(image.Rect(0, 0, 4, 4)), nil)
	for _, c := range []struct {
		name     string
		mess     func(root string)
		want     string
		skipGood bool // SkipBad loads it, listing one file
	}{
		{"truncated", func(r string) {
			b, _ := os.ReadFile(filepath.Join(r, "train/a/a.png"))
			os.WriteFile(filepath.Join(r, "train/a/a.png"), b[:len(b)/2], 0o644)
		}, "train/a/a.png", true},
		{"corrupt jpeg", func(r string) {
			b := jb.Bytes()
			testfile.Write(t, filepath.Join(r, "train/a/z.jpg"), append(slices.Clone(b[:len(b)-40]), make([]byte, 20)...))
		}, "train/a/z.jpg", true},
		{"huge header", func(r string) { testfile.Write(t, filepath.Join(r, "train/b/h.png"), huge()) }, "more than the limit", true},
		{"not an image", func(r string) { testfile.Write(t, filepath.Join(r, "train/a/x.png"), []byte("hello")) }, "not an image in a known format", true},
		{"non-image file", func(r string) { testfile.Write(t, filepath.Join(r, "train/a/notes.txt"), []byte("x")) }, "not an image file", true},
		{"unreadable", func(r string) { os.Chmod(filepath.Join(r, "train/a/b.png"), 0) }, "train/a/b.png", true},
		{"empty class", func(r string) { os.MkdirAll(filepath.Join(r, "train/c"), 0o755) }, "empty class folder", false},
		{"classes differ", func(r string) { os.Rename(filepath.Join(r, "test/b"), filepath.Join(r, "test/q")) }, "differ from train's", false},
		{"symlink loop", func(r string) { os.Symlink(filepath.Join(r, "train/a"), filepath.Join(r, "train/a/loop")) }, "symbolic link loop", false},
		{"class list", func(r string) { testfile.Write(t, filepath.Join(r, "classes.txt"), []byte("a\nz\n")) }, "classes.txt", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := tinyFolder(t, []string{"train", "test"}, []string{"a", "b"}, 3, 4, 4, true)
			c.mess(root)
			if c.name == "unreadable" && os.Geteuid() == 0 {
				t.Skip("root reads any file")
			}
			_, err := LoadFolder(root, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			d, err := LoadFolder(root, Options{SkipBad: true})
			if !c.skipGood {
				if err == nil {
					t.Fatal("SkipBad loaded a bad layout")
				}
				return
			}
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			if len(d.Description.Skipped) != 1 {
				t.Fatalf("skipped %v, want one file", d.Description.Skipped)
			}
		})
	}
	if !errors.Is(func() error { _, e := DecodeHeader([]byte("nope"), "n", 0); return e }(), ErrBadImage) {
		t.Error("DecodeHeader of junk does not wrap ErrBadImage")
	}
}
