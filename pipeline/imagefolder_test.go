package pipeline

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/internal/testfile"
)

// TestImageFolderMatchesIDX: the embedded Fashion-MNIST written out as a PNG image folder
// (train/val/test as the IDX path splits it, file names carrying the order) gives, batch
// by batch, exactly the IDX path's model inputs when it is ordered by name and given the
// same mean and std; only the description (kind, fingerprint) differs.
func TestImageFolderMatchesIDX(t *testing.T) {
	idxCfg := DataConfig{Embedded: true, ValSize: 40, TrainLimit: 200, TestLimit: 60, Task: arch.TaskImage}
	want, err := LoadData(idxCfg)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	folder := func(name string) string { // class folders sort in label order
		return fmt.Sprintf("%02d-%s", slices.Index(want.Classes, name), strings.ReplaceAll(name, "/", "_"))
	}
	for split, s := range map[string]Split{"train": want.Train, "val": want.Val, "test": want.Test} {
		set := s.(imageSplit).images
		for c := range want.Classes {
			os.MkdirAll(filepath.Join(root, split, folder(want.Classes[c])), 0o755)
		}
		for i := range set.N {
			img := image.NewGray(image.Rect(0, 0, set.Width, set.Height))
			copy(img.Pix, set.Image(i))
			testfile.Write(t, filepath.Join(root, split, folder(want.Classes[set.Labels[i]]), fmt.Sprintf("%05d.png", i)), testfile.PNG(t, img))
		}
	}
	got, err := LoadData(DataConfig{Dir: root, OrderByName: true, Mean: []float32{data.FashionMNISTMean},
		Std: []float32{data.FashionMNISTStd}, Cache: "off", Task: arch.TaskImage})
	if err != nil {
		t.Fatal(err)
	}
	if got.Description.Kind != data.KindImageFolder || got.Channels != 1 || got.Height != 28 || !strings.HasPrefix(got.Source, "image folders in") {
		t.Fatalf("description %+v", got.Description)
	}
	if got.Preprocess().Mean != want.Preprocess().Mean || got.Preprocess().Std != want.Preprocess().Std {
		t.Fatalf("preprocessing %+v, want %+v", got.Preprocess(), want.Preprocess())
	}
	for _, p := range []struct {
		name string
		a, b Split
	}{{"train", want.Train, got.Train}, {"val", want.Val, got.Val}, {"test", want.Test, got.Test}} {
		if p.a.N() != p.b.N() {
			t.Fatalf("%s: %d examples, want %d", p.name, p.b.N(), p.a.N())
		}
		for _, trainMode := range []bool{false, true} {
			lc := LoaderConfig{Batch: 20, Train: trainMode, Seed: 5, Pre: want.Preprocess()}
			la, err := p.a.Loader(lc)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := p.b.Loader(lc)
			if err != nil {
				t.Fatal(err)
			}
			var ba, bb data.Batch
			for i := range la.BatchesPerEpoch() {
				la.Batch(1, i, &ba)
				lb.Batch(1, i, &bb)
				if !slices.Equal(ba.X, bb.X) || !slices.Equal(ba.Labels, bb.Labels) {
					t.Fatalf("%s (train=%v): batch %d differs", p.name, trainMode, i)
				}
			}
		}
	}
}
