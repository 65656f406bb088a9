package data

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
)

// labelledSet has n examples of c x h x w whose label is their index (so batches can be
// traced back to examples) and whose pixels are all non-zero (so crop padding shows).
func labelledSet(n, c, h, w int) *Images {
	s := &Images{Name: "labelled", N: n, Channels: c, Height: h, Width: w, Classes: 256,
		Pixels: make([]uint8, n*c*h*w), Labels: make([]uint8, n)}
	for i := range s.Pixels {
		s.Pixels[i] = uint8(1 + (i*37)%255)
	}
	for i := range s.Labels {
		s.Labels[i] = uint8(i)
	}
	return s
}

func mustLoader(t testing.TB, s *Images, cfg LoaderConfig) *Loader {
	t.Helper()
	l, err := NewLoader(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// epochBatches returns copies of every batch of an epoch.
func epochBatches(l *Loader, epoch int) []Batch {
	var out []Batch
	var b Batch
	for i := range l.BatchesPerEpoch() {
		l.Batch(epoch, i, &b)
		out = append(out, Batch{X: slices.Clone(b.X), Labels: slices.Clone(b.Labels), Size: b.Size})
	}
	return out
}

// normalised returns example i's pixels as Loader writes them without augmentation.
func normalised(s *Images, i int, mean, std float32) []float32 {
	out := make([]float32, s.ImageSize())
	for k, v := range s.Image(i) {
		out[k] = (float32(v)/255 - mean) / std
	}
	return out
}

func TestLoaderDeterministic(t *testing.T) {
	s := labelledSet(37, 1, 4, 5)
	cfg := LoaderConfig{BatchSize: 8, Seed: 42, Shuffle: true, Mean: 0.5, Std: 0.25,
		Augment: Augment{CropPad: 2, HFlip: true}}
	a, b := mustLoader(t, s, cfg), mustLoader(t, s, cfg)
	// b visits epochs out of order, as a resumed run would, and revisits one.
	want := map[int][]Batch{}
	for _, e := range []int{0, 1, 5} {
		want[e] = epochBatches(a, e)
	}
	for _, e := range []int{5, 0, 1, 5} {
		if got := epochBatches(b, e); !reflect.DeepEqual(got, want[e]) {
			t.Errorf("epoch %d differs between loaders", e)
		}
	}
	// A single batch fetched cold equals the same batch fetched mid-epoch.
	var one Batch
	mustLoader(t, s, cfg).Batch(1, 3, &one)
	if !reflect.DeepEqual(one.X, want[1][3].X) || !reflect.DeepEqual(one.Labels, want[1][3].Labels) {
		t.Error("batch (1, 3) fetched alone differs")
	}
	if reflect.DeepEqual(want[0], want[1]) || reflect.DeepEqual(want[1], want[5]) {
		t.Error("different epochs gave identical batches")
	}
	cfg.Seed = 43
	if reflect.DeepEqual(epochBatches(mustLoader(t, s, cfg), 0), want[0]) {
		t.Error("different seeds gave identical batches")
	}
}

// TestLoaderGolden pins the order of the first epochs: changing it would make resumed runs
// see different data than the run that wrote the checkpoint.
func TestLoaderGolden(t *testing.T) {
	s := labelledSet(10, 1, 1, 1)
	l := mustLoader(t, s, LoaderConfig{BatchSize: 10, Seed: 1, Shuffle: true, Std: 1})
	want := map[int][]int{
		0: {2, 5, 8, 1, 0, 3, 9, 4, 6, 7},
		1: {8, 6, 0, 4, 3, 5, 1, 2, 9, 7},
	}
	var b Batch
	for e, order := range want {
		l.Batch(e, 0, &b)
		if !slices.Equal(b.Labels, order) {
			t.Errorf("epoch %d order %v, want %v", e, b.Labels, order)
		}
	}
}

func TestLoaderEveryExampleOncePerEpoch(t *testing.T) {
	s := labelledSet(37, 1, 2, 2)
	for _, cfg := range []LoaderConfig{
		{BatchSize: 8, Seed: 7, Shuffle: true, Std: 1},
		{BatchSize: 1, Seed: 7, Shuffle: true, Std: 1},
		{BatchSize: 37, Seed: 7, Shuffle: true, Std: 1},
		{BatchSize: 100, Seed: 7, Shuffle: true, Std: 1},
		{BatchSize: 8, Shuffle: false, Std: 1},
	} {
		l := mustLoader(t, s, cfg)
		orders := map[string]bool{}
		for e := range 4 {
			var seen []int
			for _, b := range epochBatches(l, e) {
				seen = append(seen, b.Labels[:b.Size]...)
			}
			orders[fmt.Sprint(seen)] = true
			sorted := slices.Sorted(slices.Values(seen))
			for i, v := range sorted {
				if v != i || len(sorted) != s.N {
					t.Fatalf("batch %d: epoch %d saw %v", cfg.BatchSize, e, sorted)
				}
			}
			if !cfg.Shuffle && !slices.Equal(seen, sorted) {
				t.Errorf("Shuffle=false: epoch %d order %v", e, seen)
			}
		}
		if cfg.Shuffle && len(orders) != 4 {
			t.Errorf("batch %d: %d distinct orders in 4 epochs", cfg.BatchSize, len(orders))
		}
	}
}

func TestLoaderNoAugmentIsNormalisedOriginal(t *testing.T) {
	s := labelledSet(9, 3, 4, 5)
	l := mustLoader(t, s, LoaderConfig{BatchSize: 4, Seed: 3, Shuffle: true, Mean: 0.3, Std: 0.4})
	size := s.ImageSize()
	for _, b := range epochBatches(l, 2) {
		for j := range b.Size {
			if got, want := b.X[j*size:(j+1)*size], normalised(s, b.Labels[j], 0.3, 0.4); !slices.Equal(got, want) {
				t.Fatalf("example %d: got %v, want %v", b.Labels[j], got, want)
			}
		}
	}
}

// shifted returns what crop-with-padding then optional flip yields for example i: output
// (y, x) is source (y+dy, x+dx), mirrored after the crop, 0 outside the image.
func shifted(s *Images, i, dy, dx int, flip bool) []float32 {
	src := normalised(s, i, 0, 1)
	out := make([]float32, len(src))
	h, w := s.Height, s.Width
	for c := range s.Channels {
		for y := range h {
			for x := range w {
				sx := x
				if flip {
					sx = w - 1 - x
				}
				sy, sx := y+dy, sx+dx
				if sy >= 0 && sy < h && sx >= 0 && sx < w {
					out[c*h*w+y*w+x] = src[c*h*w+sy*w+sx]
				}
			}
		}
	}
	return out
}

func TestLoaderAugment(t *testing.T) {
	s := labelledSet(64, 2, 5, 6)
	size := s.ImageSize()
	for _, tc := range []struct {
		name string
		aug  Augment
	}{
		{"hflip", Augment{HFlip: true}},
		{"crop", Augment{CropPad: 2}},
		{"crop and hflip", Augment{CropPad: 2, HFlip: true}},
	} {
		l := mustLoader(t, s, LoaderConfig{BatchSize: 16, Seed: 9, Shuffle: true, Std: 1, Augment: tc.aug})
		kinds := map[[3]int]int{} // (dy, dx, flip) -> count
		for _, b := range epochBatches(l, 0) {
			for j := range b.Size {
				got := b.X[j*size : (j+1)*size]
				found := false
				for dy := -tc.aug.CropPad; dy <= tc.aug.CropPad && !found; dy++ {
					for dx := -tc.aug.CropPad; dx <= tc.aug.CropPad && !found; dx++ {
						for _, flip := range []bool{false, true} {
							if flip && !tc.aug.HFlip {
								continue
							}
							if slices.Equal(got, shifted(s, b.Labels[j], dy, dx, flip)) {
								kinds[[3]int{dy, dx, map[bool]int{false: 0, true: 1}[flip]}]++
								found = true
								break
							}
						}
					}
				}
				if !found {
					t.Fatalf("%s: example %d is no shift or flip of its original", tc.name, b.Labels[j])
				}
			}
		}
		want := (2*tc.aug.CropPad + 1) * (2*tc.aug.CropPad + 1)
		if tc.aug.HFlip {
			want *= 2
		}
		// 64 draws from `want` equally likely kinds: with 2 or 25 kinds, expect most to show.
		if len(kinds) < min(want, 2) || (want > 2 && len(kinds) < want/2) {
			t.Errorf("%s: only %d of %d augmentations seen: %v", tc.name, len(kinds), want, kinds)
		}
	}
}

func TestLoaderHFlipMirrors(t *testing.T) {
	// One 2x3 image; with HFlip every example is the original or its mirror.
	s := &Images{Name: "one", N: 1, Channels: 1, Height: 2, Width: 3, Classes: 1,
		Pixels: []uint8{0, 51, 102, 153, 204, 255}, Labels: []uint8{0}}
	l := mustLoader(t, s, LoaderConfig{BatchSize: 1, Seed: 5, Std: 1, Augment: Augment{HFlip: true}})
	orig := []float32{0, 0.2, 0.4, 0.6, 0.8, 1}
	mirror := []float32{0.4, 0.2, 0, 1, 0.8, 0.6}
	seen := map[bool]bool{}
	var b Batch
	for e := range 40 {
		l.Batch(e, 0, &b)
		switch {
		case slices.Equal(b.X, orig):
			seen[false] = true
		case slices.Equal(b.X, mirror):
			seen[true] = true
		default:
			t.Fatalf("epoch %d: %v is neither %v nor %v", e, b.X, orig, mirror)
		}
	}
	if !seen[false] || !seen[true] {
		t.Errorf("40 epochs never gave both orientations: %v", seen)
	}
}

// TestLoaderAugmentDependsOnPosition: an example's augmentation is a function of its
// position in the epoch, not of how the epoch is cut into batches.
func TestLoaderAugmentDependsOnPosition(t *testing.T) {
	s := labelledSet(30, 1, 6, 6)
	cfg := LoaderConfig{BatchSize: 4, Seed: 11, Shuffle: true, Std: 1, Augment: Augment{CropPad: 3, HFlip: true}}
	flat := func(l *Loader) []float32 {
		var x []float32
		size := s.ImageSize()
		for _, b := range epochBatches(l, 3) {
			x = append(x, b.X[:b.Size*size]...)
		}
		return x
	}
	small := flat(mustLoader(t, s, cfg))
	cfg.BatchSize = 7
	if !slices.Equal(small, flat(mustLoader(t, s, cfg))) {
		t.Error("batch size changed the data of an epoch")
	}
}

func TestLoaderDropLast(t *testing.T) {
	s := labelledSet(37, 1, 2, 3)
	size := s.ImageSize()
	for _, tc := range []struct {
		dropLast         bool
		batches, lastLen int
	}{{true, 4, 8}, {false, 5, 5}} {
		l := mustLoader(t, s, LoaderConfig{BatchSize: 8, Seed: 1, Shuffle: true, DropLast: tc.dropLast, Std: 1})
		if l.BatchesPerEpoch() != tc.batches {
			t.Fatalf("DropLast=%v: %d batches, want %d", tc.dropLast, l.BatchesPerEpoch(), tc.batches)
		}
		// Reuse one Batch so that the short batch must clear what the full one left.
		var b Batch
		l.Batch(0, 0, &b)
		l.Batch(0, tc.batches-1, &b)
		if b.Size != tc.lastLen || len(b.X) != 8*size || len(b.Labels) != 8 {
			t.Fatalf("DropLast=%v: last batch size %d, len(X) %d, len(Labels) %d", tc.dropLast, b.Size, len(b.X), len(b.Labels))
		}
		for j := b.Size; j < 8; j++ {
			if b.Labels[j] != -1 || slices.ContainsFunc(b.X[j*size:(j+1)*size], func(v float32) bool { return v != 0 }) {
				t.Errorf("DropLast=%v: padding example %d: label %d, X %v", tc.dropLast, j, b.Labels[j], b.X[j*size:(j+1)*size])
			}
		}
		if tc.dropLast {
			seen := map[int]bool{}
			for _, b := range epochBatches(l, 0) {
				for _, lab := range b.Labels {
					seen[lab] = true
				}
			}
			if len(seen) != 32 {
				t.Errorf("DropLast: %d distinct examples, want 32", len(seen))
			}
		}
	}
}

func TestNewLoaderRejects(t *testing.T) {
	s := labelledSet(5, 1, 3, 3)
	good := LoaderConfig{BatchSize: 2, Std: 1}
	for _, tc := range []struct {
		name   string
		set    *Images
		change func(c *LoaderConfig)
		target error
	}{
		{"nil set", nil, func(*LoaderConfig) {}, ErrDataset},
		{"invalid set", &Images{Name: "bad", N: 1, Channels: 1, Height: 1, Width: 1, Classes: 1}, func(*LoaderConfig) {}, ErrDataset},
		{"empty set", s.Head(0), func(*LoaderConfig) {}, ErrDataset},
		{"zero batch", s, func(c *LoaderConfig) { c.BatchSize = 0 }, ErrLoaderConfig},
		{"zero std", s, func(c *LoaderConfig) { c.Std = 0 }, ErrLoaderConfig},
		{"negative std", s, func(c *LoaderConfig) { c.Std = -1 }, ErrLoaderConfig},
		{"NaN mean", s, func(c *LoaderConfig) { c.Mean = float32(math.NaN()) }, ErrLoaderConfig},
		{"infinite std", s, func(c *LoaderConfig) { c.Std = float32(math.Inf(1)) }, ErrLoaderConfig},
		{"negative crop", s, func(c *LoaderConfig) { c.Augment.CropPad = -1 }, ErrLoaderConfig},
		{"crop beyond image", s, func(c *LoaderConfig) { c.Augment.CropPad = 4 }, ErrLoaderConfig},
		{"no full batch", s, func(c *LoaderConfig) { c.BatchSize, c.DropLast = 6, true }, ErrDataset},
	} {
		cfg := good
		tc.change(&cfg)
		if _, err := NewLoader(tc.set, cfg); !errors.Is(err, tc.target) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.target)
		}
	}
	if err := DefaultLoaderConfig().Validate(); err != nil {
		t.Errorf("DefaultLoaderConfig: %v", err)
	}
}

func TestLoaderBatchPanics(t *testing.T) {
	l := mustLoader(t, labelledSet(5, 1, 2, 2), LoaderConfig{BatchSize: 2, Std: 1})
	for _, ei := range [][2]int{{-1, 0}, {0, -1}, {0, 3}} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("Batch(%d, %d) did not panic", ei[0], ei[1])
				}
			}()
			l.Batch(ei[0], ei[1], &Batch{})
		}()
	}
}

func TestLoaderSteadyStateAllocs(t *testing.T) {
	s := labelledSet(50, 1, 8, 8)
	l := mustLoader(t, s, LoaderConfig{BatchSize: 8, Seed: 1, Shuffle: true, Std: 1, Augment: Augment{CropPad: 2, HFlip: true}})
	var b Batch
	l.Batch(0, 0, &b)
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		l.Batch(i/l.BatchesPerEpoch(), i%l.BatchesPerEpoch(), &b) // crosses epochs too
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

func benchmarkBatch(b *testing.B, aug Augment) {
	train, _, err := LoadEmbeddedFashionMNIST()
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultLoaderConfig()
	cfg.Augment = aug
	l := mustLoader(b, train, cfg)
	var batch Batch
	b.SetBytes(int64(cfg.BatchSize * train.ImageSize()))
	i := 0
	for b.Loop() {
		l.Batch(i/l.BatchesPerEpoch(), i%l.BatchesPerEpoch(), &batch)
		i++
	}
}

// BenchmarkBatch is the baseline: normalisation only.
func BenchmarkBatch(b *testing.B) { benchmarkBatch(b, Augment{}) }

// BenchmarkBatchAugment adds crop and flip; compare against BenchmarkBatch.
func BenchmarkBatchAugment(b *testing.B) { benchmarkBatch(b, Augment{CropPad: 4, HFlip: true}) }

// TestLoaderPerChannel: each channel is normalised with its own mean and std; a count
// that does not match the images is refused.
func TestLoaderPerChannel(t *testing.T) {
	s := labelledSet(4, 3, 2, 2)
	mean, std := []float32{0.1, 0.5, 0.9}, []float32{0.2, 0.3, 0.4}
	l := mustLoader(t, s, LoaderConfig{BatchSize: 4, Mean: 0, Std: 1, ChannelMean: mean, ChannelStd: std})
	var b Batch
	l.Batch(0, 0, &b)
	plane := s.Height * s.Width
	for i := range s.N {
		for k, v := range s.Image(i) {
			c := k / plane
			if want := (float32(v)/255 - mean[c]) / std[c]; b.X[i*s.ImageSize()+k] != want {
				t.Fatalf("example %d value %d: %v, want %v", i, k, b.X[i*s.ImageSize()+k], want)
			}
		}
	}
	if _, err := NewLoader(s, LoaderConfig{BatchSize: 4, Std: 1, ChannelMean: mean[:2], ChannelStd: std[:2]}); err == nil {
		t.Error("2 channel means for 3-channel images accepted")
	}
}

// TestLoaderRandomResizedCrop: the crop is a pure function of (seed, epoch, position),
// differs between epochs, keeps values within the image's range, and a constant image
// stays constant.
func TestLoaderRandomResizedCrop(t *testing.T) {
	s := labelledSet(8, 3, 16, 16)
	cfg := LoaderConfig{BatchSize: 4, Seed: 7, Shuffle: true, Mean: 0.5, Std: 0.25,
		Augment: Augment{RandomResizedCrop: true, HFlip: true}}
	a, b := epochBatches(mustLoader(t, s, cfg), 0), epochBatches(mustLoader(t, s, cfg), 0)
	for i := range a {
		if !slices.Equal(a[i].X, b[i].X) {
			t.Fatal("same seed and epoch gave different crops")
		}
	}
	c := epochBatches(mustLoader(t, s, cfg), 1)
	if slices.Equal(a[0].X, c[0].X) {
		t.Error("epochs 0 and 1 gave the same first batch")
	}
	lo, hi := (0-cfg.Mean)/cfg.Std, (1-cfg.Mean)/cfg.Std
	for _, bt := range a {
		for _, v := range bt.X {
			if v < lo || v > hi {
				t.Fatalf("value %v outside [%v, %v]", v, lo, hi)
			}
		}
	}
	flat := labelledSet(2, 1, 16, 16)
	for i := range flat.Pixels {
		flat.Pixels[i] = 200
	}
	for _, bt := range epochBatches(mustLoader(t, flat, LoaderConfig{BatchSize: 2, Seed: 1, Mean: 0, Std: 1,
		Augment: Augment{RandomResizedCrop: true}}), 0) {
		for _, v := range bt.X {
			if v != float32(200)/255 {
				t.Fatalf("constant image became %v", v)
			}
		}
	}
}
