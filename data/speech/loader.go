package speech

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ofa-go/ofa/data"
)

// Augment selects the random training-time augmentations, applied in this order to the
// normalised features. Features are computed once when a set is loaded, so everything here
// works in the feature domain; noise at the waveform level is mixed in when the data are
// made (see internal/mkdigits), not here.
type Augment struct {
	// TimeShift, if > 0, shifts each spectrogram by a uniform random whole number of frames
	// in [-TimeShift, TimeShift]; frames shifted in are silence (log(LogFloor), normalised).
	TimeShift int `mapstructure:"time_shift"`
	// FreqMasks bands of up to FreqMaskWidth mel bins each, and TimeMasks bands of up to
	// TimeMaskWidth frames each, are set to 0 (the mean, after normalisation), as in
	// SpecAugment (Park et al., 2019): each mask's width is uniform in [0, max width] and
	// its position uniform among those that fit.
	FreqMasks     int `mapstructure:"freq_masks"`
	FreqMaskWidth int `mapstructure:"freq_mask_width"`
	TimeMasks     int `mapstructure:"time_masks"`
	TimeMaskWidth int `mapstructure:"time_mask_width"`
	// Noise is the standard deviation of Gaussian noise added to every normalised value
	// (masked ones included); 0 turns it off.
	Noise float32 `mapstructure:"noise"`
}

// Enabled reports whether any augmentation is on.
func (a Augment) Enabled() bool {
	return a.TimeShift > 0 || (a.FreqMasks > 0 && a.FreqMaskWidth > 0) ||
		(a.TimeMasks > 0 && a.TimeMaskWidth > 0) || a.Noise > 0
}

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	// BatchSize is the number of examples per batch, >= 1.
	BatchSize int `mapstructure:"batch_size"`
	// Seed, with the epoch, determines the order and the augmentation of every example.
	Seed uint64 `mapstructure:"seed"`
	// Shuffle draws a fresh permutation every epoch; false keeps set order (evaluation).
	Shuffle bool `mapstructure:"shuffle"`
	// DropLast drops the final short batch; otherwise it is padded (see data.Batch).
	DropLast bool `mapstructure:"drop_last"`
	// Mean and Std normalise features: x = (feature - Mean) / Std; use the training set's
	// Stats for every split. Std must be > 0.
	Mean float32 `mapstructure:"mean"`
	Std  float32 `mapstructure:"std"`
	// Augment is applied to every example; leave it zero for evaluation.
	Augment Augment `mapstructure:"augment"`
}

// DefaultLoaderConfig returns a training configuration normalised by stats: batches of 128,
// shuffled, no augmentation.
func DefaultLoaderConfig(stats Stats) LoaderConfig {
	return LoaderConfig{BatchSize: 128, Shuffle: true, Mean: stats.Mean, Std: stats.Std}
}

// Validate checks the fields that do not depend on the data set. Errors wrap
// data.ErrLoaderConfig.
func (c LoaderConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("speech: %w: %s", data.ErrLoaderConfig, fmt.Sprintf(format, args...))
	}
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	a := c.Augment
	switch {
	case c.BatchSize < 1:
		return bad("BatchSize %d, want >= 1", c.BatchSize)
	case !finite(c.Mean):
		return bad("Mean %v, want a finite number", c.Mean)
	case !finite(c.Std) || c.Std <= 0:
		return bad("Std %v, want a finite number > 0", c.Std)
	case a.TimeShift < 0:
		return bad("Augment.TimeShift %d, want >= 0", a.TimeShift)
	case a.FreqMasks < 0 || a.FreqMaskWidth < 0:
		return bad("Augment.FreqMasks %d of width %d, want both >= 0", a.FreqMasks, a.FreqMaskWidth)
	case a.TimeMasks < 0 || a.TimeMaskWidth < 0:
		return bad("Augment.TimeMasks %d of width %d, want both >= 0", a.TimeMasks, a.TimeMaskWidth)
	case !finite(a.Noise) || a.Noise < 0:
		return bad("Augment.Noise %v, want a finite number >= 0", a.Noise)
	}
	return nil
}

// Loader cuts a Set into batches of 1 x Mels x Frames images. Every batch is a pure
// function of the configuration, the epoch and the batch index: the epoch's permutation
// depends only on (Seed, epoch) and an example's augmentation only on (Seed, epoch,
// position in the epoch), through PCG with this package's own range reduction and normal
// deviates, so there is no RNG state shared between batches.
//
// A Loader caches the current epoch's permutation and so is not safe for concurrent use;
// give each goroutine its own.
type Loader struct {
	set     *Set
	cfg     LoaderConfig
	norm    Norm
	silence float32 // normalised log(LogFloor), the time-shift fill

	epochs *data.Epochs
}

var _ data.Batcher = (*Loader)(nil)

// NewLoader checks set and cfg and returns a loader over set. The loader keeps set (not a
// copy), which must not change while the loader is in use.
func NewLoader(set *Set, cfg LoaderConfig) (*Loader, error) {
	if set == nil {
		return nil, fmt.Errorf("speech: NewLoader: %w: nil set", data.ErrDataset)
	}
	if err := set.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w (for %s)", err, set.Name)
	}
	a := cfg.Augment
	switch {
	case a.FreqMaskWidth > set.Mels:
		return nil, fmt.Errorf("speech: %w: Augment.FreqMaskWidth %d exceeds the %d mel bands of %s",
			data.ErrLoaderConfig, a.FreqMaskWidth, set.Mels, set.Name)
	case a.TimeMaskWidth > set.Frames:
		return nil, fmt.Errorf("speech: %w: Augment.TimeMaskWidth %d exceeds the %d frames of %s",
			data.ErrLoaderConfig, a.TimeMaskWidth, set.Frames, set.Name)
	case a.TimeShift > set.Frames:
		return nil, fmt.Errorf("speech: %w: Augment.TimeShift %d exceeds the %d frames of %s",
			data.ErrLoaderConfig, a.TimeShift, set.Frames, set.Name)
	}
	if _, ok := data.MulInts(cfg.BatchSize, set.FeatureSize()); !ok {
		return nil, fmt.Errorf("speech: %w: batch size %d of %s overflows int", data.ErrLoaderConfig, cfg.BatchSize, set.Name)
	}
	l := &Loader{set: set, cfg: cfg, epochs: data.NewEpochs(set.N, cfg.BatchSize, cfg.Seed, streamPerm, cfg.Shuffle, cfg.DropLast)}
	if l.epochs.BatchesPerEpoch() == 0 {
		return nil, fmt.Errorf("speech: %w: %s has %d examples, no full batch of %d (DropLast is set)",
			data.ErrDataset, set.Name, set.N, cfg.BatchSize)
	}
	l.norm = NewNorm(cfg.Mean, cfg.Std)
	l.silence = (float32(math.Log(LogFloor)) - cfg.Mean) / cfg.Std
	return l, nil
}

// Norm turns log-mel features into model inputs: (feature - mean) * (1/std), in float32.
// The loader and inference (package infer) both use it, so a clip becomes the same input
// in training, evaluation and prediction.
type Norm struct{ mean, inv float32 }

// NewNorm is the normalisation by the training set's mean and std (std > 0).
func NewNorm(mean, std float32) Norm { return Norm{mean: mean, inv: 1 / std} }

// Of is the model input of one feature value.
func (n Norm) Of(v float32) float32 { return (v - n.mean) * n.inv }

// Apply writes the model input of features feat to dst, which must be as long.
func (n Norm) Apply(dst, feat []float32) {
	for i, v := range feat {
		dst[i] = n.Of(v)
	}
}

// BatchesPerEpoch returns ceil(N / BatchSize), or floor with DropLast.
func (l *Loader) BatchesPerEpoch() int { return l.epochs.BatchesPerEpoch() }

// Config returns the loader's configuration.
func (l *Loader) Config() LoaderConfig { return l.cfg }

// Set returns the set the loader reads.
func (l *Loader) Set() *Set { return l.set }

// Shape returns the size of one example in a batch: 1 channel, Mels rows, Frames columns.
func (l *Loader) Shape() (channels, height, width int) { return 1, l.set.Mels, l.set.Frames }

// Batch fills dst with batch index of epoch, reusing dst's slices when they are large
// enough (so a loop that passes the same Batch does not allocate). X holds BatchSize x 1 x
// Mels x Frames values and Labels BatchSize labels; a short final batch is padded with
// zeros and label -1, and Size says how many are real. It panics if epoch < 0 or index is
// outside [0, BatchesPerEpoch()).
func (l *Loader) Batch(epoch, index int, dst *data.Batch) {
	l.epochs.Fill(dst, epoch, index, l.set.FeatureSize(),
		func(out []float32, ex, pos int) { l.fill(out, l.set.Example(ex), epoch, pos) },
		func(ex int) int { return int(l.set.Labels[ex]) })
}

// Stream constants keep the permutation and augmentation draws independent even for equal
// (seed, epoch) inputs. They differ from package data's so that an image and a speech
// loader with the same seed do not draw the same numbers.
const (
	streamPerm    = 0x53505045524d3031 // "SPPERM01"
	streamAugment = 0x5350415547303031 // "SPAUG001"
)

// fill writes the normalised, augmented features of one example (Mels rows of Frames) to
// out.
func (l *Loader) fill(out, feat []float32, epoch, pos int) {
	aug := l.cfg.Augment
	if !aug.Enabled() {
		l.norm.Apply(out, feat)
		return
	}
	mels, frames := l.set.Mels, l.set.Frames
	// Each augmentation draws from its own stream, so that turning one on or off, or
	// changing its size, does not change the others' draws.
	src := l.augSource(epoch, pos, augShift)
	shift := int(data.Uintn(&src, uint64(2*aug.TimeShift+1))) - aug.TimeShift
	// Output column t reads input column t - shift.
	for m := range mels {
		row, in := out[m*frames:(m+1)*frames], feat[m*frames:(m+1)*frames]
		for t := range row {
			if s := t - shift; s >= 0 && s < frames {
				row[t] = l.norm.Of(in[s])
			} else {
				row[t] = l.silence
			}
		}
	}
	src = l.augSource(epoch, pos, augFreqMask)
	for range aug.FreqMasks {
		w, at := maskDraw(&src, aug.FreqMaskWidth, mels)
		clear(out[at*frames : (at+w)*frames])
	}
	src = l.augSource(epoch, pos, augTimeMask)
	for range aug.TimeMasks {
		w, at := maskDraw(&src, aug.TimeMaskWidth, frames)
		for m := range mels {
			clear(out[m*frames+at : m*frames+at+w])
		}
	}
	if aug.Noise > 0 {
		src = l.augSource(epoch, pos, augNoise)
		for i := 0; i < len(out); i += 2 {
			z0, z1 := normalPair(&src)
			out[i] += aug.Noise * float32(z0)
			if i+1 < len(out) {
				out[i+1] += aug.Noise * float32(z1)
			}
		}
	}
}

// Augmentation streams, one per kind.
const (
	augShift = iota + 1
	augFreqMask
	augTimeMask
	augNoise
)

// augSource returns the PCG for one kind of augmentation of the example at position pos of
// epoch.
func (l *Loader) augSource(epoch, pos int, kind uint64) rand.PCG {
	var src rand.PCG
	src.Seed(l.cfg.Seed, data.Mix64(streamAugment^data.Mix64(uint64(epoch))+data.Mix64(uint64(pos))+data.Mix64(kind)))
	return src
}

// maskDraw draws a mask width in [0, maxWidth] and a start so that it fits in n.
func maskDraw(src *rand.PCG, maxWidth, n int) (width, start int) {
	width = int(data.Uintn(src, uint64(maxWidth)+1))
	start = int(data.Uintn(src, uint64(n-width)+1))
	return width, start
}

// normalPair returns two independent standard normal deviates by the Box-Muller transform,
// from two 53-bit uniforms of src.
func normalPair(src *rand.PCG) (float64, float64) {
	const scale = 1.0 / (1 << 53)
	u1 := (float64(src.Uint64()>>11) + 0.5) * scale // in (0, 1): log is finite
	u2 := float64(src.Uint64()>>11) * scale
	r := math.Sqrt(-2 * math.Log(u1))
	s, c := math.Sincos(2 * math.Pi * u2)
	return r * c, r * s
}
