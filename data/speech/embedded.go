package speech

import (
	"embed"
	"fmt"
	"io/fs"
)

// embeddedFS holds a small synthetic spoken-digit set in the Speech Commands layout:
// <digit>/<speaker>_nohash_<n>.wav (8 kHz, 8-bit mono, one second each) with
// validation_list.txt and testing_list.txt, whose speakers never appear in training. It was
// made with espeak-ng by `go run ./internal/mkdigits -embedded` (see embedded/README.md);
// the whole folder is embedded (README included) so that the generator still builds when
// the data files are missing.
//
//go:embed embedded
var embeddedFS embed.FS

// DigitClasses returns the class names of the spoken-digit sets in label order, so that
// the label is the digit's value: "zero", "one", ..., "nine". The slice is fresh on every
// call.
func DigitClasses() []string {
	return []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
}

// LoadEmbeddedDigits returns the spoken-digit set compiled into the binary, through the
// same code path as LoadCommands: 280 training clips (28 synthetic speakers, one rendition
// of each digit each), 40 validation and 40 test clips (4 other speakers each). The clips
// are 8 kHz and are resampled to fe.Rate, so bands above 4 kHz carry nothing but resampling
// residue. It needs no files at run time, so tests and first runs work anywhere; use a
// set made by scripts/make-spoken-digits.sh, or Speech Commands, for real training.
func LoadEmbeddedDigits(fe Frontend) (train, val, test *Set, err error) {
	sub, err := fs.Sub(embeddedFS, "embedded")
	if err != nil {
		panic("speech: embedded files: " + err.Error()) // a constant, valid path
	}
	train, val, test, err = LoadCommandsFS(sub, "embedded", fe, DigitClasses())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("embedded spoken digits: %w", err)
	}
	train.Name, val.Name, test.Name = "spoken-digits-embedded/train", "spoken-digits-embedded/val", "spoken-digits-embedded/test"
	return train, val, test, nil
}
