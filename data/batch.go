package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// ErrLoaderConfig is wrapped by every error about an invalid LoaderConfig.
var ErrLoaderConfig = errors.New("invalid loader config")

// Batcher is what a training or evaluation loop consumes: a fixed number of batches per
// epoch, each addressable directly so that a resumed run can start mid-epoch. Loader
// implements it; other datasets (speech) implement it too.
type Batcher interface {
	// BatchesPerEpoch is the number of batches in every epoch.
	BatchesPerEpoch() int
	// Batch fills dst with batch index (0 <= index < BatchesPerEpoch()) of epoch (>= 0).
	Batch(epoch, index int, dst *Batch)
}

// Augment selects the random training-time augmentations, applied in this order.
type Augment struct {
	// CropPad, if > 0, pads each image with this many zero (black) pixels on every side and
	// takes a random crop of the original size: a random shift of up to CropPad pixels in
	// each direction, as torchvision's RandomCrop(size, padding=CropPad).
	CropPad int `mapstructure:"crop_pad"`
	// HFlip mirrors each image left to right with probability 1/2.
	HFlip bool `mapstructure:"hflip"`
	// RandomResizedCrop replaces CropPad's shift by timm's default random-resized crop: a
	// region of 8% to 100% of the image's area with aspect ratio 3/4 to 4/3 (log-uniform),
	// resized back to the image's size bilinearly. It suits images of 64 pixels and more;
	// pad-and-crop suits smaller ones.
	RandomResizedCrop bool `mapstructure:"random_resized_crop"`
}

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	// BatchSize is the number of examples per batch, >= 1.
	BatchSize int `mapstructure:"batch_size"`
	// Seed, with the epoch, determines the order and the augmentation of every example.
	Seed uint64 `mapstructure:"seed"`
	// Shuffle draws a fresh permutation every epoch; false keeps file order (evaluation).
	Shuffle bool `mapstructure:"shuffle"`
	// DropLast drops the final short batch; otherwise it is padded (see Batch).
	DropLast bool `mapstructure:"drop_last"`
	// Mean and Std normalise pixels: x = (pixel/255 - Mean) / Std. Std must be > 0.
	Mean float32 `mapstructure:"mean"`
	Std  float32 `mapstructure:"std"`
	// ChannelMean and ChannelStd, if set, replace Mean and Std with one value per channel
	// (x = (pixel/255 - ChannelMean[c]) / ChannelStd[c]); they must number the set's channels.
	ChannelMean []float32 `mapstructure:"channel_mean"`
	ChannelStd  []float32 `mapstructure:"channel_std"`
	// Augment is applied to every example; leave it zero for evaluation.
	Augment Augment `mapstructure:"augment"`
}

// DefaultLoaderConfig returns a training configuration for Fashion-MNIST: batches of 128,
// shuffled, Fashion-MNIST's mean and standard deviation, no augmentation.
func DefaultLoaderConfig() LoaderConfig {
	return LoaderConfig{BatchSize: 128, Shuffle: true, Mean: FashionMNISTMean, Std: FashionMNISTStd}
}

// Validate checks the fields that do not depend on the dataset.
func (c LoaderConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("data: %w: %s", ErrLoaderConfig, fmt.Sprintf(format, args...))
	}
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	switch {
	case c.BatchSize < 1:
		return bad("batch size %d, want >= 1", c.BatchSize)
	case !finite(c.Mean):
		return bad("mean %v, want a finite number", c.Mean)
	case !finite(c.Std) || c.Std <= 0:
		return bad("std %v, want a finite number > 0", c.Std)
	case c.Augment.CropPad < 0:
		return bad("crop padding %d, want >= 0", c.Augment.CropPad)
	case len(c.ChannelMean) != len(c.ChannelStd):
		return bad("%d channel means but %d channel stds", len(c.ChannelMean), len(c.ChannelStd))
	}
	for i := range c.ChannelMean {
		if !finite(c.ChannelMean[i]) || !finite(c.ChannelStd[i]) || c.ChannelStd[i] <= 0 {
			return bad("channel %d: mean %v, std %v, want finite numbers and std > 0", i, c.ChannelMean[i], c.ChannelStd[i])
		}
	}
	return nil
}

// Batch is one batch of normalised images in NCHW order. Its slices are reused by
// Loader.Batch, so copy anything that must outlive the next call.
type Batch struct {
	// X holds BatchSize*C*H*W values (pixel/255 - Mean)/Std; padding examples are all 0.
	X []float32
	// Labels holds BatchSize labels; padding examples have label -1.
	Labels []int
	// Size is the number of real examples, at the front: BatchSize except for the last
	// batch of an epoch when DropLast is false.
	Size int
}

// Loader cuts a set of images into batches. Every batch is a pure function of the
// configuration, the epoch and the batch index: the epoch's permutation depends only on
// (Seed, epoch) and an example's augmentation only on (Seed, epoch, position in the epoch),
// through PCG (whose output math/rand/v2 fixes) and this package's own shuffle and range
// reduction, so the result does not change with the Go version.
//
// A Loader caches the current epoch's permutation and so is not safe for concurrent use;
// give each goroutine its own.
type Loader struct {
	set  *Images
	cfg  LoaderConfig
	norm PixelNorm

	epochs *Epochs
}

var _ Batcher = (*Loader)(nil)

// NewLoader checks set and cfg and returns a loader over set. The loader keeps set (not a
// copy), which must not change while the loader is in use.
func NewLoader(set *Images, cfg LoaderConfig) (*Loader, error) {
	if set == nil {
		return nil, fmt.Errorf("data: NewLoader: %w: nil set", ErrDataset)
	}
	if err := set.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w (for %s)", err, set.Name)
	}
	if p := cfg.Augment.CropPad; p > set.Height || p > set.Width {
		return nil, fmt.Errorf("data: %w: crop padding %d exceeds the %dx%d images of %s",
			ErrLoaderConfig, p, set.Height, set.Width, set.Name)
	}
	if _, ok := MulInts(cfg.BatchSize, set.ImageSize()); !ok {
		return nil, fmt.Errorf("data: %w: batch size %d of %s overflows int", ErrLoaderConfig, cfg.BatchSize, set.Name)
	}
	l := &Loader{set: set, cfg: cfg, epochs: NewEpochs(set.N, cfg.BatchSize, cfg.Seed, streamPerm, cfg.Shuffle, cfg.DropLast)}
	if l.epochs.BatchesPerEpoch() == 0 {
		return nil, fmt.Errorf("data: %w: %s has %d examples, no full batch of %d (DropLast is set)",
			ErrDataset, set.Name, set.N, cfg.BatchSize)
	}
	if n := len(cfg.ChannelMean); n != 0 && n != set.Channels {
		return nil, fmt.Errorf("data: %w: %d channel means for the %d-channel images of %s",
			ErrLoaderConfig, n, set.Channels, set.Name)
	}
	mean, std := cfg.ChannelMean, cfg.ChannelStd
	if len(mean) == 0 {
		mean, std = make([]float32, set.Channels), make([]float32, set.Channels)
		for c := range mean {
			mean[c], std[c] = cfg.Mean, cfg.Std
		}
	}
	l.norm = NewPixelNorm(mean, std)
	return l, nil
}

// PixelNorm turns 8-bit pixels into model inputs, one table per channel:
// PixelNorm[c][v] = (v/255 - mean[c]) / std[c], computed in float32. The loader and
// inference (package infer) both use it, so a pixel becomes the same input in training,
// evaluation and prediction.
type PixelNorm [][256]float32

// NewPixelNorm builds the tables for one mean and std per channel (len(mean) == len(std)).
func NewPixelNorm(mean, std []float32) PixelNorm {
	if len(mean) != len(std) {
		panic(fmt.Sprintf("data: NewPixelNorm: %d means, %d stds", len(mean), len(std)))
	}
	n := make(PixelNorm, len(mean))
	for c := range n {
		for v := range n[c] {
			n[c][v] = (float32(v)/255 - mean[c]) / std[c]
		}
	}
	return n
}

// Apply writes the model input of one channel-major image px (len(n) planes of equal size)
// to dst, which must be as long as px.
func (n PixelNorm) Apply(dst []float32, px []uint8) {
	plane := len(px) / len(n)
	for c := range n {
		norm := &n[c]
		for i, v := range px[c*plane : (c+1)*plane] {
			dst[c*plane+i] = norm[v]
		}
	}
}

// BatchesPerEpoch returns ceil(N / BatchSize), or floor with DropLast.
func (l *Loader) BatchesPerEpoch() int { return l.epochs.BatchesPerEpoch() }

// Config returns the loader's configuration.
func (l *Loader) Config() LoaderConfig { return l.cfg }

// Images returns the set the loader reads.
func (l *Loader) Images() *Images { return l.set }

// Batch fills dst with batch index of epoch, reusing dst's slices when they are large
// enough (so a loop that passes the same Batch does not allocate). X and Labels always hold
// BatchSize examples; a short final batch is padded with zeros and label -1, and Size says
// how many are real. It panics if epoch < 0 or index is outside [0, BatchesPerEpoch()).
func (l *Loader) Batch(epoch, index int, dst *Batch) {
	l.epochs.Fill(dst, epoch, index, l.set.ImageSize(),
		func(out []float32, ex, pos int) { l.fill(out, l.set.Image(ex), epoch, pos) },
		func(ex int) int { return int(l.set.Labels[ex]) })
}

// Stream constants keep the permutation and augmentation draws independent even for equal
// (seed, epoch) inputs.
const (
	streamPerm    = 0x5045524d55544531 // "PERMUTE1"
	streamAugment = 0x4155474d454e5431 // "AUGMENT1"
)

// fill writes the normalised, augmented pixels of one example to out.
func (l *Loader) fill(out []float32, img []uint8, epoch, pos int) {
	aug := l.cfg.Augment
	if aug.CropPad == 0 && !aug.HFlip && !aug.RandomResizedCrop {
		l.norm.Apply(out, img)
		return
	}
	// Always draw in the same order, so turning one augmentation on or off does not change
	// the other's draws.
	var src rand.PCG
	src.Seed(l.cfg.Seed, Mix64(streamAugment^Mix64(uint64(epoch))+Mix64(uint64(pos))))
	span := uint64(2*aug.CropPad + 1)
	dy := int(Uintn(&src, span)) - aug.CropPad
	dx := int(Uintn(&src, span)) - aug.CropPad
	flip := src.Uint64()>>63 == 1
	if !aug.HFlip {
		flip = false
	}
	// Output (y, x) reads source (y+dy, x+dx) of the unpadded image (crop), mirrored in x
	// after the crop: source column W-1-x+dx. Out-of-range sources are the zero padding.
	h, w := l.set.Height, l.set.Width
	if aug.RandomResizedCrop {
		l.resizedCrop(out, img, &src, flip)
		return
	}
	for c := range l.set.Channels {
		norm := &l.norm[c]
		zero := norm[0]
		plane, dstPlane := img[c*h*w:(c+1)*h*w], out[c*h*w:(c+1)*h*w]
		for y := range h {
			row := dstPlane[y*w : (y+1)*w]
			sy := y + dy
			if sy < 0 || sy >= h {
				for x := range row {
					row[x] = zero
				}
				continue
			}
			srcRow := plane[sy*w : (sy+1)*w]
			for x := range row {
				sx := x + dx
				if flip {
					sx = w - 1 - x + dx
				}
				if sx < 0 || sx >= w {
					row[x] = zero
				} else {
					row[x] = norm[srcRow[sx]]
				}
			}
		}
	}
}

// Random-resized crop ranges, timm's (and torchvision's) defaults.
const (
	rrcMinScale = 0.08
	rrcMaxScale = 1.0
	rrcMinRatio = 3.0 / 4
	rrcMaxRatio = 4.0 / 3
	rrcTries    = 10
)

// resizedCrop writes a random-resized crop of img, optionally mirrored, to out: up to
// rrcTries draws of (area fraction, log aspect ratio) as torchvision's
// RandomResizedCrop.get_params, falling back to the whole image, then bilinear sampling
// with pixel centres aligned (align_corners=False).
func (l *Loader) resizedCrop(out []float32, img []uint8, src *rand.PCG, flip bool) {
	h, w := l.set.Height, l.set.Width
	area := float64(h * w)
	cy, cx, ch, cw := 0, 0, h, w
	unit := func() float64 { return float64(src.Uint64()>>11) / (1 << 53) }
	for range rrcTries {
		target := area * (rrcMinScale + (rrcMaxScale-rrcMinScale)*unit())
		logR := math.Log(rrcMinRatio) + (math.Log(rrcMaxRatio)-math.Log(rrcMinRatio))*unit()
		ratio := math.Exp(logR)
		tw := int(math.Round(math.Sqrt(target * ratio)))
		th := int(math.Round(math.Sqrt(target / ratio)))
		oy, ox := unit(), unit()
		if tw > 0 && th > 0 && tw <= w && th <= h {
			cy, cx, ch, cw = int(oy*float64(h-th+1)), int(ox*float64(w-tw+1)), th, tw
			break
		}
	}
	sy, sx := float64(ch)/float64(h), float64(cw)/float64(w)
	for c := range l.set.Channels {
		norm := &l.norm[c]
		plane, dst := img[c*h*w:(c+1)*h*w], out[c*h*w:(c+1)*h*w]
		for y := range h {
			fy := min(max((float64(y)+0.5)*sy-0.5, 0), float64(ch-1))
			y0 := int(fy)
			y1 := min(y0+1, ch-1)
			wy := fy - float64(y0)
			for x := range w {
				ox := x
				if flip {
					ox = w - 1 - x
				}
				fx := min(max((float64(ox)+0.5)*sx-0.5, 0), float64(cw-1))
				x0 := int(fx)
				x1 := min(x0+1, cw-1)
				wx := fx - float64(x0)
				at := func(yy, xx int) float64 { return float64(plane[(cy+yy)*w+cx+xx]) }
				v := (1-wy)*((1-wx)*at(y0, x0)+wx*at(y0, x1)) + wy*((1-wx)*at(y1, x0)+wx*at(y1, x1))
				// Interpolated bytes round to the nearest byte, then normalise by table.
				dst[y*w+x] = norm[uint8(math.Round(v))]
			}
		}
	}
}
