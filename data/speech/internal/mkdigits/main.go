// Command mkdigits synthesises a spoken-digit data set in the layout of Google's Speech
// Commands, for package speech: <digit>/<speaker>_nohash_<n>.wav plus validation_list.txt
// and testing_list.txt, with a speaker-independent split.
//
// Each "speaker" is an espeak-ng voice with a variant (en-us+m3, en-gb-scotland+klatt2,
// ...). Every rendition draws its own speed, pitch and amplitude for espeak-ng; the clip is
// then trimmed, resampled, given a random gain and a random offset inside a fixed-length
// clip, and mixed with white or pink noise at a random SNR. The speakers are shuffled and
// the first go to validation, the next to test, the rest to training, so no validation or
// test speaker is ever heard in training. The output is a function of the flags (and of
// the espeak-ng build): each rendition has its own seeded random stream, so the number of
// workers does not matter.
//
// Usage:
//
//	go run ./data/speech/internal/mkdigits -out DIR [flags]
//	go run ./data/speech/internal/mkdigits -embedded -overwrite -out data/speech/embedded
//
// scripts/make-spoken-digits.sh wraps it.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
)

// digits are the words, in label order (also the folder names).
var digits = speech.DigitClasses()

// defaultVoices are the English voices of espeak-ng 1.51 that need no MBROLA data ("en" is
// an alias of en-gb, so it is left out).
const defaultVoices = "en-gb,en-us,en-gb-scotland,en-gb-x-gbclan,en-gb-x-rp,en-gb-x-gbcwmd,en-029,en-us-nyc"

// classicVariants are espeak-ng's long-standing voice variants; "" is the voice itself.
var classicVariants = []string{"",
	"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
	"f1", "f2", "f3", "f4", "f5",
	"klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
	"croak", "whisper", "whisperf", "grandma", "grandpa"}

// config is everything that determines the output.
type config struct {
	out                      string
	seed                     uint64
	embedded                 bool
	voices                   []string
	variants                 []string
	renditions               int
	trainSpk, valSpk, tesSpk int
	rate, bits               int
	clip                     float64 // seconds
	snrMin, snrMax           float64 // dB
	peakMin, peakMax         float64 // dBFS
	speedMin, speedMax       int     // words per minute
	pitchMin, pitchMax       int     // 0..99
	ampMin, ampMax           int     // 0..200
	jobs                     int
	espeak                   string
	overwrite                bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdigits:", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkdigits:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fset := flag.NewFlagSet("mkdigits", flag.ContinueOnError)
	var c config
	var voices, variants string
	fset.StringVar(&c.out, "out", "", "output `directory` (required)")
	fset.Uint64Var(&c.seed, "seed", 1, "random seed")
	fset.BoolVar(&c.embedded, "embedded", false, "preset for the embedded subset: 8 kHz 8-bit, 28 train / 4 val / 4 test speakers, 1 rendition")
	fset.StringVar(&voices, "voices", defaultVoices, "comma-separated espeak-ng voices")
	fset.StringVar(&variants, "variants", "classic", "voice variants: classic, all (every variant installed), none, or a comma-separated list")
	fset.IntVar(&c.renditions, "renditions", 3, "renditions of each digit per speaker")
	fset.IntVar(&c.trainSpk, "train-speakers", 0, "training speakers (0: all that are not validation or test)")
	fset.IntVar(&c.valSpk, "val-speakers", 0, "validation speakers (0: 10% of all, at least 1)")
	fset.IntVar(&c.tesSpk, "test-speakers", 0, "test speakers (0: 10% of all, at least 1)")
	fset.IntVar(&c.rate, "rate", 16000, "output sample rate in Hz")
	fset.IntVar(&c.bits, "bits", 16, "bits per sample, 8 or 16")
	fset.Float64Var(&c.clip, "clip", 1, "clip length in seconds")
	fset.Float64Var(&c.snrMin, "snr-min", 5, "lowest signal-to-noise ratio in dB")
	fset.Float64Var(&c.snrMax, "snr-max", 40, "highest signal-to-noise ratio in dB")
	fset.Float64Var(&c.peakMin, "peak-min", -20, "lowest speech peak in dBFS")
	fset.Float64Var(&c.peakMax, "peak-max", -1, "highest speech peak in dBFS")
	fset.IntVar(&c.jobs, "jobs", runtime.GOMAXPROCS(0), "parallel espeak-ng processes")
	fset.StringVar(&c.espeak, "espeak", "espeak-ng", "espeak-ng `command`")
	fset.BoolVar(&c.overwrite, "overwrite", false, "replace the digit folders, lists and README.md already in -out")
	if err := fset.Parse(args); err != nil {
		return c, err
	}
	if fset.NArg() != 0 {
		return c, fmt.Errorf("unexpected arguments %q", fset.Args())
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.embedded {
		// The preset fills only what the command line left unset.
		preset := map[string]func(){
			"rate":           func() { c.rate = 8000 },
			"bits":           func() { c.bits = 8 },
			"renditions":     func() { c.renditions = 1 },
			"train-speakers": func() { c.trainSpk = 28 },
			"val-speakers":   func() { c.valSpk = 4 },
			"test-speakers":  func() { c.tesSpk = 4 },
		}
		for name, apply := range preset {
			if !set[name] {
				apply()
			}
		}
	}
	c.speedMin, c.speedMax = 110, 220
	c.pitchMin, c.pitchMax = 25, 75
	c.ampMin, c.ampMax = 80, 150
	c.voices = splitList(voices)
	var err error
	if c.variants, err = resolveVariants(variants, c.espeak); err != nil {
		return c, err
	}
	switch {
	case c.out == "":
		return c, errors.New("-out is required")
	case len(c.voices) == 0:
		return c, errors.New("-voices is empty")
	case c.renditions < 1:
		return c, fmt.Errorf("-renditions %d, want >= 1", c.renditions)
	case c.trainSpk < 0 || c.valSpk < 0 || c.tesSpk < 0:
		return c, errors.New("speaker counts must be >= 0")
	case c.rate < speech.MinRate || c.rate > speech.MaxRate:
		return c, fmt.Errorf("-rate %d, want %d to %d", c.rate, speech.MinRate, speech.MaxRate)
	case c.bits != 8 && c.bits != 16:
		return c, fmt.Errorf("-bits %d, want 8 or 16", c.bits)
	case !(c.clip >= 0.1 && c.clip <= 10):
		return c, fmt.Errorf("-clip %v s, want 0.1 to 10", c.clip)
	case !(c.snrMin <= c.snrMax) || !(c.peakMin <= c.peakMax) || c.peakMax > 0:
		return c, errors.New("want -snr-min <= -snr-max and -peak-min <= -peak-max <= 0")
	case c.jobs < 1:
		return c, fmt.Errorf("-jobs %d, want >= 1", c.jobs)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// resolveVariants expands the -variants flag; "all" lists espeak-ng's variant files.
func resolveVariants(spec, espeak string) ([]string, error) {
	switch spec {
	case "classic":
		return slices.Clone(classicVariants), nil
	case "none":
		return []string{""}, nil
	case "all":
		dir, err := espeakDataDir(espeak)
		if err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(filepath.Join(dir, "voices", "!v"))
		if err != nil {
			return nil, fmt.Errorf("listing espeak-ng variants: %w", err)
		}
		out := []string{""}
		for _, e := range entries {
			// Names with spaces cannot follow "+" on the command line; none is needed.
			if n := e.Name(); !e.IsDir() && !strings.ContainsAny(n, " _+") {
				out = append(out, n)
			}
		}
		return out, nil
	}
	out := splitList(spec)
	for i, v := range out {
		if v == "none" || v == "-" {
			out[i] = ""
		}
	}
	return out, nil
}

// espeakDataDir asks espeak-ng where its data live ("... Data at: /usr/lib/...").
func espeakDataDir(espeak string) (string, error) {
	v, err := exec.Command(espeak, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", espeak, err)
	}
	_, dir, ok := strings.Cut(string(v), "Data at:")
	if !ok {
		return "", fmt.Errorf("%s --version did not say where its data are: %q", espeak, v)
	}
	return strings.TrimSpace(dir), nil
}

// speaker is one voice+variant; its id names its files.
type speaker struct {
	voice, variant string
	split          string // "train", "val" or "test"
}

func (s speaker) id() string {
	if s.variant == "" {
		return s.voice
	}
	return s.voice + "+" + s.variant
}

// job is one rendition to synthesise.
type job struct {
	spk   speaker
	digit int
	n     int
	rel   string // <digit>/<speaker>_nohash_<n>.wav
}

// result is what a job reports back.
type result struct {
	bytes   int64
	cropped bool
}

func run(c config, w io.Writer) error {
	start := time.Now()
	version, err := exec.Command(c.espeak, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w (install the espeak-ng package)", c.espeak, err)
	}
	spks, err := splitSpeakers(c)
	if err != nil {
		return err
	}
	if err := prepareOut(c); err != nil {
		return err
	}
	var jobs []job
	for _, s := range spks {
		if s.split == "" {
			continue
		}
		for d, word := range digits {
			for n := range c.renditions {
				jobs = append(jobs, job{spk: s, digit: d, n: n,
					rel: fmt.Sprintf("%s/%s_nohash_%d.wav", word, s.id(), n)})
			}
		}
	}
	tmp, err := os.MkdirTemp("", "mkdigits")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	results := make([]result, len(jobs))
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		first  error
		wg     sync.WaitGroup
	)
	for w := range c.jobs {
		wg.Go(func() {
			scratch := filepath.Join(tmp, fmt.Sprintf("w%d.wav", w))
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				r, err := render(c, jobs[i], scratch)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", jobs[i].rel, err)
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
				results[i] = r
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}

	lists := map[string][]string{"val": nil, "test": nil}
	files := map[string]int{}
	var total int64
	cropped := 0
	for i, j := range jobs {
		files[j.spk.split]++
		total += results[i].bytes
		if results[i].cropped {
			cropped++
		}
		if j.spk.split != "train" {
			lists[j.spk.split] = append(lists[j.spk.split], j.rel)
		}
	}
	for split, name := range map[string]string{"val": speech.ValidationList, "test": speech.TestingList} {
		l := lists[split]
		slices.Sort(l)
		b := []byte(strings.Join(l, "\n") + "\n")
		if len(l) == 0 {
			b = nil
		}
		if err := os.WriteFile(filepath.Join(c.out, name), b, 0o644); err != nil {
			return err
		}
		total += int64(len(b))
	}
	nspk := map[string]int{}
	for _, s := range spks {
		nspk[s.split]++
	}
	short, _, _ := strings.Cut(string(version), "Data at:")
	readme := readmeText(c, strings.TrimSpace(short), spks, files, total)
	if err := os.WriteFile(filepath.Join(c.out, "README.md"), []byte(readme), 0o644); err != nil {
		return err
	}
	total += int64(len(readme))

	fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(version)))
	fmt.Fprintf(w, "speakers: %d train, %d val, %d test (%d voices x %d variants, %d unused)\n",
		nspk["train"], nspk["val"], nspk["test"], len(c.voices), len(c.variants), nspk[""])
	fmt.Fprintf(w, "files: %d (%d train, %d val, %d test), %d renditions cropped to %.2f s\n",
		len(jobs), files["train"], files["val"], files["test"], cropped, c.clip)
	fmt.Fprintf(w, "total size: %d bytes (%.1f MB) in %s\n", total, float64(total)/1e6, c.out)
	fmt.Fprintf(w, "wall time: %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// splitSpeakers lists every voice x variant and assigns the splits: a seeded shuffle, the
// first to validation, the next to test, then up to trainSpk (all if 0) to training.
func splitSpeakers(c config) ([]speaker, error) {
	var spks []speaker
	for _, v := range c.voices {
		for _, vr := range c.variants {
			spks = append(spks, speaker{voice: v, variant: vr})
		}
	}
	n := len(spks)
	val, test := c.valSpk, c.tesSpk
	if val == 0 {
		val = max(1, n/10)
	}
	if test == 0 {
		test = max(1, n/10)
	}
	train := n - val - test
	if c.trainSpk > 0 {
		if c.trainSpk > train {
			return nil, fmt.Errorf("%d train + %d val + %d test speakers, but only %d voice+variant combinations",
				c.trainSpk, val, test, n)
		}
		train = c.trainSpk
	}
	if train < 1 {
		return nil, fmt.Errorf("%d voice+variant combinations leave no training speaker after %d val + %d test", n, val, test)
	}
	src := rand.NewPCG(c.seed, 0x53504c4954535031) // "SPLITSP1"
	for i := n - 1; i > 0; i-- {
		j := data.Uintn(src, uint64(i)+1)
		spks[i], spks[j] = spks[j], spks[i]
	}
	for i := range spks {
		switch {
		case i < val:
			spks[i].split = "val"
		case i < val+test:
			spks[i].split = "test"
		case i < val+test+train:
			spks[i].split = "train"
		}
	}
	slices.SortStableFunc(spks, func(a, b speaker) int { return strings.Compare(a.id(), b.id()) })
	return spks, nil
}

// prepareOut creates the output folder, removing earlier output with -overwrite.
func prepareOut(c config) error {
	owned := append(slices.Clone(digits), speech.ValidationList, speech.TestingList, "README.md")
	var found []string
	for _, name := range owned {
		if _, err := os.Lstat(filepath.Join(c.out, name)); err == nil {
			found = append(found, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if len(found) > 0 {
		if !c.overwrite {
			return fmt.Errorf("%s already holds %s; pass -overwrite to replace them", c.out, strings.Join(found, ", "))
		}
		for _, name := range found {
			if err := os.RemoveAll(filepath.Join(c.out, name)); err != nil {
				return err
			}
		}
	}
	for _, d := range digits {
		if err := os.MkdirAll(filepath.Join(c.out, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// render synthesises, processes and writes one rendition.
func render(c config, j job, scratch string) (result, error) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%d|%d", j.spk.id(), j.digit, j.n)
	rng := rand.NewPCG(c.seed, h.Sum64())
	speed := c.speedMin + int(data.Uintn(rng, uint64(c.speedMax-c.speedMin+1)))
	pitch := c.pitchMin + int(data.Uintn(rng, uint64(c.pitchMax-c.pitchMin+1)))
	amp := c.ampMin + int(data.Uintn(rng, uint64(c.ampMax-c.ampMin+1)))

	var stderr bytes.Buffer
	cmd := exec.Command(c.espeak, "-v", j.spk.id(), "-s", strconv.Itoa(speed), "-p", strconv.Itoa(pitch),
		"-a", strconv.Itoa(amp), "-w", scratch, digits[j.digit])
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	f, err := os.Open(scratch)
	if err != nil {
		return result{}, err
	}
	a, err := speech.ReadWAV(f, scratch, speech.Limits{})
	f.Close()
	if err != nil {
		return result{}, fmt.Errorf("reading espeak-ng output: %w", err)
	}
	x := trim(a.Samples, a.Rate)
	if len(x) == 0 {
		return result{}, fmt.Errorf("%s produced silence", strings.Join(cmd.Args, " "))
	}
	x = speech.Resample(x, a.Rate, c.rate)

	clipLen := int(math.Round(c.clip * float64(c.rate)))
	cropped := false
	if len(x) > clipLen {
		off := (len(x) - clipLen) / 2
		x, cropped = x[off:off+clipLen], true
	}
	// Gain: the speech peak lands uniformly in [peakMin, peakMax] dBFS.
	peak := 0.0
	for _, v := range x {
		peak = max(peak, math.Abs(float64(v)))
	}
	gain := math.Pow(10, uniform(rng, c.peakMin, c.peakMax)/20) / peak
	out := make([]float32, clipLen)
	at := int(data.Uintn(rng, uint64(clipLen-len(x)+1)))
	var power float64
	for i, v := range x {
		s := float64(v) * gain
		out[at+i] = float32(s)
		power += s * s
	}
	speechRMS := math.Sqrt(power / float64(len(x)))
	// Noise over the whole clip at a random SNR (speech RMS over noise RMS), white or pink.
	snr := uniform(rng, c.snrMin, c.snrMax)
	noise := make([]float64, clipLen)
	pink := rng.Uint64()&1 == 1
	for i := range noise {
		noise[i] = normal(rng)
	}
	if pink {
		pinkFilter(noise)
	}
	var np float64
	for _, v := range noise {
		np += v * v
	}
	scale := speechRMS / math.Pow(10, snr/20) / math.Sqrt(np/float64(len(noise)))
	for i, v := range noise {
		out[i] = float32(min(max(float64(out[i])+v*scale, -1), 1))
	}

	var buf bytes.Buffer
	if err := speech.WriteWAV(&buf, &speech.Audio{Rate: c.rate, Samples: out}, c.bits); err != nil {
		return result{}, err
	}
	if err := os.WriteFile(filepath.Join(c.out, filepath.FromSlash(j.rel)), buf.Bytes(), 0o644); err != nil {
		return result{}, err
	}
	return result{bytes: int64(buf.Len()), cropped: cropped}, nil
}

// trim drops the silence espeak-ng puts around a word: everything before the first and
// after the last sample above 1% of the peak, keeping 10 ms on each side.
func trim(x []float32, rate int) []float32 {
	peak := float32(0)
	for _, v := range x {
		peak = max(peak, float32(math.Abs(float64(v))))
	}
	if peak == 0 {
		return nil
	}
	thr := peak / 100
	first, last := -1, -1
	for i, v := range x {
		if v > thr || v < -thr {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	margin := rate / 100
	return x[max(first-margin, 0):min(last+margin+1, len(x))]
}

// pinkFilter turns white noise into pink (-3 dB per octave) noise in place, with Paul
// Kellet's economy filter (accurate to about 0.5 dB above a few tens of Hz).
func pinkFilter(x []float64) {
	var b0, b1, b2 float64
	for i, w := range x {
		b0 = 0.99765*b0 + w*0.0990460
		b1 = 0.96300*b1 + w*0.2965164
		b2 = 0.57000*b2 + w*1.0526913
		x[i] = b0 + b1 + b2 + w*0.1848
	}
}

func uniform(src *rand.PCG, lo, hi float64) float64 {
	return lo + (hi-lo)*float64(src.Uint64()>>11)/(1<<53)
}

// normal returns a standard normal deviate (Box-Muller, one of the pair).
func normal(src *rand.PCG) float64 {
	u1 := (float64(src.Uint64()>>11) + 0.5) / (1 << 53)
	u2 := float64(src.Uint64()>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

func readmeText(c config, version string, spks []speaker, files map[string]int, total int64) string {
	variants := make([]string, len(c.variants))
	for i, v := range c.variants {
		if v == "" {
			v = "(none)"
		}
		variants[i] = v
	}
	bySplit := map[string][]string{}
	for _, s := range spks {
		bySplit[s.split] = append(bySplit[s.split], s.id())
	}
	var b strings.Builder
	b.WriteString("# Synthetic spoken digits\n\n")
	if c.embedded {
		b.WriteString("The spoken-digit subset that speech.LoadEmbeddedDigits reads. ")
	}
	fmt.Fprintf(&b, "Made with %s by package speech's generator:\n\n", version)
	if c.embedded {
		b.WriteString("    go generate ./data/speech   # runs: go run ./internal/mkdigits -embedded -overwrite -out embedded\n\n")
	} else {
		b.WriteString("    scripts/make-spoken-digits.sh DIR   # or: go run ./data/speech/internal/mkdigits -out DIR\n\n")
	}
	fmt.Fprintf(&b, `Settings: seed %d, %d Hz %d-bit mono clips of %.2f s, %d rendition(s) of each digit per
speaker. Each rendition draws an espeak-ng speed of %d..%d wpm, pitch %d..%d and amplitude
%d..%d; the word is trimmed, resampled, given a speech peak of %g..%g dBFS, placed at a
random offset in the clip, and mixed with white or pink noise at %g..%g dB SNR. The same
flags and the same espeak-ng build give the same files.

A speaker is an espeak-ng voice plus variant: files are
<digit>/<voice>[+<variant>]_nohash_<n>.wav.

- Voices: %s.
- Variants: %s.

`, c.seed, c.rate, c.bits, c.clip, c.renditions, c.speedMin, c.speedMax, c.pitchMin, c.pitchMax,
		c.ampMin, c.ampMax, c.peakMin, c.peakMax, c.snrMin, c.snrMax,
		strings.Join(c.voices, ", "), strings.Join(variants, ", "))
	fmt.Fprintf(&b, `The split is by speaker: validation_list.txt and testing_list.txt hold every file of the
validation and test speakers, none of whom appears in training. (A variant's timbre can
recur with another voice's accent.) %d voice+variant combinations were not used.

| split | speakers | files |
|---|---|---|
`, len(bySplit[""]))
	for _, split := range []string{"train", "val", "test"} {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", split, len(bySplit[split]), files[split])
	}
	fmt.Fprintf(&b, "\n%d bytes of WAV files and lists.\n", total)
	if len(spks)-len(bySplit[""]) <= 64 {
		for _, split := range []string{"train", "val", "test"} {
			fmt.Fprintf(&b, "\n%s speakers: %s.\n", split, strings.Join(bySplit[split], ", "))
		}
	}
	b.WriteString("\nThe speech is synthetic: no recording of a person is included.\n")
	return b.String()
}
