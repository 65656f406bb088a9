package speech

import (
	"fmt"
	"math"
)

// Resampler design. The kernel is a Kaiser-windowed sinc whose cutoff sits at rolloff times
// the lower of the two Nyquist frequencies: with kernelZeros zero crossings on each side and
// a Kaiser beta for about 80 dB of stopband attenuation, the transition band (about 5*fc/Z
// wide) ends just below that Nyquist frequency, so downsampling does not alias and
// upsampling leaves no images. Tones up to about 0.85 of the lower Nyquist frequency pass
// within 0.1 dB.
const (
	kernelZeros = 32
	rolloff     = 0.92
	kaiserBeta  = 7.857 // 0.1102 * (80 - 8.7)
	// maxPhases bounds the precomputed polyphase table: rate pairs whose reduced output
	// factor is larger (1001 -> 16000, say) evaluate the kernel on the fly instead.
	maxPhases = 4096
)

// Resample converts x from sample rate from to sample rate to (both in Hz, > 0) with a
// band-limited windowed-sinc interpolator; the result has len(x)*to/from samples (rounded
// down). Content above the lower of the two Nyquist frequencies is removed, so downsampling
// does not alias. Samples outside x count as zero. When from == to it returns a copy.
// It panics if a rate is not positive.
func Resample(x []float32, from, to int) []float32 {
	return newResampler(from, to).resample(x, nil)
}

// resampler is a polyphase windowed-sinc filter for one pair of rates, reusable across
// clips (loading a data set resamples thousands of clips at the same rates).
type resampler struct {
	from, to int
	up, down int     // to/g and from/g: output n sits at input time n*down/up
	fc       float64 // cutoff in cycles per input sample
	half     float64 // kernel half-width in input samples
	taps     int     // 2*ceil(half): input samples that can touch one output
	table    []float64
}

func newResampler(from, to int) *resampler {
	if from <= 0 || to <= 0 {
		panic(fmt.Sprintf("speech: Resample from %d Hz to %d Hz: rates must be > 0", from, to))
	}
	g := gcd(from, to)
	r := &resampler{from: from, to: to, up: to / g, down: from / g}
	r.fc = 0.5 * rolloff * min(1, float64(to)/float64(from))
	r.half = kernelZeros / (2 * r.fc)
	r.taps = 2 * int(math.Ceil(r.half))
	if r.up <= maxPhases && from != to {
		r.table = make([]float64, r.up*r.taps)
		for p := range r.up {
			r.weights(float64(p)/float64(r.up), r.table[p*r.taps:(p+1)*r.taps])
		}
	}
	return r
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// weights fills w with the kernel for an output at input time base+frac (0 <= frac < 1):
// w[j] multiplies input sample base - taps/2 + 1 + j.
func (r *resampler) weights(frac float64, w []float64) {
	k := r.taps / 2
	i0 := bessel0(kaiserBeta)
	for j := range w {
		d := frac + float64(k-1-j) // distance from the output time to the input sample
		if math.Abs(d) >= r.half {
			w[j] = 0
			continue
		}
		t := d / r.half
		win := bessel0(kaiserBeta*math.Sqrt(1-t*t)) / i0
		w[j] = 2 * r.fc * sinc(2*r.fc*d) * win
	}
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// bessel0 is the modified Bessel function of the first kind of order 0, by its power
// series (which converges quickly for the arguments a Kaiser window needs).
func bessel0(x float64) float64 {
	sum, term, q := 1.0, 1.0, x*x/4
	for k := 1; k < 100; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

// outLen is len*to/from rounded down, without overflow for any realistic length.
func (r *resampler) outLen(n int) int {
	return int(int64(n) * int64(r.up) / int64(r.down))
}

// resample writes the resampled x to dst (grown if needed) and returns it.
func (r *resampler) resample(x, dst []float32) []float32 {
	n := r.outLen(len(x))
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if r.from == r.to {
		copy(dst, x)
		return dst
	}
	var scratch []float64
	if r.table == nil {
		scratch = make([]float64, r.taps)
	}
	k := r.taps / 2
	for i := range dst {
		pos := int64(i) * int64(r.down)
		base := int(pos / int64(r.up))
		phase := int(pos % int64(r.up))
		var w []float64
		if r.table != nil {
			w = r.table[phase*r.taps : (phase+1)*r.taps]
		} else {
			r.weights(float64(phase)/float64(r.up), scratch)
			w = scratch
		}
		first := base - k + 1
		lo, hi := max(0, -first), min(r.taps, len(x)-first)
		var acc float64
		for j := lo; j < hi; j++ {
			acc += w[j] * float64(x[first+j])
		}
		dst[i] = float32(acc)
	}
	return dst
}
