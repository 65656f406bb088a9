package speech

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"gonum.org/v1/gonum/dsp/fourier"
)

// ErrFrontend is wrapped by every error about an invalid Frontend.
var ErrFrontend = errors.New("invalid front end")

// LogFloor is added to every mel energy before the logarithm, so silence maps to
// log(LogFloor) (about -13.8) rather than -Inf.
const LogFloor = 1e-6

// Frontend turns a waveform into a log-mel spectrogram: Hann-windowed frames, a power
// spectrum by FFT (the window zero-padded to the next power of two), triangular filters on
// the HTK mel scale (mel = 2595 log10(1 + f/700), peak weight 1, no area normalisation) and
// log(energy + LogFloor).
//
// The clip is first fitted to exactly Frames hops: a longer one keeps its centre, a shorter
// one is centred in silence. Frame t is the window centred on the middle of hop t, so one
// second at 16 kHz with a 10 ms hop is exactly 100 frames; samples outside the clip count
// as zero.
type Frontend struct {
	// Rate is the sample rate in Hz that the front end expects; clips at other rates are
	// resampled when a set is loaded.
	Rate int `mapstructure:"rate" json:"rate"`
	// WindowMS and HopMS are the analysis window and the hop between frames in
	// milliseconds, rounded to whole samples at Rate.
	WindowMS float64 `mapstructure:"window_ms" json:"window_ms"`
	HopMS    float64 `mapstructure:"hop_ms" json:"hop_ms"`
	// Mels is the number of mel bands: the height of the spectrogram image.
	Mels int `mapstructure:"mels" json:"mels"`
	// FMin and FMax bound the filterbank in Hz; FMax 0 means Rate/2.
	FMin float64 `mapstructure:"fmin" json:"fmin"`
	FMax float64 `mapstructure:"fmax" json:"fmax"`
	// Frames is the number of frames per clip: the width of the spectrogram image.
	Frames int `mapstructure:"frames" json:"frames"`
}

// DefaultFrontend returns the usual keyword-spotting front end: 16 kHz, 25 ms Hann
// window (400 samples, 512-point FFT), 10 ms hop, 40 mel bands from 20 Hz to 8 kHz, 100
// frames (one second).
func DefaultFrontend() Frontend {
	return Frontend{Rate: 16000, WindowMS: 25, HopMS: 10, Mels: 40, FMin: 20, FMax: 8000, Frames: 100}
}

// Limits on the front end, generous but small enough that a bad config cannot ask for a
// gigabyte per clip.
const (
	maxWindow = 1 << 16
	maxMels   = 1024
	maxFrames = 1 << 16
)

// WindowSize returns the analysis window in samples.
func (f Frontend) WindowSize() int { return int(math.Round(float64(f.Rate) * f.WindowMS / 1000)) }

// HopSize returns the hop between frames in samples.
func (f Frontend) HopSize() int { return int(math.Round(float64(f.Rate) * f.HopMS / 1000)) }

// FFTSize returns the FFT length: the window size rounded up to a power of two.
func (f Frontend) FFTSize() int {
	w := f.WindowSize()
	if w <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(w-1))
}

// FeatureSize returns Mels*Frames, the number of values per clip.
func (f Frontend) FeatureSize() int { return f.Mels * f.Frames }

// FrameCount returns how many frames n samples span before fitting to Frames: n/hop
// rounded up.
func (f Frontend) FrameCount(n int) int {
	h := f.HopSize()
	return (n + h - 1) / h
}

// Silence returns the feature value of silence, log(LogFloor).
func (f Frontend) Silence() float32 { return float32(math.Log(LogFloor)) }

func (f Frontend) fmax() float64 {
	if f.FMax == 0 {
		return float64(f.Rate) / 2
	}
	return f.FMax
}

// Validate checks every field, naming the first that is wrong, and that every mel filter
// covers at least one FFT bin.
func (f Frontend) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("speech: %w: %s", ErrFrontend, fmt.Sprintf(format, args...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case f.Rate < MinRate || f.Rate > MaxRate:
		return bad("Rate %d Hz, want %d to %d", f.Rate, MinRate, MaxRate)
	case !finite(f.WindowMS) || f.WindowMS <= 0:
		return bad("WindowMS %v, want a finite number > 0", f.WindowMS)
	case f.WindowSize() < 2 || f.WindowSize() > maxWindow:
		return bad("WindowMS %v is %d samples at %d Hz, want 2 to %d", f.WindowMS, f.WindowSize(), f.Rate, maxWindow)
	case !finite(f.HopMS) || f.HopMS <= 0:
		return bad("HopMS %v, want a finite number > 0", f.HopMS)
	case f.HopSize() < 1 || f.HopSize() > maxWindow:
		return bad("HopMS %v is %d samples at %d Hz, want 1 to %d", f.HopMS, f.HopSize(), f.Rate, maxWindow)
	case f.Mels < 1 || f.Mels > maxMels:
		return bad("Mels %d, want 1 to %d", f.Mels, maxMels)
	case f.Frames < 1 || f.Frames > maxFrames:
		return bad("Frames %d, want 1 to %d", f.Frames, maxFrames)
	case !finite(f.FMin) || f.FMin < 0:
		return bad("FMin %v Hz, want a finite number >= 0", f.FMin)
	case !finite(f.FMax) || f.FMax < 0 || f.FMax > float64(f.Rate)/2:
		return bad("FMax %v Hz, want 0 (meaning Rate/2) or up to Rate/2 = %v", f.FMax, float64(f.Rate)/2)
	case f.FMin >= f.fmax():
		return bad("FMin %v Hz, want below FMax %v Hz", f.FMin, f.fmax())
	}
	for m, flt := range f.filterbank() {
		if len(flt.w) == 0 {
			c := f.MelCenters()[m]
			return bad("mel band %d (centre %.1f Hz) covers no FFT bin: %d Mels from %v to %v Hz are too narrow for a %d-point FFT at %d Hz",
				m, c, f.Mels, f.FMin, f.fmax(), f.FFTSize(), f.Rate)
		}
	}
	return nil
}

// hzToMel and melToHz are the HTK mel scale.
func hzToMel(hz float64) float64  { return 2595 * math.Log10(1+hz/700) }
func melToHz(mel float64) float64 { return 700 * (math.Pow(10, mel/2595) - 1) }

// melPoints returns the Mels+2 filter edges in Hz, equally spaced in mel from FMin to FMax.
func (f Frontend) melPoints() []float64 {
	lo, hi := hzToMel(f.FMin), hzToMel(f.fmax())
	pts := make([]float64, f.Mels+2)
	for i := range pts {
		pts[i] = melToHz(lo + (hi-lo)*float64(i)/float64(f.Mels+1))
	}
	// Exact ends, so that the top band does not reach past FMax by a rounding error.
	pts[0], pts[len(pts)-1] = f.FMin, f.fmax()
	return pts
}

// MelCenters returns the centre frequency of each mel band in Hz, where its filter peaks.
func (f Frontend) MelCenters() []float64 {
	pts := f.melPoints()
	return pts[1 : len(pts)-1]
}

// melFilter is one row of the filterbank: weights w for FFT bins first, first+1, ...
type melFilter struct {
	first int
	w     []float64
}

// filterbank returns the triangular filters: band m rises from 0 at edge m to 1 at edge m+1
// and falls to 0 at edge m+2, evaluated at the FFT bin frequencies k*Rate/FFTSize.
func (f Frontend) filterbank() []melFilter {
	pts := f.melPoints()
	n := f.FFTSize()
	bins := n/2 + 1
	out := make([]melFilter, f.Mels)
	for m := range out {
		lo, c, hi := pts[m], pts[m+1], pts[m+2]
		first := -1
		w := make([]float64, 0, 8)
		for k := range bins {
			fk := float64(k) * float64(f.Rate) / float64(n)
			v := max(0, min((fk-lo)/(c-lo), (hi-fk)/(hi-c)))
			if v > 0 {
				if first < 0 {
					first = k
				}
				w = append(w, v)
			} else if first >= 0 {
				break
			}
		}
		out[m] = melFilter{first: max(first, 0), w: w}
	}
	return out
}

// LogMel returns the log-mel spectrogram of samples (at f.Rate): Mels*Frames values,
// mel-major (row m holds the Frames values of band m, lowest band first), that is an
// image of height Mels and width Frames. It panics if f is invalid; check Validate first.
func (f Frontend) LogMel(samples []float32) []float32 {
	p := newMelPlan(f)
	out := make([]float32, f.FeatureSize())
	p.logMel(samples, out)
	return out
}

// melPlan holds what LogMel needs for one Frontend, so that a worker can process many clips
// without rebuilding it. It is not safe for concurrent use (the FFT has scratch state).
type melPlan struct {
	fe             Frontend
	win, hop, nfft int
	window         []float64
	filters        []melFilter
	fft            *fourier.FFT
	frame          []float64
	coeff          []complex128
	power          []float64
}

func newMelPlan(f Frontend) *melPlan {
	if err := f.Validate(); err != nil {
		panic(err.Error())
	}
	p := &melPlan{fe: f, win: f.WindowSize(), hop: f.HopSize(), nfft: f.FFTSize(), filters: f.filterbank()}
	// Periodic Hann (as torch.hann_window and most front ends): w[n] = 0.5 - 0.5 cos(2 pi n / N).
	p.window = make([]float64, p.win)
	for i := range p.window {
		p.window[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(p.win))
	}
	p.fft = fourier.NewFFT(p.nfft)
	p.frame = make([]float64, p.nfft)
	p.coeff = make([]complex128, p.nfft/2+1)
	p.power = make([]float64, p.nfft/2+1)
	return p
}

// logMel writes the spectrogram of x to out (len Mels*Frames).
func (p *melPlan) logMel(x []float32, out []float32) {
	frames := p.fe.Frames
	// Fit the clip to frames*hop samples: virtual sample v is x[v+off].
	span := frames * p.hop
	off := (len(x) - span) / 2 // > 0 crops the centre, < 0 centres the clip in silence
	if len(x) < span {
		off = -((span - len(x)) / 2)
	}
	floor := float32(math.Log(LogFloor))
	for t := range frames {
		start := t*p.hop + p.hop/2 - p.win/2 + off
		silent := true
		for j := range p.win {
			v := 0.0
			if i := start + j; i >= 0 && i < len(x) {
				v = float64(x[i]) * p.window[j]
			}
			p.frame[j] = v
			if v != 0 {
				silent = false
			}
		}
		if silent {
			for m := range p.filters {
				out[m*frames+t] = floor
			}
			continue
		}
		clear(p.frame[p.win:])
		p.fft.Coefficients(p.coeff, p.frame)
		for k, c := range p.coeff {
			p.power[k] = real(c)*real(c) + imag(c)*imag(c)
		}
		for m, flt := range p.filters {
			var e float64
			for j, w := range flt.w {
				e += w * p.power[flt.first+j]
			}
			out[m*frames+t] = float32(math.Log(e + LogFloor))
		}
	}
}
