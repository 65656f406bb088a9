package speech

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/data"
)

// gridSet has n examples of 4 mels x 6 frames whose values encode where they came from:
// example i, band m, frame t holds i*100 + m*10 + t.
func gridSet(n int) *Set {
	s := &Set{Name: "grid", N: n, Mels: 4, Frames: 6, ClassNames: []string{"a", "b", "c"}}
	for i := range n {
		for m := range 4 {
			for t := range 6 {
				s.Features = append(s.Features, float32(i*100+m*10+t))
			}
		}
		s.Labels = append(s.Labels, uint8(i%3))
		s.Speakers = append(s.Speakers, "spk")
	}
	return s
}

func mustLoader(t *testing.T, s *Set, cfg LoaderConfig) *Loader {
	t.Helper()
	l, err := NewLoader(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLoaderPlain: without augmentation a batch is the normalised features in order,
// padded like data.Loader.
func TestLoaderPlain(t *testing.T) {
	set := gridSet(5)
	cfg := LoaderConfig{BatchSize: 2, Mean: 100, Std: 4}
	l := mustLoader(t, set, cfg)
	var _ data.Batcher = l
	if l.BatchesPerEpoch() != 3 {
		t.Fatalf("BatchesPerEpoch = %d, want 3", l.BatchesPerEpoch())
	}
	if c, h, w := l.Shape(); c != 1 || h != 4 || w != 6 {
		t.Errorf("Shape = %d, %d, %d", c, h, w)
	}
	var b data.Batch
	for idx := range 3 {
		l.Batch(0, idx, &b)
		if len(b.X) != 2*24 || len(b.Labels) != 2 {
			t.Fatalf("batch %d: %d values, %d labels", idx, len(b.X), len(b.Labels))
		}
		for j := range 2 {
			ex := idx*2 + j
			if ex >= set.N {
				if b.Labels[j] != -1 || slices.ContainsFunc(b.X[j*24:(j+1)*24], func(v float32) bool { return v != 0 }) {
					t.Errorf("batch %d slot %d: padding is label %d, values %v", idx, j, b.Labels[j], b.X[j*24:(j+1)*24])
				}
				continue
			}
			for k, v := range set.Example(ex) {
				if want := (v - 100) / 4; b.X[j*24+k] != want {
					t.Fatalf("batch %d slot %d value %d: %v, want %v", idx, j, k, b.X[j*24+k], want)
				}
			}
			if b.Labels[j] != int(set.Labels[ex]) {
				t.Errorf("batch %d slot %d: label %d, want %d", idx, j, b.Labels[j], set.Labels[ex])
			}
		}
		if want := min(2, set.N-idx*2); b.Size != want {
			t.Errorf("batch %d: Size %d, want %d", idx, b.Size, want)
		}
	}
	cfg.DropLast = true
	if l := mustLoader(t, set, cfg); l.BatchesPerEpoch() != 2 {
		t.Errorf("DropLast: %d batches, want 2", l.BatchesPerEpoch())
	}
}

// exampleOf recovers the example index from an unaugmented, normalised value.
func exampleOf(v float32, cfg LoaderConfig) int {
	return int(math.Round(float64(v*cfg.Std+cfg.Mean))) / 100
}

// TestLoaderDeterminism: a batch depends only on (Seed, epoch, index), not on which batches
// came before or on which loader serves it; every epoch is a permutation.
func TestLoaderDeterminism(t *testing.T) {
	set := gridSet(23)
	aug := Augment{TimeShift: 2, FreqMasks: 1, FreqMaskWidth: 2, TimeMasks: 2, TimeMaskWidth: 2, Noise: 0.1}
	cfg := LoaderConfig{BatchSize: 4, Seed: 7, Shuffle: true, Mean: 0, Std: 1, Augment: aug}
	a, b := mustLoader(t, set, cfg), mustLoader(t, set, cfg)
	var x, y data.Batch
	for _, q := range [][2]int{{0, 0}, {3, 5}, {0, 5}, {1, 2}, {3, 5}, {0, 0}} {
		a.Batch(q[0], q[1], &x)
		// b serves the batches in another order first.
		b.Batch(9, 1, &y)
		b.Batch(q[0], q[1], &y)
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("epoch %d batch %d differs between loaders", q[0], q[1])
		}
	}
	plain := cfg
	plain.Augment = Augment{}
	p := mustLoader(t, set, plain)
	orders := map[string]bool{}
	for epoch := range 4 {
		var seen []int
		for idx := range p.BatchesPerEpoch() {
			p.Batch(epoch, idx, &x)
			for j := range x.Size {
				seen = append(seen, exampleOf(x.X[j*24], plain))
			}
		}
		orders[fmt.Sprint(seen)] = true
		slices.Sort(seen)
		for i, v := range seen {
			if v != i {
				t.Fatalf("epoch %d is not a permutation: %v", epoch, seen)
			}
		}
	}
	if len(orders) != 4 {
		t.Errorf("4 epochs gave %d distinct orders", len(orders))
	}
	cfg.Seed = 8
	c := mustLoader(t, set, cfg)
	c.Batch(0, 0, &y)
	a.Batch(0, 0, &x)
	if reflect.DeepEqual(x.X, y.X) {
		t.Error("seeds 7 and 8 give the same batch")
	}
}

// augmented returns the examples of one epoch as normalised rows, in set order.
func augmented(t *testing.T, set *Set, aug Augment) (*Loader, [][]float32) {
	cfg := LoaderConfig{BatchSize: 8, Seed: 3, Mean: 50, Std: 2, Augment: aug}
	l := mustLoader(t, set, cfg)
	var b data.Batch
	var out [][]float32
	for idx := range l.BatchesPerEpoch() {
		l.Batch(0, idx, &b)
		for j := range b.Size {
			out = append(out, slices.Clone(b.X[j*24:(j+1)*24]))
		}
	}
	return l, out
}

func TestLoaderTimeShift(t *testing.T) {
	set := gridSet(60)
	l, got := augmented(t, set, Augment{TimeShift: 2})
	cfg := l.Config()
	silence := (float32(math.Log(LogFloor)) - cfg.Mean) / cfg.Std
	shifts := map[int]int{}
	for i, x := range got {
		found := false
		for s := -2; s <= 2 && !found; s++ {
			ok := true
			for m := range 4 {
				for tt := range 6 {
					want := silence
					if src := tt - s; src >= 0 && src < 6 {
						want = (float32(i*100+m*10+src) - cfg.Mean) / cfg.Std
					}
					ok = ok && x[m*6+tt] == want
				}
			}
			if ok {
				shifts[s]++
				found = true
			}
		}
		if !found {
			t.Fatalf("example %d is not a time shift of its features: %v", i, x)
		}
	}
	if len(shifts) != 5 {
		t.Errorf("shifts seen: %v, want all of -2..2", shifts)
	}
}

// TestLoaderMasks: masked bands (rows) and frames (columns) are exactly 0, the mean, and
// contiguous and no wider than the maximum; everything else is untouched.
func TestLoaderMasks(t *testing.T) {
	set := gridSet(60)
	for _, tc := range []struct {
		name string
		aug  Augment
		freq bool
	}{
		{"frequency", Augment{FreqMasks: 1, FreqMaskWidth: 2}, true},
		{"time", Augment{TimeMasks: 1, TimeMaskWidth: 3}, false},
	} {
		l, got := augmented(t, set, tc.aug)
		cfg := l.Config()
		widths := map[int]int{}
		for i, x := range got {
			var masked []int // masked rows or columns
			for m := range 4 {
				for tt := range 6 {
					want := (float32(i*100+m*10+tt) - cfg.Mean) / cfg.Std
					switch v := x[m*6+tt]; {
					case v == want:
					case v == 0:
						k := tt
						if tc.freq {
							k = m
						}
						if !slices.Contains(masked, k) {
							masked = append(masked, k)
						}
					default:
						t.Fatalf("%s: example %d band %d frame %d is %v, want %v or 0", tc.name, i, m, tt, v, want)
					}
				}
			}
			slices.Sort(masked)
			if len(masked) > 0 && masked[len(masked)-1]-masked[0] != len(masked)-1 {
				t.Fatalf("%s: example %d: masked %v is not contiguous", tc.name, i, masked)
			}
			// A whole row or column is masked.
			for _, k := range masked {
				n := 6
				if !tc.freq {
					n = 4
				}
				for j := range n {
					idx := k*6 + j
					if !tc.freq {
						idx = j*6 + k
					}
					if x[idx] != 0 {
						t.Fatalf("%s: example %d: mask %d is partial", tc.name, i, k)
					}
				}
			}
			widths[len(masked)]++
		}
		maxW := tc.aug.FreqMaskWidth + tc.aug.TimeMaskWidth
		for w := range widths {
			if w > maxW {
				t.Errorf("%s: a mask of width %d, max %d", tc.name, w, maxW)
			}
		}
		if widths[maxW] == 0 || widths[0] == 0 {
			t.Errorf("%s: mask widths seen %v, want 0..%d", tc.name, widths, maxW)
		}
	}
}

// TestLoaderNoise: noise has the configured spread, zero mean, and leaves the other draws
// alone.
func TestLoaderNoise(t *testing.T) {
	set := gridSet(200)
	_, clean := augmented(t, set, Augment{TimeShift: 1})
	_, noisy := augmented(t, set, Augment{TimeShift: 1, Noise: 0.5})
	var sum, ss float64
	n := 0
	for i := range clean {
		for k := range clean[i] {
			d := float64(noisy[i][k] - clean[i][k])
			sum += d
			ss += d * d
			n++
		}
	}
	mean, std := sum/float64(n), math.Sqrt(ss/float64(n))
	if math.Abs(mean) > 0.03 || math.Abs(std-0.5) > 0.02 {
		t.Errorf("noise mean %.4f, std %.4f; want 0 and 0.5", mean, std)
	}
}

func TestLoaderNoAllocs(t *testing.T) {
	set := gridSet(50)
	cfg := LoaderConfig{BatchSize: 16, Seed: 1, Shuffle: true, Std: 1,
		Augment: Augment{TimeShift: 2, FreqMasks: 2, FreqMaskWidth: 2, TimeMasks: 2, TimeMaskWidth: 3, Noise: 0.1}}
	l := mustLoader(t, set, cfg)
	var b data.Batch
	l.Batch(0, 0, &b)
	epoch := 0
	allocs := testing.AllocsPerRun(20, func() {
		epoch++ // a new permutation every call
		l.Batch(epoch, epoch%l.BatchesPerEpoch(), &b)
	})
	if allocs != 0 {
		t.Errorf("Batch allocates %v times per call, want 0", allocs)
	}
}

func TestLoaderConfigErrors(t *testing.T) {
	set := gridSet(3)
	for _, tc := range []struct {
		name string
		cfg  LoaderConfig
		want string
	}{
		{"batch size", LoaderConfig{Std: 1}, "BatchSize 0"},
		{"std", LoaderConfig{BatchSize: 1}, "Std 0"},
		{"mean NaN", LoaderConfig{BatchSize: 1, Std: 1, Mean: float32(math.NaN())}, "Mean NaN"},
		{"shift", LoaderConfig{BatchSize: 1, Std: 1, Augment: Augment{TimeShift: -1}}, "Augment.TimeShift -1"},
		{"shift too far", LoaderConfig{BatchSize: 1, Std: 1, Augment: Augment{TimeShift: 7}}, "TimeShift 7 exceeds the 6 frames"},
		{"freq masks", LoaderConfig{BatchSize: 1, Std: 1, Augment: Augment{FreqMasks: -1}}, "Augment.FreqMasks -1"},
		{"freq width", LoaderConfig{BatchSize: 1, Std: 1, Augment: Augment{FreqMasks: 1, FreqMaskWidth: 5}},
			"FreqMaskWidth 5 exceeds the 4 mel bands"},
		{"time width", LoaderConfig{BatchSize: 1, Std: 1, Augment: Augment{TimeMasks: 1, TimeMaskWidth: 7}},
			"TimeMaskWidth 7 exceeds the 6 frames"},
		{"noise", LoaderConfig{BatchSize: 1, Std: 1, Augment: Augment{Noise: -0.1}}, "Augment.Noise -0.1"},
		{"drop last, too few", LoaderConfig{BatchSize: 4, Std: 1, DropLast: true}, "no full batch of 4"},
	} {
		_, err := NewLoader(set, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) ||
			!(errors.Is(err, data.ErrLoaderConfig) || errors.Is(err, data.ErrDataset)) {
			t.Errorf("%s: err = %v, want a loader-config or dataset error naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewLoader(nil, LoaderConfig{BatchSize: 1, Std: 1}); !errors.Is(err, data.ErrDataset) {
		t.Errorf("nil set: err = %v", err)
	}
	d := DefaultLoaderConfig(Stats{Mean: -5, Std: 3})
	if err := d.Validate(); err != nil || d.Mean != -5 || d.Std != 3 || !d.Shuffle {
		t.Errorf("DefaultLoaderConfig = %+v, %v", d, err)
	}
}

func BenchmarkLoaderBatch(b *testing.B) {
	f := DefaultFrontend()
	set := &Set{Name: "bench", N: 512, Mels: f.Mels, Frames: f.Frames, ClassNames: []string{"x"},
		Features: make([]float32, 512*f.FeatureSize()), Labels: make([]uint8, 512), Speakers: make([]string, 512)}
	for _, bc := range []struct {
		name string
		aug  Augment
	}{
		{"plain", Augment{}},
		{"specaugment", Augment{TimeShift: 10, FreqMasks: 2, FreqMaskWidth: 8, TimeMasks: 2, TimeMaskWidth: 10}},
		{"specaugment+noise", Augment{TimeShift: 10, FreqMasks: 2, FreqMaskWidth: 8, TimeMasks: 2, TimeMaskWidth: 10, Noise: 0.1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := NewLoader(set, LoaderConfig{BatchSize: 128, Shuffle: true, Std: 1, Augment: bc.aug})
			if err != nil {
				b.Fatal(err)
			}
			var batch data.Batch
			i := 0
			for b.Loop() {
				l.Batch(i/4, i%4, &batch)
				i++
			}
		})
	}
}
