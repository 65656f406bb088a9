package pipeline

import (
	"strings"
	"testing"

	"github.com/ofa-go/ofa/modelfile"
)

// TestDataRecord: a dataset's record is deterministic, describes its splits and shape,
// and its fingerprint changes when the examples do (another limit), not when nothing does.
func TestDataRecord(t *testing.T) {
	c := tinyLifecycle(t.TempDir())
	load := func(dc DataConfig) *modelfile.DataRecord {
		ds, err := LoadData(dc)
		if err != nil {
			t.Fatal(err)
		}
		return ds.Record()
	}
	a, b := load(c.Data), load(c.Data)
	if !a.Same(b) || a.Validate() != nil {
		t.Fatalf("two loads differ or the record is invalid: %+v, %+v", a, b)
	}
	if a.Kind != modelfile.DataFashionMNISTEmbedded || a.Train != 512 || a.Val != 88 || a.Test != 100 || a.Channels != 1 || a.Height != 28 ||
		len(a.Classes) != 10 || a.Classes[9] != "Ankle boot" ||
		string(a.Augment) != string(augmentJSON(c.Data.Augment)) || !strings.Contains(string(a.Augment), `"crop_pad":0`) {
		t.Fatalf("record %+v", a)
	}
	other := c.Data
	other.TestLimit = 99
	if o := load(other); o.Same(a) {
		t.Fatal("another test split has the same fingerprint")
	}
	other = c.Data
	other.ValSize = 89 // the same examples, split differently
	if o := load(other); o.Same(a) {
		t.Fatal("another validation split has the same fingerprint")
	}
}

// TestDataLine: the first line names the data and whether it is the model's, naming both
// when it is not.
func TestDataLine(t *testing.T) {
	c := tinyLifecycle(t.TempDir())
	ds, err := LoadData(c.Data)
	if err != nil {
		t.Fatal(err)
	}
	other := c.Data
	other.TestLimit = 50
	ods, err := LoadData(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		rec       *modelfile.DataRecord
		fromModel bool
		want      []string
	}{
		{"same", ds.Record(), true, []string{"the data M was trained on", ds.Record().ShortFingerprint()}},
		{"asked for other data", ods.Record(), false, []string{"NOT the data M was trained on", "as asked", ods.Record().ShortFingerprint(), "50 test"}},
		{"stored data changed", ods.Record(), true, []string{"WARNING", "the files changed"}},
		{"no record", nil, true, []string{"M records no dataset"}},
	} {
		line := ds.DataLine("M", &modelfile.Model{Data: tc.rec}, tc.fromModel)
		if !strings.HasPrefix(line, "data: "+ds.Record().String()) {
			t.Errorf("%s: %q does not start with the data", tc.name, line)
		}
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q lacks %q", tc.name, line, w)
			}
		}
	}
}
