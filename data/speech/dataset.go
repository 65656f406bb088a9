package speech

import (
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ofa-go/ofa/data"
)

// The split lists of the Speech Commands layout: paths relative to the root, one per line,
// selecting the validation and test files; every other file is for training.
const (
	ValidationList = "validation_list.txt"
	TestingList    = "testing_list.txt"
)

// maxListBytes bounds a split list (Speech Commands v0.02's is about 400 kB).
const maxListBytes = 64 << 20

// Set is a labelled set of log-mel spectrograms, each an image of 1 x Mels x Frames.
type Set struct {
	// Name identifies the set in messages, e.g. "speech_commands/train".
	Name string
	// N is the number of examples; Mels x Frames the size of each.
	N, Mels, Frames int
	// Features holds N*Mels*Frames log-mel values, example-major, then mel band, then frame.
	Features []float32
	// Labels holds N labels, indices into ClassNames.
	Labels []uint8
	// ClassNames names the classes in label order.
	ClassNames []string
	// Speakers holds the speaker of each example (see SpeakerID).
	Speakers []string
	// Files is empty or holds each example's path relative to the data set's root.
	Files []string
}

// Validate checks that sizes, counts, labels and feature values agree, naming the first
// problem. Errors wrap data.ErrDataset.
func (s *Set) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("speech: %s: %w: %s", s.Name, data.ErrDataset, fmt.Sprintf(format, args...))
	}
	switch {
	case s.N < 0:
		return bad("N is %d, want >= 0", s.N)
	case s.Mels < 1 || s.Frames < 1:
		return bad("spectrograms of %d mels x %d frames, want both >= 1", s.Mels, s.Frames)
	case len(s.ClassNames) < 1 || len(s.ClassNames) > 256:
		return bad("%d class names, want 1 to 256 (labels are bytes)", len(s.ClassNames))
	}
	size, ok := data.MulInts(s.N, s.Mels, s.Frames)
	if !ok {
		return bad("%d examples of %dx%d overflow int", s.N, s.Mels, s.Frames)
	}
	switch {
	case len(s.Labels) != s.N:
		return bad("%d labels for %d examples", len(s.Labels), s.N)
	case len(s.Speakers) != s.N:
		return bad("%d speakers for %d examples", len(s.Speakers), s.N)
	case len(s.Files) != 0 && len(s.Files) != s.N:
		return bad("%d file names for %d examples", len(s.Files), s.N)
	}
	if len(s.Features) != size {
		return bad("%d feature values, want %d examples x %d mels x %d frames = %d",
			len(s.Features), s.N, s.Mels, s.Frames, size)
	}
	for i, l := range s.Labels {
		if int(l) >= len(s.ClassNames) {
			return bad("label of example %d is %d, want < %d", i, l, len(s.ClassNames))
		}
	}
	for i, v := range s.Features {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return bad("feature %d of example %d is %v", i%s.FeatureSize(), i/s.FeatureSize(), v)
		}
	}
	return nil
}

// FeatureSize returns Mels*Frames, the number of values per example.
func (s *Set) FeatureSize() int { return s.Mels * s.Frames }

// Example returns the features of example i (Mels rows of Frames values), sharing the
// set's storage.
func (s *Set) Example(i int) []float32 {
	if i < 0 || i >= s.N {
		panic(fmt.Sprintf("speech: Example(%d) of %d examples", i, s.N))
	}
	per := s.FeatureSize()
	return s.Features[i*per : (i+1)*per : (i+1)*per]
}

// ClassCounts returns how many examples carry each label.
func (s *Set) ClassCounts() []int {
	counts := make([]int, len(s.ClassNames))
	for _, l := range s.Labels {
		if int(l) < len(counts) {
			counts[l]++
		}
	}
	return counts
}

// SpeakerList returns the distinct speakers of the set, sorted.
func (s *Set) SpeakerList() []string {
	out := slices.Clone(s.Speakers)
	slices.Sort(out)
	return slices.Compact(out)
}

// Stats are the mean and standard deviation of feature values, for LoaderConfig.
type Stats struct {
	Mean, Std float32
}

// Stats returns the mean and (population) standard deviation over every feature value of
// the set, computed in float64. Std is 0 for an empty or constant set, which a Loader
// rejects: use the training set's statistics for every split.
func (s *Set) Stats() Stats {
	if len(s.Features) == 0 {
		return Stats{}
	}
	var sum float64
	for _, v := range s.Features {
		sum += float64(v)
	}
	mean := sum / float64(len(s.Features))
	var ss float64
	for _, v := range s.Features {
		d := float64(v) - mean
		ss += d * d
	}
	return Stats{Mean: float32(mean), Std: float32(math.Sqrt(ss / float64(len(s.Features))))}
}

// SpeakerID returns the speaker of a Speech Commands file name: the part of the base name
// before "_nohash_" ("0a7c2a8d_nohash_1.wav" -> "0a7c2a8d"), else before the first "_",
// else the name without its extension.
func SpeakerID(file string) string {
	base := file[strings.LastIndexAny(file, `/\`)+1:] // either separator, whatever the OS
	if i := strings.Index(base, "_nohash_"); i >= 0 {
		return base[:i]
	}
	if i := strings.IndexByte(base, '_'); i >= 0 {
		return base[:i]
	}
	return strings.TrimSuffix(base, path.Ext(base))
}

// Split indices.
const (
	splitTrain = iota
	splitVal
	splitTest
)

// LoadCommands loads a data set laid out like Google's Speech Commands from dir: one
// folder per class holding WAV files, and the split lists ValidationList and TestingList.
// See LoadCommandsFS.
func LoadCommands(dir string, fe Frontend, classes []string) (train, val, test *Set, err error) {
	return LoadCommandsFS(os.DirFS(dir), dir, fe, classes)
}

// LoadCommandsFS loads a Speech Commands layout from fsys (os.DirFS, an embed.FS, ...);
// where names the root in messages and set names.
//
// classes lists the class folders in label order; nil means every folder at the root
// whose name does not start with "_" or "." (so _background_noise_ is left out), sorted.
// Folders not selected are ignored, and so are list entries in them. Every selected folder
// must exist and hold at least one .wav file; every list entry in a selected folder must
// name one of its files, and no file may be in both lists. The speaker of each file is
// SpeakerID of its name.
//
// Every clip is decoded once, resampled to fe.Rate if needed and turned into fe.LogMel
// features, by GOMAXPROCS workers; the examples of each split are in class order, then
// file-name order, whatever the scheduling. The first bad file in that order is reported,
// by name.
func LoadCommandsFS(fsys fs.FS, where string, fe Frontend, classes []string) (train, val, test *Set, err error) {
	if err := fe.Validate(); err != nil {
		return nil, nil, nil, err
	}
	classes, err = selectClasses(fsys, where, classes)
	if err != nil {
		return nil, nil, nil, err
	}
	selected := make(map[string]bool, len(classes))
	for _, c := range classes {
		selected[c] = true
	}
	listed := map[string]listEntry{}
	for _, l := range []struct {
		split int
		file  string
	}{{splitVal, ValidationList}, {splitTest, TestingList}} {
		if err := readList(fsys, where, l.file, l.split, selected, listed); err != nil {
			return nil, nil, nil, err
		}
	}

	var jobs []loadJob
	var counts [3]int
	for label, class := range classes {
		entries, err := fs.ReadDir(fsys, class)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("speech: %s: %w", filepath.Join(where, class), err)
		}
		found := 0
		for _, e := range entries {
			if e.IsDir() || !strings.EqualFold(path.Ext(e.Name()), ".wav") {
				continue
			}
			p := class + "/" + e.Name()
			split := splitTrain
			if le, ok := listed[p]; ok {
				split = le.split
				le.found = true
				listed[p] = le
			}
			jobs = append(jobs, loadJob{path: p, label: uint8(label), split: split, slot: counts[split]})
			counts[split]++
			found++
		}
		if found == 0 {
			return nil, nil, nil, fmt.Errorf("speech: %s: %w: class folder has no .wav files",
				filepath.Join(where, class), data.ErrDataset)
		}
	}
	if err := checkListedFound(where, listed); err != nil {
		return nil, nil, nil, err
	}

	var sets [3]*Set
	for split, name := range []string{"train", "val", "test"} {
		sets[split] = &Set{
			Name: where + "/" + name, N: counts[split], Mels: fe.Mels, Frames: fe.Frames,
			Features:   make([]float32, counts[split]*fe.FeatureSize()),
			Labels:     make([]uint8, counts[split]),
			ClassNames: slices.Clone(classes),
			Speakers:   make([]string, counts[split]),
			Files:      make([]string, counts[split]),
		}
	}
	for _, j := range jobs {
		s := sets[j.split]
		s.Labels[j.slot], s.Speakers[j.slot], s.Files[j.slot] = j.label, SpeakerID(j.path), j.path
	}
	if err := computeFeatures(fsys, where, fe, jobs, sets); err != nil {
		return nil, nil, nil, err
	}
	return sets[splitTrain], sets[splitVal], sets[splitTest], nil
}

// loadJob is one file to decode: its features go to example slot of split.
type loadJob struct {
	path        string
	label       uint8
	split, slot int
}

// listEntry records where a split list names a file.
type listEntry struct {
	split int
	list  string
	line  int
	found bool
}

// selectClasses returns the class folders in label order, checking them.
func selectClasses(fsys fs.FS, where string, classes []string) ([]string, error) {
	if classes == nil {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			return nil, fmt.Errorf("speech: %s: %w", where, err)
		}
		for _, e := range entries {
			if n := e.Name(); e.IsDir() && !strings.HasPrefix(n, "_") && !strings.HasPrefix(n, ".") {
				classes = append(classes, n)
			}
		}
		if len(classes) == 0 {
			return nil, fmt.Errorf("speech: %s: %w: no class folders", where, data.ErrDataset)
		}
	}
	if len(classes) < 1 || len(classes) > 256 {
		return nil, fmt.Errorf("speech: %s: %w: %d classes, want 1 to 256", where, data.ErrDataset, len(classes))
	}
	seen := map[string]bool{}
	for _, c := range classes {
		if c == "" || c == "." || strings.Contains(c, "/") || !fs.ValidPath(c) {
			return nil, fmt.Errorf("speech: %s: %w: class %q is not a folder name", where, data.ErrDataset, c)
		}
		if seen[c] {
			return nil, fmt.Errorf("speech: %s: %w: class %q listed twice", where, data.ErrDataset, c)
		}
		seen[c] = true
		fi, err := fs.Stat(fsys, c)
		if err != nil {
			return nil, fmt.Errorf("speech: %s: class %q: %w", where, c, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("speech: %s: %w: class %q is not a folder", where, data.ErrDataset, c)
		}
	}
	return slices.Clone(classes), nil
}

// readList reads one split list into listed, keeping the entries in selected classes.
func readList(fsys fs.FS, where, list string, split int, selected map[string]bool, listed map[string]listEntry) error {
	file := filepath.Join(where, list)
	f, err := fsys.Open(list)
	if err != nil {
		return fmt.Errorf("speech: %s: split list: %w", where, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxListBytes+1))
	if err != nil {
		return fmt.Errorf("speech: %s: %w", file, err)
	}
	if len(b) > maxListBytes {
		return fmt.Errorf("speech: %s: %w: more than %d bytes", file, data.ErrDataset, maxListBytes)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p := path.Clean(line)
		class, name, ok := strings.Cut(p, "/")
		if !ok || !fs.ValidPath(p) || strings.Contains(name, "/") {
			return fmt.Errorf("speech: %s line %d: %w: %q is not <class>/<file>", file, i+1, data.ErrDataset, line)
		}
		if !selected[class] {
			continue
		}
		if prev, ok := listed[p]; ok {
			return fmt.Errorf("speech: %s line %d: %w: %s is also on line %d of %s",
				file, i+1, data.ErrDataset, p, prev.line, prev.list)
		}
		listed[p] = listEntry{split: split, list: list, line: i + 1}
	}
	return nil
}

// checkListedFound reports the first (by list and line) list entry with no file.
func checkListedFound(where string, listed map[string]listEntry) error {
	var missing []string
	for p, le := range listed {
		if !le.found {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.SortFunc(missing, func(a, b string) int {
		ea, eb := listed[a], listed[b]
		if ea.list != eb.list {
			return strings.Compare(ea.list, eb.list)
		}
		return ea.line - eb.line
	})
	le := listed[missing[0]]
	return fmt.Errorf("speech: %s line %d: %w: %s is not a .wav file in %s (%d listed files missing)",
		filepath.Join(where, le.list), le.line, data.ErrDataset, missing[0], filepath.Join(where, path.Dir(missing[0])), len(missing))
}

// computeFeatures decodes every job's file into its slot, with GOMAXPROCS workers taking
// jobs in order. On failure it returns the error of the first failing job in job order:
// every job before it has been taken (and finishes) before any later one.
func computeFeatures(fsys fs.FS, where string, fe Frontend, jobs []loadJob, sets [3]*Set) error {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstBad = len(jobs)
		firstErr error
		wg       sync.WaitGroup
	)
	failed := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if i < firstBad {
			firstBad, firstErr = i, err
		}
	}
	stop := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return i > firstBad
	}
	size := fe.FeatureSize()
	workers := min(runtime.GOMAXPROCS(0), max(len(jobs), 1))
	for range workers {
		wg.Go(func() {
			plan := newMelPlan(fe)
			var res *resampler
			var buf []float32
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || stop(i) {
					return
				}
				j := jobs[i]
				a, err := readWAVFile(fsys, where, j.path)
				if err != nil {
					failed(i, err)
					continue
				}
				x := a.Samples
				if a.Rate != fe.Rate {
					if res == nil || res.from != a.Rate {
						res = newResampler(a.Rate, fe.Rate)
					}
					buf = res.resample(x, buf)
					x = buf
				}
				s := sets[j.split]
				plan.logMel(x, s.Features[j.slot*size:(j.slot+1)*size])
			}
		})
	}
	wg.Wait()
	return firstErr
}

// readWAVFile opens and decodes one file of fsys.
func readWAVFile(fsys fs.FS, where, name string) (*Audio, error) {
	full := filepath.Join(where, name)
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("speech: %s: %w", full, err)
	}
	a, err := ReadWAV(f, full, Limits{})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("speech: %s: %w", full, cerr)
	}
	return a, err
}
