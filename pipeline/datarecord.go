package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"

	"github.com/go-viper/mapstructure/v2"
	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/modelfile"
)

// Record is the dataset's record, stored in every model trained on it (a copy).
func (d *Dataset) Record() *modelfile.DataRecord {
	if d.record == nil {
		return nil
	}
	r := *d.record
	r.Mean = append([]float32(nil), d.record.Mean...)
	r.Std = append([]float32(nil), d.record.Std...)
	r.Augment = append(json.RawMessage(nil), d.record.Augment...)
	r.Classes = append([]string(nil), d.record.Classes...)
	return &r
}

// DataLine is the first line of a command that reads model m (named path) with this
// dataset: it names the data and says whether it is the data the model was trained on,
// naming both when it is not, and what was used when the model records no data.
// fromModel says that the data section came from the model's stored configuration (no
// configuration file, no flag or variable naming a source), as configfile.ForModel reports.
func (d *Dataset) DataLine(path string, m *modelfile.Model, fromModel bool) string {
	here := d.Record()
	switch {
	case here == nil:
		return "data: " + d.Source
	case m.Data == nil:
		return fmt.Sprintf("data: %s (%s records no dataset: it was written before model files recorded their data; the configuration line says where this data section comes from)",
			here, path)
	case m.Data.Same(here):
		return fmt.Sprintf("data: %s, the data %s was trained on", here, path)
	case fromModel:
		return fmt.Sprintf("data: %s; WARNING: NOT the data %s was trained on (%s), though its stored data section was used: the files changed",
			here, path, m.Data)
	}
	return fmt.Sprintf("data: %s; NOT the data %s was trained on (%s), as asked", here, path, m.Data)
}

// fingerprint accumulates the examples and labels of a dataset's splits, each preceded by
// its name and shape, so that equal fingerprints mean equal data in the same order.
type fingerprint struct{ h hash.Hash }

func newFingerprint() *fingerprint { return &fingerprint{sha256.New()} }

func (f *fingerprint) header(name string, dims ...int) {
	fmt.Fprintf(f.h, "%s", name)
	for _, d := range dims {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(d))
		f.h.Write(b[:])
	}
}

func (f *fingerprint) images(name string, s *data.Images) {
	f.header(name, s.N, s.Channels, s.Height, s.Width)
	f.h.Write(s.Pixels)
	f.h.Write(s.Labels)
}

func (f *fingerprint) speech(name string, s *speech.Set) {
	f.header(name, s.N, s.Mels, s.Frames)
	buf := make([]byte, 4*4096)
	for i := 0; i < len(s.Features); i += 4096 {
		chunk := s.Features[i:min(i+4096, len(s.Features))]
		for j, v := range chunk {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		f.h.Write(buf[:4*len(chunk)])
	}
	f.h.Write(s.Labels)
}

func (f *fingerprint) sum() string { return "sha256:" + hex.EncodeToString(f.h.Sum(nil)) }

// augmentJSON is the augmentation settings under their configuration keys.
func augmentJSON(aug any) json.RawMessage {
	var m map[string]any
	if err := mapstructure.Decode(aug, &m); err != nil {
		panic("pipeline: augmentation settings do not decode: " + err.Error())
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic("pipeline: augmentation settings do not marshal: " + err.Error())
	}
	return b
}

// imageRecord describes an image dataset of the given kind read from root (described in
// words by desc) and split into train, val and test.
func imageRecord(kind, root, desc string, train, val, test *data.Images, pre modelfile.Preprocess, aug data.Augment) *modelfile.DataRecord {
	f := newFingerprint()
	f.images("train", train)
	f.images("val", val)
	f.images("test", test)
	r := &modelfile.DataRecord{Task: arch.TaskImage, Kind: kind, Root: root, Description: desc, Fingerprint: f.sum(),
		Train: train.N, Val: val.N, Test: test.N, ValFrom: modelfile.ValHeldOut, Channels: train.Channels, Height: train.Height,
		Width: train.Width, Classes: classNames(train.ClassNames, train.Classes), Augment: augmentJSON(aug)}
	r.Mean, r.Std = pre.PerChannel(train.Channels)
	return r
}

// speechRecord describes a spectrogram dataset read from dir ("" for the embedded digits).
func speechRecord(dir, desc string, train, val, test *speech.Set, pre modelfile.Preprocess, aug speech.Augment) *modelfile.DataRecord {
	f := newFingerprint()
	f.speech("train", train)
	f.speech("val", val)
	f.speech("test", test)
	kind := modelfile.DataSpeechCommands
	if dir == "" {
		kind = modelfile.DataSpeechEmbedded
	}
	return &modelfile.DataRecord{Task: arch.TaskSpeech, Kind: kind, Root: dir, Description: desc, Fingerprint: f.sum(),
		Train: train.N, Val: val.N, Test: test.N, ValFrom: modelfile.ValSplit, Channels: 1, Height: train.Mels, Width: train.Frames,
		Classes: classNames(train.ClassNames, len(train.ClassNames)), Mean: []float32{pre.Mean}, Std: []float32{pre.Std}, Augment: augmentJSON(aug)}
}

// classNames is names, or the labels "0", "1", ... when the data names none.
func classNames(names []string, n int) []string {
	if len(names) == n {
		return append([]string(nil), names...)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}
