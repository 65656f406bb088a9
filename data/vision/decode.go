package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // registers GIF
	_ "image/jpeg" // registers JPEG
	_ "image/png"  // registers PNG
	"path/filepath"
	"strings"

	"golang.org/x/image/draw"

	_ "golang.org/x/image/bmp"  // registers BMP
	_ "golang.org/x/image/tiff" // registers TIFF
	_ "golang.org/x/image/webp" // registers WebP

	"github.com/ofa-go/ofa/data"
)

// ErrBadImage is wrapped by every error about a file that is not a usable image: unknown
// format, corrupt or truncated data, a header declaring too many pixels.
var ErrBadImage = errors.New("bad image file")

// DefaultMaxPixels bounds the width x height an image header may declare (checked with
// image.DecodeConfig before decoding): 64 megapixels, far above any photograph a ViT
// input is cut from, far below what would exhaust memory.
const DefaultMaxPixels = 64 << 20

// MaxFileBytes bounds an image file, checked before it is read.
const MaxFileBytes = 256 << 20

// imageExts are the file extensions read as images (lower case).
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true,
	".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// IsImageName reports whether a file name has one of the image extensions read.
func IsImageName(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

// Header is what DecodeHeader learns without decoding the pixels.
type Header struct {
	Format        string
	Width, Height int
	// Gray is true for grey-scale colour models (and palettes of greys only).
	Gray bool
}

// DecodeHeader reads an image's format, size and colour model, refusing a size above
// maxPixels (<= 0: DefaultMaxPixels). name is used in errors.
func DecodeHeader(b []byte, name string, maxPixels int) (Header, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	return checkHeader(cfg, format, err, name, maxPixels)
}

// checkHeader classifies DecodeConfig's result.
func checkHeader(cfg image.Config, format string, err error, name string, maxPixels int) (Header, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return Header{}, fmt.Errorf("vision: %s: %w: not an image in a known format (PNG, JPEG, GIF, BMP, TIFF, WebP)", name, ErrBadImage)
		}
		return Header{}, fmt.Errorf("vision: %s: %w: header: %v", name, ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Header{}, fmt.Errorf("vision: %s: %w: %s header declares %dx%d pixels", name, ErrBadImage, format, cfg.Width, cfg.Height)
	}
	if px, ok := data.MulInts(cfg.Width, cfg.Height); !ok || px > maxPixels {
		return Header{}, fmt.Errorf("vision: %s: %w: %s header declares %dx%d pixels, more than the limit of %d",
			name, ErrBadImage, format, cfg.Width, cfg.Height, maxPixels)
	}
	return Header{Format: format, Width: cfg.Width, Height: cfg.Height, Gray: isGrayModel(cfg.ColorModel)}, nil
}

func isGrayModel(m color.Model) bool {
	switch m {
	case color.GrayModel, color.Gray16Model:
		return true
	}
	if p, ok := m.(color.Palette); ok {
		for _, c := range p {
			r, g, b, _ := c.RGBA()
			if r != g || g != b {
				return false
			}
		}
		return len(p) > 0
	}
	return false
}

// Decode checks the header (DecodeHeader) and decodes the image.
func Decode(b []byte, name string, maxPixels int) (image.Image, Header, error) {
	h, err := DecodeHeader(b, name, maxPixels)
	if err != nil {
		return nil, h, err
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, h, fmt.Errorf("vision: %s: %w: %s data: %v", name, ErrBadImage, h.Format, err)
	}
	if r := img.Bounds(); r.Dx() != h.Width || r.Dy() != h.Height {
		return nil, h, fmt.Errorf("vision: %s: %w: header says %dx%d, decoded %dx%d", name, ErrBadImage, h.Width, h.Height, r.Dx(), r.Dy())
	}
	return img, h, nil
}

// ToPixels writes img as channels x size x size bytes into dst (channel-major): the centre
// square of the shorter side, scaled to size with golang.org/x/image/draw.BiLinear (which
// widens its kernel when shrinking, so it antialiases), or copied as is when img is already
// size x size. Transparent pixels are composited over black (Go's premultiplied colours);
// one channel is the luma of color.GrayModel (BT.601 weights on 16-bit values, then the
// high byte), so grey images keep their values exactly.
func ToPixels(dst []uint8, img image.Image, channels, size int) {
	if len(dst) != channels*size*size || (channels != 1 && channels != 3) {
		panic(fmt.Sprintf("vision: ToPixels: %d bytes for %dx%dx%d", len(dst), channels, size, size))
	}
	b := img.Bounds()
	if b.Dx() != size || b.Dy() != size {
		side := min(b.Dx(), b.Dy())
		x0 := b.Min.X + (b.Dx()-side)/2
		y0 := b.Min.Y + (b.Dy()-side)/2
		scaled := image.NewRGBA(image.Rect(0, 0, size, size))
		draw.BiLinear.Scale(scaled, scaled.Bounds(), img, image.Rect(x0, y0, x0+side, y0+side), draw.Src, nil)
		img, b = scaled, scaled.Bounds()
	}
	plane := size * size
	for y := range size {
		for x := range size {
			c := img.At(b.Min.X+x, b.Min.Y+y)
			i := y*size + x
			if channels == 1 {
				dst[i] = color.GrayModel.Convert(c).(color.Gray).Y
				continue
			}
			r, g, bl, _ := c.RGBA()
			dst[i], dst[plane+i], dst[2*plane+i] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
		}
	}
}
