package vision

import (
	"bytes"
	"image"
	"image/gif"
	"image/png"
	"testing"
)

// FuzzDecode: any bytes either decode into pixels of the asked size or give an error; no
// input panics or allocates past the pixel limit.
func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 3, 2)))
	f.Add(b.Bytes())
	b.Reset()
	gif.Encode(&b, image.NewGray(image.Rect(0, 0, 2, 2)), nil)
	f.Add(b.Bytes())
	f.Add([]byte("BM"))
	f.Fuzz(func(t *testing.T, in []byte) {
		img, h, err := Decode(in, "fuzz", 1<<16)
		if err != nil {
			return
		}
		if h.Width*h.Height > 1<<16 {
			t.Fatalf("decoded %dx%d past the limit", h.Width, h.Height)
		}
		for _, c := range []int{1, 3} {
			dst := make([]byte, c*4*4)
			ToPixels(dst, img, c, 4)
		}
	})
}
