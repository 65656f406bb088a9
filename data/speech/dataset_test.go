package speech

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/data"
)

func TestSpeakerID(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"0a7c2a8d_nohash_0.wav", "0a7c2a8d"},
		{"right/0a7c2a8d_nohash_12.wav", "0a7c2a8d"},
		{"zero/en-gb-x-rp+klatt2_nohash_0.wav", "en-gb-x-rp+klatt2"},
		{"a_b_nohash_1.wav", "a_b"},
		{"speaker7_take3.wav", "speaker7"},
		{"plain.wav", "plain"},
		{`dir\sub\x_nohash_0.wav`, "x"},
	} {
		if got := SpeakerID(tc.file); got != tc.want {
			t.Errorf("SpeakerID(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
}

// writeClip writes a tone of hz Hz (0: silence) as a WAV file of rate and bits.
func writeClip(t *testing.T, path string, rate, bits int, hz float64) {
	t.Helper()
	var buf bytes.Buffer
	x := make([]float32, rate/2)
	if hz > 0 {
		x = tone(rate/2, rate, hz, 0.3)
	}
	if err := WriteWAV(&buf, &Audio{Rate: rate, Samples: x}, bits); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// commandsTree builds a tiny Speech Commands layout and returns its root.
func commandsTree(t *testing.T) string {
	dir := t.TempDir()
	for _, c := range []struct {
		file       string
		rate, bits int
		hz         float64
	}{
		{"yes/aa_nohash_0.wav", 16000, 16, 300},
		{"yes/aa_nohash_1.wav", 16000, 16, 400},
		{"yes/bb_nohash_0.wav", 16000, 16, 500},
		{"yes/cc_take1.wav", 16000, 16, 600},
		{"no/aa_nohash_0.wav", 8000, 8, 1000},
		{"no/dd_nohash_0.wav", 22050, 16, 2000},
		{"no/ee.wav", 16000, 16, 3000},
		{"up/ff_nohash_0.wav", 16000, 16, 700},
		{"_background_noise_/white_noise.wav", 16000, 16, 0},
	} {
		writeClip(t, filepath.Join(dir, c.file), c.rate, c.bits, c.hz)
	}
	writeFile(t, filepath.Join(dir, "no", "README.txt"), "not a clip")
	writeFile(t, filepath.Join(dir, ValidationList), "yes/bb_nohash_0.wav\nup/ff_nohash_0.wav\n")
	writeFile(t, filepath.Join(dir, TestingList), "\nno/dd_nohash_0.wav\r\n")
	writeFile(t, filepath.Join(dir, "LICENSE"), "files at the root are ignored")
	return dir
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// small is a front end that keeps the tests quick: 20 mel bands, 50 frames of 10 ms.
func small() Frontend {
	f := DefaultFrontend()
	f.Mels, f.Frames = 20, 50
	return f
}

func TestLoadCommands(t *testing.T) {
	dir := commandsTree(t)
	fe := small()
	type want struct {
		files    []string
		labels   []uint8
		speakers []string
	}
	for _, tc := range []struct {
		name             string
		classes          []string
		train, val, test want
	}{
		{"all classes", nil,
			want{[]string{"no/aa_nohash_0.wav", "no/ee.wav", "yes/aa_nohash_0.wav", "yes/aa_nohash_1.wav", "yes/cc_take1.wav"},
				[]uint8{0, 0, 2, 2, 2}, []string{"aa", "ee", "aa", "aa", "cc"}},
			want{[]string{"up/ff_nohash_0.wav", "yes/bb_nohash_0.wav"}, []uint8{1, 2}, []string{"ff", "bb"}},
			want{[]string{"no/dd_nohash_0.wav"}, []uint8{0}, []string{"dd"}}},
		{"chosen classes in chosen order", []string{"yes", "no"},
			want{[]string{"yes/aa_nohash_0.wav", "yes/aa_nohash_1.wav", "yes/cc_take1.wav", "no/aa_nohash_0.wav", "no/ee.wav"},
				[]uint8{0, 0, 0, 1, 1}, []string{"aa", "aa", "cc", "aa", "ee"}},
			want{[]string{"yes/bb_nohash_0.wav"}, []uint8{0}, []string{"bb"}},
			want{[]string{"no/dd_nohash_0.wav"}, []uint8{1}, []string{"dd"}}},
	} {
		train, val, test, err := LoadCommands(dir, fe, tc.classes)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, s := range []struct {
			set  *Set
			want want
		}{{train, tc.train}, {val, tc.val}, {test, tc.test}} {
			if err := s.set.Validate(); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if !reflect.DeepEqual(s.set.Files, s.want.files) || !bytes.Equal(s.set.Labels, s.want.labels) ||
				!reflect.DeepEqual(s.set.Speakers, s.want.speakers) || s.set.N != len(s.want.files) {
				t.Errorf("%s: %s holds %v labels %v speakers %v; want %v %v %v", tc.name, s.set.Name,
					s.set.Files, s.set.Labels, s.set.Speakers, s.want.files, s.want.labels, s.want.speakers)
			}
		}
		if tc.classes == nil && !reflect.DeepEqual(train.ClassNames, []string{"no", "up", "yes"}) {
			t.Errorf("%s: classes %v", tc.name, train.ClassNames)
		}
		// Each example's features are LogMel of its file, resampled to 16 kHz.
		for i, file := range train.Files {
			a, err := readWAVFile(os.DirFS(dir), dir, file)
			if err != nil {
				t.Fatal(err)
			}
			x := a.Samples
			if a.Rate != fe.Rate {
				x = Resample(x, a.Rate, fe.Rate)
			}
			if !slices.Equal(train.Example(i), fe.LogMel(x)) {
				t.Errorf("%s: features of %s differ from LogMel of the file", tc.name, file)
			}
		}
	}
}

// TestLoadCommandsDeterministic: the result does not depend on the number of workers.
func TestLoadCommandsDeterministic(t *testing.T) {
	dir := commandsTree(t)
	var first [3]*Set
	for _, procs := range []int{1, 2, 8} {
		old := runtime.GOMAXPROCS(procs)
		train, val, test, err := LoadCommands(dir, small(), nil)
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		if first[0] == nil {
			first = [3]*Set{train, val, test}
			continue
		}
		if !reflect.DeepEqual(first, [3]*Set{train, val, test}) {
			t.Errorf("GOMAXPROCS %d: sets differ from GOMAXPROCS 1", procs)
		}
	}
}

func TestLoadCommandsErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(t *testing.T, dir string)
		classes []string
		is      error
		want    string
	}{
		{"missing class", nil, []string{"yes", "maybe"}, fs.ErrNotExist, `class "maybe"`},
		{"class twice", nil, []string{"yes", "yes"}, data.ErrDataset, `class "yes" listed twice`},
		{"class path", nil, []string{"yes/../no"}, data.ErrDataset, `class "yes/../no" is not a folder name`},
		{"class is a file", nil, []string{"LICENSE"}, data.ErrDataset, `class "LICENSE" is not a folder`},
		{"corrupt clip", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "yes", "zz_nohash_0.wav"), "RIFF\x04\x00\x00\x00WAVE")
		}, nil, ErrBadWAV, filepath.Join("yes", "zz_nohash_0.wav") + `: no "fmt " or "data" chunk`},
		{"first bad clip reported", func(t *testing.T, dir string) {
			for _, f := range []string{"no/zz_nohash_1.wav", "yes/zz_nohash_0.wav", "no/zz_nohash_0.wav"} {
				writeFile(t, filepath.Join(dir, f), "RIFX")
			}
		}, nil, ErrBadWAV, filepath.Join("no", "zz_nohash_0.wav") + ": truncated header"},
		{"listed file missing", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, TestingList), "no/dd_nohash_0.wav\nyes/gone_nohash_0.wav\n")
		}, nil, data.ErrDataset, TestingList + " line 2: invalid dataset: yes/gone_nohash_0.wav is not a .wav file in"},
		{"file in both lists", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, TestingList), "yes/bb_nohash_0.wav\n")
		}, nil, data.ErrDataset, "line 1: invalid dataset: yes/bb_nohash_0.wav is also on line 1 of " + ValidationList},
		{"list escapes the root", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ValidationList), "../yes/aa_nohash_0.wav\n")
		}, nil, data.ErrDataset, ValidationList + ` line 1: invalid dataset: "../yes/aa_nohash_0.wav" is not <class>/<file>`},
		{"list without a class", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ValidationList), "aa_nohash_0.wav\n")
		}, nil, data.ErrDataset, "is not <class>/<file>"},
		{"no list", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ValidationList))
		}, nil, fs.ErrNotExist, "split list"},
		{"empty class", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "down"), 0o755)
		}, nil, data.ErrDataset, filepath.Join("down") + ": invalid dataset: class folder has no .wav files"},
		{"bad front end", func(t *testing.T, dir string) {}, []string{"bad front end"}, ErrFrontend, "Mels 0"},
	} {
		dir := commandsTree(t)
		if tc.edit != nil {
			tc.edit(t, dir)
		}
		fe := small()
		classes := tc.classes
		if tc.name == "bad front end" {
			fe.Mels, classes = 0, nil
		}
		_, _, _, err := LoadCommands(dir, fe, classes)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %v naming %q", tc.name, err, tc.is, tc.want)
		}
	}
}

func TestSetValidate(t *testing.T) {
	good := func() *Set {
		return &Set{Name: "s", N: 2, Mels: 2, Frames: 3, Features: make([]float32, 12), Labels: []uint8{0, 1},
			ClassNames: []string{"a", "b"}, Speakers: []string{"x", "y"}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Set)
		want string
	}{
		{"negative N", func(s *Set) { s.N = -1 }, "N is -1"},
		{"zero mels", func(s *Set) { s.Mels = 0 }, "0 mels x 3 frames"},
		{"no classes", func(s *Set) { s.ClassNames = nil }, "0 class names"},
		{"labels", func(s *Set) { s.Labels = s.Labels[:1] }, "1 labels for 2 examples"},
		{"speakers", func(s *Set) { s.Speakers = nil }, "0 speakers for 2 examples"},
		{"files", func(s *Set) { s.Files = []string{"a"} }, "1 file names for 2 examples"},
		{"features", func(s *Set) { s.Features = s.Features[:11] }, "11 feature values, want 2 examples x 2 mels x 3 frames = 12"},
		{"label range", func(s *Set) { s.Labels[1] = 2 }, "label of example 1 is 2, want < 2"},
		{"NaN", func(s *Set) { s.Features[7] = float32(math.NaN()) }, "feature 1 of example 1 is NaN"},
		{"overflow", func(s *Set) { s.N, s.Mels = math.MaxInt/2, 4 }, "overflow"},
	} {
		s := good()
		tc.edit(s)
		err := s.Validate()
		if !errors.Is(err, data.ErrDataset) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrDataset naming %q", tc.name, err, tc.want)
		}
	}
}

func TestSetStats(t *testing.T) {
	s := &Set{Features: []float32{1, 2, 3, 4}}
	got := s.Stats()
	if math.Abs(float64(got.Mean)-2.5) > 1e-6 || math.Abs(float64(got.Std)-math.Sqrt(1.25)) > 1e-6 {
		t.Errorf("Stats = %+v, want mean 2.5, std %v", got, math.Sqrt(1.25))
	}
	if (&Set{}).Stats() != (Stats{}) {
		t.Error("Stats of an empty set is not zero")
	}
}
