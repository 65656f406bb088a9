package speech

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDefaultFrontend(t *testing.T) {
	f := DefaultFrontend()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"WindowSize", f.WindowSize(), 400},
		{"HopSize", f.HopSize(), 160},
		{"FFTSize", f.FFTSize(), 512},
		{"FeatureSize", f.FeatureSize(), 40 * 100},
		{"FrameCount(1 s)", f.FrameCount(16000), 100},
		{"FrameCount(1 s + 1)", f.FrameCount(16001), 101},
		{"FrameCount(0)", f.FrameCount(0), 0},
		{"len(MelCenters)", len(f.MelCenters()), 40},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// One second is exactly Frames frames, so nothing is padded or cropped.
	if f.FrameCount(f.Rate) != f.Frames {
		t.Errorf("one second is %d frames, Frames is %d", f.FrameCount(f.Rate), f.Frames)
	}
	if got := len(f.LogMel(make([]float32, 16000))); got != 4000 {
		t.Errorf("LogMel of one second: %d values, want 40 x 100", got)
	}
}

func TestFrontendValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Frontend)
		want string
	}{
		{"rate 0", func(f *Frontend) { f.Rate = 0 }, "Rate 0 Hz"},
		{"rate too high", func(f *Frontend) { f.Rate = 400000 }, "Rate 400000 Hz"},
		{"window 0", func(f *Frontend) { f.WindowMS = 0 }, "WindowMS 0"},
		{"window NaN", func(f *Frontend) { f.WindowMS = math.NaN() }, "WindowMS NaN"},
		{"window one sample", func(f *Frontend) { f.WindowMS = 0.0625 }, "WindowMS 0.0625 is 1 samples"},
		{"hop negative", func(f *Frontend) { f.HopMS = -10 }, "HopMS -10"},
		{"hop under a sample", func(f *Frontend) { f.HopMS = 0.01 }, "HopMS 0.01 is 0 samples"},
		{"mels 0", func(f *Frontend) { f.Mels = 0 }, "Mels 0"},
		{"frames 0", func(f *Frontend) { f.Frames = 0 }, "Frames 0"},
		{"fmin negative", func(f *Frontend) { f.FMin = -1 }, "FMin -1 Hz"},
		{"fmax above Nyquist", func(f *Frontend) { f.FMax = 9000 }, "FMax 9000 Hz"},
		{"fmin above fmax", func(f *Frontend) { f.FMin = 5000; f.FMax = 4000 }, "FMin 5000 Hz, want below FMax 4000 Hz"},
		{"bands narrower than bins", func(f *Frontend) { f.Mels = 200 }, "covers no FFT bin"},
	} {
		f := DefaultFrontend()
		tc.edit(&f)
		err := f.Validate()
		if !errors.Is(err, ErrFrontend) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrFrontend naming %q", tc.name, err, tc.want)
		}
	}
	f := DefaultFrontend()
	f.FMax = 0 // Rate/2
	if err := f.Validate(); err != nil {
		t.Errorf("FMax 0: %v", err)
	}
	if c := f.MelCenters(); c[len(c)-1] >= 8000 {
		t.Errorf("FMax 0: top centre %v, want below 8000", c[len(c)-1])
	}
}

// tinyFrontend has hand-checkable numbers: 8-sample window and FFT at 1 kHz (bins at 0,
// 125, 250, 375, 500 Hz) and 2 mel bands from 0 to 500 Hz.
func tinyFrontend() Frontend {
	return Frontend{Rate: 1000, WindowMS: 8, HopMS: 8, Mels: 2, FMin: 0, FMax: 500, Frames: 1}
}

// TestMelFilterbankKnownAnswer checks the tiny filterbank against values computed by hand
// (with bc): mel(500) = 2595 log10(1 + 500/700) = 607.4459..., so the edges are 0,
// hz(607.45/3) = 137.7719, hz(2*607.45/3) = 302.6596 and 500 Hz, and each weight is the
// smaller of the rising (f-lo)/(c-lo) and falling (hi-f)/(hi-c) slopes.
func TestMelFilterbankKnownAnswer(t *testing.T) {
	f := tinyFrontend()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	wantCenters := []float64{137.771872824003, 302.659586992914}
	for i, c := range f.MelCenters() {
		if math.Abs(c-wantCenters[i]) > 1e-9 {
			t.Errorf("centre %d = %.12f, want %.12f", i, c, wantCenters[i])
		}
	}
	want := []melFilter{
		{first: 1, w: []float64{125 / 137.771872824003, (302.659586992914 - 250) / (302.659586992914 - 137.771872824003)}},
		{first: 2, w: []float64{(250 - 137.771872824003) / (302.659586992914 - 137.771872824003), (500 - 375) / (500 - 302.659586992914)}},
	}
	// The same numbers as bc printed them.
	bc := [][]float64{{0.907296949934633, 0.319366347325120}, {0.680633652674879, 0.633423220795181}}
	for m, flt := range f.filterbank() {
		if flt.first != want[m].first || len(flt.w) != len(want[m].w) {
			t.Fatalf("band %d: bins %d..%d, want %d..%d", m, flt.first, flt.first+len(flt.w)-1,
				want[m].first, want[m].first+len(want[m].w)-1)
		}
		for j, w := range flt.w {
			if math.Abs(w-want[m].w[j]) > 1e-9 || math.Abs(w-bc[m][j]) > 1e-12 {
				t.Errorf("band %d bin %d: weight %.15f, want %.15f", m, flt.first+j, w, bc[m][j])
			}
		}
	}

	// End to end: a unit impulse at the centre of the one frame (where the periodic Hann
	// window is 1) has a flat power spectrum |X_k|^2 = 1, so each band's energy is the sum
	// of its weights.
	x := make([]float32, 8)
	x[4] = 1
	got := f.LogMel(x)
	for m := range bc {
		e := bc[m][0] + bc[m][1]
		if w := math.Log(e + LogFloor); math.Abs(float64(got[m])-w) > 1e-6 {
			t.Errorf("impulse: band %d = %v, want log(%v + 1e-6) = %v", m, got[m], e, w)
		}
	}
}

// TestLogMelToneBand: a pure tone lands in the band whose centre is nearest its frequency.
// The tones sit at band centres and a quarter or a third of the way to a neighbour's.
func TestLogMelToneBand(t *testing.T) {
	f := DefaultFrontend()
	c := f.MelCenters()
	for _, m := range []int{4, 9, 15, 21, 27, 33, 38} {
		for _, off := range []float64{0, -0.25, 0.33} {
			hz := c[m] + off*(c[m+1]-c[m])
			if off < 0 {
				hz = c[m] + off*(c[m]-c[m-1])
			}
			spec := f.LogMel(tone(f.Rate, f.Rate, hz, 0.3))
			best, bestV := -1, math.Inf(-1)
			for b := range f.Mels {
				var sum float64
				for tt := 10; tt < 90; tt++ {
					sum += float64(spec[b*f.Frames+tt])
				}
				if sum > bestV {
					best, bestV = b, sum
				}
			}
			if best != m {
				t.Errorf("%.1f Hz tone peaks in band %d (centre %.1f Hz), want band %d (centre %.1f Hz)",
					hz, best, c[best], m, c[m])
			}
		}
	}
}

func TestLogMelSilence(t *testing.T) {
	f := DefaultFrontend()
	floor := float32(math.Log(LogFloor))
	if f.Silence() != floor {
		t.Errorf("Silence() = %v, want %v", f.Silence(), floor)
	}
	for _, n := range []int{0, 100, 16000, 40000} {
		for i, v := range f.LogMel(make([]float32, n)) {
			if v != floor {
				t.Fatalf("%d zero samples: value %d is %v, want log(1e-6) = %v", n, i, v, floor)
			}
		}
	}
}

// TestLogMelFitsClip: a short clip is centred in silence, a long one keeps its centre.
func TestLogMelFitsClip(t *testing.T) {
	f := DefaultFrontend()
	floor := f.Silence()
	// Which frames hold anything above silence?
	active := func(spec []float32) (first, last int) {
		first, last = -1, -1
		for tt := range f.Frames {
			for m := range f.Mels {
				if spec[m*f.Frames+tt] != floor {
					if first < 0 {
						first = tt
					}
					last = tt
					break
				}
			}
		}
		return first, last
	}
	burst := func(n, at, length int) []float32 {
		x := make([]float32, n)
		copy(x[at:], tone(length, f.Rate, 1000, 0.5))
		return x
	}
	for _, tc := range []struct {
		name        string
		x           []float32
		first, last int // -1: all silence
	}{
		// 0.5 s of tone fills the middle half: frames 25..74, plus one frame of window
		// overlap on each side.
		{"short clip centred", tone(8000, f.Rate, 1000, 0.5), 24, 75},
		// In a 2 s clip, a burst at 0.95..1.05 s is in the kept centre, at frames 45..54.
		{"long clip, centre kept", burst(32000, 15200, 1600), 44, 55},
		// A burst in the first quarter of a 2 s clip is cropped away.
		{"long clip, start cropped", burst(32000, 1000, 3000), -1, -1},
		{"one second", tone(16000, f.Rate, 1000, 0.5), 0, 99},
	} {
		first, last := active(f.LogMel(tc.x))
		if first != tc.first || last != tc.last {
			t.Errorf("%s: sound in frames %d..%d, want %d..%d", tc.name, first, last, tc.first, tc.last)
		}
	}
}

func BenchmarkLogMel(b *testing.B) {
	f := DefaultFrontend()
	p := newMelPlan(f)
	x := tone(16000, 16000, 440, 0.5)
	out := make([]float32, f.FeatureSize())
	for b.Loop() {
		p.logMel(x, out)
	}
}
