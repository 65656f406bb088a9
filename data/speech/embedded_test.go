package speech

import (
	"reflect"
	"slices"
	"testing"
)

// TestEmbeddedDigits loads the embedded set through LoadCommandsFS (8-bit 8 kHz clips,
// resampled to 16 kHz) and checks its counts and its speaker-independent split.
func TestEmbeddedDigits(t *testing.T) {
	train, val, test, err := LoadEmbeddedDigits(DefaultFrontend())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set              *Set
		n, perClass, spk int
	}{
		{train, 280, 28, 28},
		{val, 40, 4, 4},
		{test, 40, 4, 4},
	} {
		s := tc.set
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if s.N != tc.n || s.Mels != 40 || s.Frames != 100 || !reflect.DeepEqual(s.ClassNames, DigitClasses()) {
			t.Errorf("%s: %d examples of %dx%d, classes %v; want %d of 40x100, the digits", s.Name, s.N, s.Mels, s.Frames,
				s.ClassNames, tc.n)
		}
		for label, c := range s.ClassCounts() {
			if c != tc.perClass {
				t.Errorf("%s: %d examples of %q, want %d", s.Name, c, s.ClassNames[label], tc.perClass)
			}
		}
		if got := len(s.SpeakerList()); got != tc.spk {
			t.Errorf("%s: %d speakers, want %d", s.Name, got, tc.spk)
		}
		// Every clip holds sound (noise at least) below 4 kHz: nothing is all silence.
		for i := range s.N {
			if slices.Max(s.Example(i)) <= DefaultFrontend().Silence() {
				t.Errorf("%s: example %d (%s) is silent", s.Name, i, s.Files[i])
			}
		}
	}
	seen := map[string]string{}
	for _, s := range []*Set{train, val, test} {
		for _, spk := range s.SpeakerList() {
			if other, ok := seen[spk]; ok {
				t.Errorf("speaker %s is in both %s and %s", spk, other, s.Name)
			}
			seen[spk] = s.Name
		}
	}
	st := train.Stats()
	if !(st.Std > 0.5 && st.Mean > DefaultFrontend().Silence()) {
		t.Errorf("train stats %+v: want some spread above the silence floor", st)
	}
}
