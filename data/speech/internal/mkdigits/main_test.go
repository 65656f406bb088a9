package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/data/speech"
)

func TestEmbeddedPreset(t *testing.T) {
	c, err := parseFlags([]string{"-embedded", "-out", "x", "-val-speakers", "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.rate != 8000 || c.bits != 8 || c.renditions != 1 || c.trainSpk != 28 || c.valSpk != 2 || c.tesSpk != 4 {
		t.Errorf("preset: %+v (an explicit -val-speakers must win)", c)
	}
	if _, err := parseFlags([]string{"-bits", "24", "-out", "x"}); err == nil {
		t.Error("-bits 24 accepted")
	}
	if _, err := parseFlags(nil); err == nil {
		t.Error("missing -out accepted")
	}
}

// TestSplitSpeakers: the split is a deterministic function of the seed, its parts are
// disjoint and sized as asked.
func TestSplitSpeakers(t *testing.T) {
	c, err := parseFlags([]string{"-out", "x", "-seed", "5"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := splitSpeakers(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := splitSpeakers(c)
	if !reflect.DeepEqual(a, b) {
		t.Error("the split is not deterministic")
	}
	count := map[string]int{}
	seen := map[string]bool{}
	for _, s := range a {
		count[s.split]++
		if seen[s.id()] {
			t.Errorf("speaker %s twice", s.id())
		}
		seen[s.id()] = true
	}
	n := len(c.voices) * len(c.variants)
	if count["val"] != n/10 || count["test"] != n/10 || count["train"] != n-2*(n/10) {
		t.Errorf("split %v of %d speakers", count, n)
	}
	c.seed = 6
	other, _ := splitSpeakers(c)
	if reflect.DeepEqual(a, other) {
		t.Error("seeds 5 and 6 give the same split")
	}
}

func TestTrim(t *testing.T) {
	x := make([]float32, 1000)
	for i := 400; i < 500; i++ {
		x[i] = 0.5
	}
	x[10] = 0.001 // below 1% of the peak
	got := trim(x, 1000)
	if len(got) != 100+2*10 {
		t.Errorf("trimmed to %d samples, want 120", len(got))
	}
	if trim(make([]float32, 10), 1000) != nil {
		t.Error("silence not trimmed to nothing")
	}
}

// TestGenerate runs the generator on a few speakers with espeak-ng, if installed, and
// loads the result.
func TestGenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs espeak-ng")
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed")
	}
	out := t.TempDir()
	c, err := parseFlags([]string{"-out", out, "-voices", "en-us", "-variants", "none,m3,f2",
		"-renditions", "1", "-val-speakers", "1", "-test-speakers", "1", "-rate", "8000", "-bits", "8"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(c, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(c, io.Discard); err == nil || !strings.Contains(err.Error(), "-overwrite") {
		t.Errorf("second run into the same folder: err = %v, want a request for -overwrite", err)
	}
	if _, err := os.Stat(filepath.Join(out, "README.md")); err != nil {
		t.Error(err)
	}
	train, val, test, err := speech.LoadCommands(out, speech.DefaultFrontend(), speech.DigitClasses())
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 10 || val.N != 10 || test.N != 10 {
		t.Errorf("%d/%d/%d clips, want 10/10/10", train.N, val.N, test.N)
	}
	if len(train.SpeakerList()) != 1 || val.SpeakerList()[0] == test.SpeakerList()[0] {
		t.Errorf("speakers %v / %v / %v", train.SpeakerList(), val.SpeakerList(), test.SpeakerList())
	}
}
