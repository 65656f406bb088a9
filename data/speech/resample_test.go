package speech

import (
	"math"
	"testing"
)

// tone returns n samples of amp*sin(2 pi f t) at rate.
func tone(n, rate int, f, amp float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(amp * math.Sin(2*math.Pi*f*float64(i)/float64(rate)))
	}
	return x
}

// fitTone fits a*sin + b*cos at frequency f (Hz) to y[lo:hi] by least squares and returns
// the amplitude sqrt(a^2+b^2) and the RMS of what the fit leaves.
func fitTone(y []float32, rate int, f float64, lo, hi int) (amp, residual float64) {
	var ss, cc, sc, ys, yc float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		s, c := math.Sin(w), math.Cos(w)
		ss, cc, sc = ss+s*s, cc+c*c, sc+s*c
		ys, yc = ys+float64(y[i])*s, yc+float64(y[i])*c
	}
	det := ss*cc - sc*sc
	a, b := (ys*cc-yc*sc)/det, (yc*ss-ys*sc)/det
	var r float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		d := float64(y[i]) - a*math.Sin(w) - b*math.Cos(w)
		r += d * d
	}
	return math.Hypot(a, b), math.Sqrt(r / float64(hi-lo))
}

func rms(y []float32) float64 {
	var s float64
	for _, v := range y {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(y)))
}

// TestResampleTones: a tone below the new Nyquist frequency keeps its frequency (nothing is
// left once it is fitted) and amplitude; a tone above it is removed, not aliased.
func TestResampleTones(t *testing.T) {
	const amp = 0.5
	for _, tc := range []struct {
		from, to int
		f        float64
		pass     bool
	}{
		{44100, 16000, 1000, true},
		{44100, 16000, 6000, true},
		{22050, 16000, 440, true},
		{22050, 16000, 6500, true},
		{48000, 16000, 3000, true},
		{16000, 8000, 3000, true},
		{8000, 16000, 1000, true}, // upsampling: no image at 7 kHz either
		{8000, 16000, 3300, true},
		{11025, 16000, 4000, true},
		{1001, 16000, 300, true}, // too many phases for a table: the kernel is evaluated directly
		{16000, 16000, 5000, true},
		{44100, 16000, 10000, false},
		{44100, 16000, 15000, false},
		{48000, 16000, 9000, false},
		{22050, 16000, 9000, false},
		{16000, 8000, 5000, false},
		{22050, 8000, 4500, false},
	} {
		x := tone(tc.from, tc.from, tc.f, amp) // one second
		y := Resample(x, tc.from, tc.to)
		if want := tc.to; len(y) != want {
			t.Fatalf("%d -> %d Hz: %d samples from one second, want %d", tc.from, tc.to, len(y), want)
		}
		// Judge the middle half, away from the zero padding at the ends.
		lo, hi := len(y)/4, 3*len(y)/4
		if tc.pass {
			a, res := fitTone(y, tc.to, tc.f, lo, hi)
			if math.Abs(a-amp) > 1e-3*amp || res > 1e-4*amp {
				t.Errorf("%d -> %d Hz, %v Hz tone: amplitude %.5f (want %v), residual %.2g", tc.from, tc.to, tc.f, a, amp, res)
			}
		} else if r := rms(y[lo:hi]) / (amp / math.Sqrt2); r > math.Pow(10, -70.0/20) {
			t.Errorf("%d -> %d Hz, %v Hz tone above the new Nyquist: kept %.2g of its RMS (%.1f dB), want < -70 dB",
				tc.from, tc.to, tc.f, r, 20*math.Log10(r))
		}
	}
}

func TestResampleLengthsAndEdges(t *testing.T) {
	for _, tc := range []struct {
		n, from, to, want int
	}{
		{0, 8000, 16000, 0},
		{1, 8000, 16000, 2},
		{18560, 22050, 16000, 13467},
		{3, 16000, 8000, 1},
		{7, 16000, 16000, 7},
	} {
		if got := len(Resample(make([]float32, tc.n), tc.from, tc.to)); got != tc.want {
			t.Errorf("%d samples %d -> %d Hz: %d, want %d", tc.n, tc.from, tc.to, got, tc.want)
		}
	}
	x := []float32{1, 2, 3}
	y := Resample(x, 16000, 16000)
	y[0] = 9
	if x[0] != 1 {
		t.Error("Resample at the same rate returned its input, not a copy")
	}
	defer func() {
		if recover() == nil {
			t.Error("Resample with rate 0 did not panic")
		}
	}()
	Resample(x, 0, 16000)
}

// TestResampleDC: a constant signal stays constant away from the ends (the kernel's phases
// each sum to one).
func TestResampleDC(t *testing.T) {
	for _, r := range [][2]int{{8000, 16000}, {22050, 16000}, {44100, 8000}} {
		x := make([]float32, r[0])
		for i := range x {
			x[i] = 0.25
		}
		y := Resample(x, r[0], r[1])
		for i := len(y) / 4; i < 3*len(y)/4; i++ {
			if math.Abs(float64(y[i])-0.25) > 1e-4 {
				t.Fatalf("%d -> %d Hz: sample %d is %v, want 0.25", r[0], r[1], i, y[i])
			}
		}
	}
}

func BenchmarkResample22050To16000(b *testing.B) {
	x := tone(22050, 22050, 440, 0.5)
	r := newResampler(22050, 16000)
	var dst []float32
	for b.Loop() {
		dst = r.resample(x, dst)
	}
}
