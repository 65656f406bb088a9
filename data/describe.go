package data

import (
	"fmt"
	"strings"
)

// Kinds of dataset source, for Description.Kind.
const (
	// KindImageFolder: ROOT/<split>/<class>/<image> (torchvision's ImageFolder layout).
	KindImageFolder = "image-folder"
	// KindParquet: Hugging Face Parquet files with an image struct and a label column.
	KindParquet = "parquet"
	// KindIDX: a directory of IDX file pairs (the MNIST family's format).
	KindIDX = "idx"
	// KindFashionMNISTDebian: the Debian package dataset-fashion-mnist.
	KindFashionMNISTDebian = "fashion-mnist-debian"
	// KindFashionMNISTEmbedded: the Fashion-MNIST subset compiled into the binary.
	KindFashionMNISTEmbedded = "fashion-mnist-embedded"
	// KindSpeechCommands and KindSpeechEmbedded: the speech side's sources.
	KindSpeechCommands = "speech-commands"
	KindSpeechEmbedded = "speech-embedded"
)

// Description says which data a model saw, in a form a model file can record and a later
// command can compare: where it came from, a fingerprint of its content, the size of each
// split and how raw files became model inputs. Every dataset loader fills one.
type Description struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Root is the directory or file the data was read from, as given (empty if embedded).
	Root string `json:"root,omitempty"`
	// Fingerprint is a hex SHA-256 over what identifies the data: for files on disk their
	// relative paths, sizes and modification times (not their bytes, so it is cheap), for
	// embedded data its content. Two loads of unchanged files give the same fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Train, Val and Test are the numbers of examples in each split as loaded (after any
	// limits and hold-out).
	Train int `json:"train"`
	Val   int `json:"val"`
	Test  int `json:"test"`
	// ValFrom says where validation examples come from: "split" (the data's own validation
	// split) or "held-out" (a seeded, stratified part of train, or its tail for IDX).
	ValFrom string `json:"val_from"`
	// NoTest is true when the data has no test split; reports then say so.
	NoTest bool `json:"no_test,omitempty"`
	// Classes names the classes in label order.
	Classes []string `json:"classes"`
	// Channels, Height and Width are the model input's shape.
	Channels int `json:"channels"`
	Height   int `json:"height"`
	Width    int `json:"width"`
	// SizesSeen summarises the raw image sizes found (e.g. "28x28" or "16x16..512x384").
	SizesSeen string `json:"sizes_seen,omitempty"`
	// Resize names how raw images became Height x Width (ResizeShorterCentreCrop), empty
	// when no image needed resizing.
	Resize string `json:"resize,omitempty"`
	// Mean and Std are the per-channel normalisation: x = (pixel/255 - Mean[c]) / Std[c].
	Mean []float32 `json:"mean"`
	Std  []float32 `json:"std"`
	// Skipped lists files refused as bad data and skipped (data.skip_bad), with the reason.
	Skipped []string `json:"skipped,omitempty"`
}

// ResizeShorterCentreCrop is Description.Resize for the image folders' resize: scale so
// that the shorter side equals the target (bilinear, golang.org/x/image/draw.BiLinear),
// then crop the centre (torchvision's Resize(size) + CenterCrop(size)).
const ResizeShorterCentreCrop = "shorter-side-bilinear-centre-crop"

// String is the one line a command prints first, e.g. "image folders in photos: 5 classes,
// 4000 train / 500 validation / 1000 test images, sizes 32x32..640x480, 3 channels -> 3x32x32".
func (d Description) String() string {
	var b strings.Builder
	switch d.Kind {
	case KindImageFolder:
		fmt.Fprintf(&b, "image folders in %s", d.Root)
	case KindParquet:
		fmt.Fprintf(&b, "Parquet files in %s", d.Root)
	case KindIDX:
		fmt.Fprintf(&b, "IDX files in %s", d.Root)
	case KindFashionMNISTDebian:
		fmt.Fprintf(&b, "Fashion-MNIST from %s (Debian package dataset-fashion-mnist)", d.Root)
	case KindFashionMNISTEmbedded:
		b.WriteString("Fashion-MNIST, embedded subset")
	default:
		fmt.Fprintf(&b, "%s %s", d.Kind, d.Root)
	}
	val := "validation"
	if d.ValFrom == "held-out" {
		val = "validation held out of train"
	}
	fmt.Fprintf(&b, ": %d classes, %d train / %d %s / %d test", len(d.Classes), d.Train, d.Val, val, d.Test)
	if d.NoTest {
		b.WriteString(" (NO TEST SPLIT: the test columns are scored on the validation split)")
	}
	if d.SizesSeen != "" {
		fmt.Fprintf(&b, ", sizes %s", d.SizesSeen)
	}
	fmt.Fprintf(&b, ", input %dx%dx%d", d.Channels, d.Height, d.Width)
	if len(d.Skipped) > 0 {
		fmt.Fprintf(&b, ", %d bad files skipped", len(d.Skipped))
	}
	return b.String()
}
