package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/modelfile"
)

// TestAutoPatch: the default patch divides the input and leaves at least
// MinPatchesPerSide patches along each side.
func TestAutoPatch(t *testing.T) {
	for _, c := range []struct{ n, want int }{{28, 7}, {32, 8}, {40, 10}, {64, 16}, {30, 6}, {29, 1}, {3, 1}, {100, 25}} {
		got := AutoPatch(c.n)
		if got != c.want || c.n%got != 0 || (c.n >= MinPatchesPerSide && c.n/got < MinPatchesPerSide) {
			t.Errorf("AutoPatch(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestPatchAgainstData: the model section is valid before the data is read whatever its
// image size; its patch is checked against the data's real size, an unset patch divides
// it, and a patch that does not divide it is an error naming the key and the data size.
func TestPatchAgainstData(t *testing.T) {
	c := DefaultConfig()
	if c.Model.PatchSize != 0 {
		t.Fatalf("default model.patch_size %d, want 0 (chosen from the data)", c.Model.PatchSize)
	}
	for _, size := range [][2]int{{28, 28}, {32, 32}, {32, 48}} {
		a, _, err := c.Model.Arch(arch.TaskImage, 3, size[0], size[1], 5)
		if err != nil {
			t.Fatalf("%v: %v", size, err)
		}
		if a.PatchHeight != AutoPatch(size[0]) || a.PatchWidth != AutoPatch(size[1]) {
			t.Errorf("%v: patch %dx%d", size, a.PatchHeight, a.PatchWidth)
		}
	}
	c.Model.PatchSize = 7
	if err := c.Validate(); err != nil {
		t.Fatalf("patch 7 refused before the data is known: %v", err)
	}
	_, _, err := c.Model.Arch(arch.TaskImage, 3, 32, 32, 5)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "model.patch_size 7") || !strings.Contains(err.Error(), "32x32") ||
		!strings.Contains(err.Error(), "8x8") {
		t.Fatalf("patch 7 on 32x32 data: %v", err)
	}
}

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
