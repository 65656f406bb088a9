package modelfile

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// TestPreprocessPerChannel: per-channel statistics survive a save and load; equal channels
// collapse to the scalar form that files have always had; a scalar-only file applies its
// values to every channel; a channel count that does not match the input is refused.
func TestPreprocessPerChannel(t *testing.T) {
	m := testModel(t)
	m.Arch.InChannels = 3
	var err error
	if m.Params, err = supernet.NewParams(m.Arch, tensor.Float32, 1); err != nil {
		t.Fatal(err)
	}
	mean, std := []float32{0.1, 0.2, 0.3}, []float32{0.4, 0.5, 0.6}
	m.Preprocess = ImagePreprocess(mean, std)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	gm, gs := got.Preprocess.PerChannel(3)
	if !slices.Equal(gm, mean) || !slices.Equal(gs, std) {
		t.Errorf("per-channel round trip: mean %v std %v, want %v %v", gm, gs, mean, std)
	}
	if got.Preprocess.Mean != m.Preprocess.Mean || got.Preprocess.Std != m.Preprocess.Std {
		t.Errorf("scalar averages changed: %+v", got.Preprocess)
	}

	same := ImagePreprocess([]float32{0.3, 0.3}, []float32{0.4, 0.4})
	if same.ChannelMean != nil || same.Mean != 0.3 || same.Std != 0.4 {
		t.Errorf("equal channels: %+v, want the scalar form", same)
	}
	old := Preprocess{Mean: 0.3, Std: 0.4}
	om, os := old.PerChannel(3)
	if !slices.Equal(om, []float32{0.3, 0.3, 0.3}) || !slices.Equal(os, []float32{0.4, 0.4, 0.4}) {
		t.Errorf("scalar file per channel: %v %v", om, os)
	}
	if err := (Preprocess{Mean: 0.3, Std: 0.4, ChannelMean: mean[:2], ChannelStd: std[:2]}).Validate(3); err == nil ||
		!strings.Contains(err.Error(), "2 channel means") {
		t.Errorf("2 channel means for 3 channels: %v", err)
	}
	if err := (Preprocess{Mean: 0.3, Std: 0.4, ChannelMean: mean, ChannelStd: []float32{1, 0, 1}}).Validate(3); err == nil ||
		!strings.Contains(err.Error(), "channel 1") {
		t.Errorf("zero std in channel 1: %v", err)
	}
}
