package modelfile

import (
	"encoding/json"
	"fmt"
	"strings"
)

// KeyData holds the DataRecord JSON: the dataset the model was trained on. Files written
// before it existed lack it; commands then fall back to the data section of the stored
// configuration (Provenance.Config), or to the defaults when that is missing too.
const KeyData = "data"

// Kinds of data source (DataRecord.Kind), named as the data package's loaders name them.
const (
	DataFashionMNISTEmbedded = "fashion-mnist-embedded"
	DataFashionMNISTDebian   = "fashion-mnist-debian"
	DataIDX                  = "idx"
	DataSpeechEmbedded       = "speech-embedded"
	DataSpeechCommands       = "speech-commands"
)

// Sources of validation examples (DataRecord.ValFrom).
const (
	ValSplit   = "split"
	ValHeldOut = "held-out"
)

// DataRecord describes the dataset a model's last training step used (the supernet's
// training run, an extraction's calibration and search, a fine-tune), so that commands
// reading the model default to the same data and can tell when they are given other data.
// Expansion trains nothing and keeps its input's record.
type DataRecord struct {
	// Task is arch.TaskImage or arch.TaskSpeech.
	Task string `json:"task"`
	// Kind is the source kind, one of the Data* constants.
	Kind string `json:"kind"`
	// Root is the directory read, as given (empty for embedded data).
	Root string `json:"root,omitempty"`
	// Description is the human-readable source line the training run printed.
	Description string `json:"description"`
	// Fingerprint is "sha256:<hex>" over every split's examples and labels exactly as the
	// model saw them (after limits and the validation hold-out), in order: equal
	// fingerprints mean the same data, whatever the path.
	Fingerprint string `json:"fingerprint"`
	// Train, Val and Test are the split sizes.
	Train int `json:"train"`
	Val   int `json:"val"`
	Test  int `json:"test"`
	// ValFrom says where validation examples come from: ValSplit (the data's own
	// validation split) or ValHeldOut (the tail of the training split).
	ValFrom string `json:"val_from"`
	// Classes names the classes in label order (labels when the data has no names).
	Classes []string `json:"classes"`
	// Channels, Height and Width are the input's shape.
	Channels int `json:"channels"`
	Height   int `json:"height"`
	Width    int `json:"width"`
	// Mean and Std are the normalisation per channel (one value when every channel shares
	// it), as in Preprocess.
	Mean []float32 `json:"mean"`
	Std  []float32 `json:"std"`
	// Augment is the training augmentation as configured (JSON of the data section's
	// augmentation settings; empty when the task has none).
	Augment json.RawMessage `json:"augment,omitempty"`
}

// Validate checks that the record describes a dataset: a kind, a fingerprint, a positive
// shape and class count, non-negative splits.
func (r *DataRecord) Validate() error {
	switch {
	case r.Task == "" || r.Kind == "":
		return fmt.Errorf("task %q, kind %q: want both set", r.Task, r.Kind)
	case !strings.HasPrefix(r.Fingerprint, "sha256:"):
		return fmt.Errorf("fingerprint %q: want sha256:<hex>", r.Fingerprint)
	case r.Train < 0 || r.Val < 0 || r.Test < 0:
		return fmt.Errorf("splits %d/%d/%d: want sizes >= 0", r.Train, r.Val, r.Test)
	case r.Channels < 1 || r.Height < 1 || r.Width < 1 || len(r.Classes) < 1:
		return fmt.Errorf("input %dx%dx%d with %d classes: want every size >= 1", r.Channels, r.Height, r.Width, len(r.Classes))
	}
	return nil
}

// Same says whether two records name the same data: the fingerprints (which cover every
// split as the model saw it) are equal.
func (r *DataRecord) Same(o *DataRecord) bool {
	return r != nil && o != nil && r.Fingerprint == o.Fingerprint
}

// ShortFingerprint is the fingerprint's first 12 hex digits, for log lines.
func (r *DataRecord) ShortFingerprint() string {
	f := strings.TrimPrefix(r.Fingerprint, "sha256:")
	return f[:min(12, len(f))]
}

// String is one line: the source, its splits and its fingerprint.
func (r *DataRecord) String() string {
	return fmt.Sprintf("%s (splits %d train / %d validation / %d test, input %dx%dx%d, %d classes, fingerprint %s)",
		r.Description, r.Train, r.Val, r.Test, r.Channels, r.Height, r.Width, len(r.Classes), r.ShortFingerprint())
}

// parseDataRecord decodes metadata KeyData.
func parseDataRecord(s string) (*DataRecord, error) {
	var r DataRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %v", ErrNotModel, KeyData, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %v", ErrNotModel, KeyData, err)
	}
	return &r, nil
}
