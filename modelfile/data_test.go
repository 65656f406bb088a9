package modelfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testRecord is a record that fits testModel's architecture.
func testRecord(m *Model) *DataRecord {
	a := m.Arch
	classes := make([]string, a.Classes)
	for i := range classes {
		classes[i] = fmt.Sprint(i)
	}
	return &DataRecord{Task: a.Task, Kind: DataIDX, Root: "some/dir", Description: "IDX images from some/dir",
		Fingerprint: "sha256:0123456789abcdef", Train: 50, Val: 5, Test: 20, ValFrom: ValHeldOut, Channels: a.InChannels, Height: a.InHeight,
		Width: a.InWidth, Classes: classes, Mean: []float32{m.Preprocess.Mean}, Std: []float32{m.Preprocess.Std},
		Augment: json.RawMessage(`{"crop_pad":2,"hflip":true}`)}
}

// TestDataRecordRoundTrip: the data record survives a save and a load unchanged, in model
// and resume files alike, and files without one load with a nil record.
func TestDataRecordRoundTrip(t *testing.T) {
	m := testModel(t)
	m.Data = testRecord(m)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Data, m.Data) {
		t.Fatalf("record changed:\n got %+v\nwant %+v", got.Data, m.Data)
	}
	if _, ok := got.Extra[KeyData]; ok {
		t.Fatalf("the record leaked into Extra: %v", got.Extra)
	}
	if !got.Data.Same(m.Data) || (&DataRecord{Fingerprint: "sha256:ff"}).Same(m.Data) || (*DataRecord)(nil).Same(m.Data) {
		t.Fatal("Same compares fingerprints, and no record is the same as nothing")
	}
	r := &Resume{Model: m, M: map[string][]float32{}, V: map[string][]float32{}}
	for _, n := range m.Params.Names() {
		k := len(m.Params.Float32(n))
		r.M[n], r.V[n] = make([]float32, k), make([]float32, k)
	}
	rpath := filepath.Join(t.TempDir(), "resume.safetensors")
	if err := SaveResume(rpath, r); err != nil {
		t.Fatal(err)
	}
	rr, err := LoadResume(rpath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rr.Model.Data, m.Data) {
		t.Fatalf("resume file: record %+v, want %+v", rr.Model.Data, m.Data)
	}
	// a file written before records existed
	old := testModel(t)
	if err := Save(path, old); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(path); err != nil || got.Data != nil {
		t.Fatalf("file without a record: %+v, %v", got, err)
	}
}

// TestDataRecordRejected: a record that is not JSON, lacks its fields or contradicts the
// architecture makes the file invalid, naming the key.
func TestDataRecordRejected(t *testing.T) {
	for _, c := range []struct {
		name string
		mut  func(r *DataRecord)
		raw  string
		want string
	}{
		{"not JSON", nil, "{", "unexpected end"},
		{"no fingerprint", func(r *DataRecord) { r.Fingerprint = "" }, "", "fingerprint"},
		{"negative split", func(r *DataRecord) { r.Val = -1 }, "", "splits"},
		{"no kind", func(r *DataRecord) { r.Kind = "" }, "", "kind"},
		{"other input size", func(r *DataRecord) { r.Height, r.Width = 32, 32 }, "", "1x32x32 with 10 classes, but the model is image with 1x28x28"},
		{"other class count", func(r *DataRecord) { r.Classes = r.Classes[:5] }, "", "5 classes"},
		{"other task", func(r *DataRecord) { r.Task = "speech" }, "", "describes speech data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := testModel(t)
			f, err := m.File()
			if err != nil {
				t.Fatal(err)
			}
			raw := c.raw
			if c.mut != nil {
				r := testRecord(m)
				c.mut(r)
				b, _ := json.Marshal(r)
				raw = string(b)
			}
			f.Metadata[KeyData] = raw
			_, err = FromFile(f)
			if !errors.Is(err, ErrNotModel) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"data"`) {
				t.Fatalf("error %v, want ErrNotModel naming %q and %q", err, KeyData, c.want)
			}
		})
	}
}
