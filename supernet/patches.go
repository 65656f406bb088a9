package supernet

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"gorgonia.org/tensor"
)

// Patchify cuts a batch of inputs (B, C, H, W), row-major in images, into flattened
// non-overlapping patches written to dst (B*P, C*ph*pw): patches in row-major grid order,
// each patch's values in (channel, row, column) order. This is the order of a PyTorch
// Conv2d(C, D, kernel=stride=patch) weight flattened to (D, C*ph*pw), so patch_embed.weight
// reshaped to (D, C, ph, pw) is that convolution's weight. n is the number of examples in
// images; rows of dst past n*P are zeroed (padding of a short final batch).
func Patchify(a arch.Arch, images []float32, n int, dst *tensor.Dense) error {
	c, h, w, ph, pw := a.InChannels, a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth
	size := c * h * w
	if len(images) < n*size {
		return fmt.Errorf("supernet: %d input values for %d examples of %dx%dx%d", len(images), n, c, h, w)
	}
	gh, gw := h/ph, w/pw
	ps := a.PatchSize()
	rows := dst.Shape()[0]
	if n*gh*gw > rows || dst.Shape()[1] != ps {
		return fmt.Errorf("supernet: patch buffer %v cannot hold %d examples of %d patches of %d", dst.Shape(), n, gh*gw, ps)
	}
	switch d := dst.Data().(type) {
	case []float32:
		patchify(images, d, n, c, h, w, ph, pw)
		clear(d[n*gh*gw*ps:])
	case []float64:
		tmp := make([]float32, n*gh*gw*ps)
		patchify(images, tmp, n, c, h, w, ph, pw)
		for i, v := range tmp {
			d[i] = float64(v)
		}
		clear(d[len(tmp):])
	}
	return nil
}

func patchify(src, dst []float32, n, c, h, w, ph, pw int) {
	gh, gw := h/ph, w/pw
	o := 0
	for b := 0; b < n; b++ {
		img := src[b*c*h*w:]
		for gy := 0; gy < gh; gy++ {
			for gx := 0; gx < gw; gx++ {
				for ch := 0; ch < c; ch++ {
					for dy := 0; dy < ph; dy++ {
						row := img[ch*h*w+(gy*ph+dy)*w+gx*pw:]
						copy(dst[o:o+pw], row[:pw])
						o += pw
					}
				}
			}
		}
	}
}
