package onnx_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/modelfile"
)

// TestExportModel: a model file's model exports with its kind and preprocessing; a supernet
// exports any subnet, other kinds only as a whole.
func TestExportModel(t *testing.T) {
	a := imageArch()
	p := newParams(t, a, 4)
	space := &arch.Space{HeadChoices: []int{2, 4}, MLPChoices: []int{16, 32}, DepthChoices: []int{2, 3}}
	sn := &modelfile.Model{Kind: modelfile.KindSupernet, Arch: a, Space: space, Params: p,
		Preprocess: modelfile.Preprocess{Mean: 0.5, Std: 0.25}, Extra: map[string]string{modelfile.KeyClasses: `["a","b","c","d","e"]`}}
	small := space.Smallest()
	b, err := onnx.ExportModel(sn, small, "v1")
	if err != nil {
		t.Fatal(err)
	}
	want, err := onnx.Export(a, p, small, onnx.Options{Kind: "supernet", Preprocess: `{"mean":0.5,"std":0.25}`,
		Classes: `["a","b","c","d","e"]`, ProducerVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Error("ExportModel differs from Export with the model's kind and preprocessing")
	}
	meta := map[string]string{}
	for _, e := range decode(t, b).GetMetadataProps() {
		meta[e.GetKey()] = e.GetValue()
	}
	if meta["kind"] != "supernet" || meta["preprocess"] != `{"mean":0.5,"std":0.25}` || meta["subnet"] == "" || meta["classes"] != `["a","b","c","d","e"]` {
		t.Errorf("metadata %v", meta)
	}

	ex := &modelfile.Model{Kind: modelfile.KindExtracted, Arch: a, Params: p, Preprocess: sn.Preprocess}
	if _, err := onnx.ExportModel(ex, arch.Largest(a), ""); err != nil {
		t.Errorf("whole extracted model: %v", err)
	}
	if b, err := onnx.ExportModel(ex, small, ""); !errors.Is(err, onnx.ErrExport) || b != nil {
		t.Errorf("subnet of an extracted model: %d bytes, error %v; want %v", len(b), err, onnx.ErrExport)
	}
	odd := *ex
	odd.Kind = "teacher"
	if _, err := onnx.ExportModel(&odd, arch.Largest(a), ""); !errors.Is(err, onnx.ErrExport) {
		t.Errorf("unknown kind: error %v, want %v", err, onnx.ErrExport)
	}
	for _, bad := range []string{`["a","b"]`, `{"a":1}`} {
		wrong := *ex
		wrong.Extra = map[string]string{modelfile.KeyClasses: bad}
		if _, err := onnx.ExportModel(&wrong, arch.Largest(a), ""); !errors.Is(err, onnx.ErrExport) || !strings.Contains(err.Error(), "Options.Classes") {
			t.Errorf("class names %s: error %v, want %v naming Options.Classes", bad, err, onnx.ErrExport)
		}
	}
}
