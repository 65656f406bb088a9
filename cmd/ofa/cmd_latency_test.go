package main

import (
	"strings"
	"testing"

	"github.com/ofa-go/ofa/export/onnx/ortrun"
)

// TestLatencyRuntimeFlags: flag mistakes are usage errors that name the flag, checked
// before any model is read; without onnxruntime support --runtime onnxruntime says how to
// build with it.
func TestLatencyRuntimeFlags(t *testing.T) {
	base := []string{"latency-table", "--supernet", "missing.safetensors", "--out", "lat.json"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--runtime", "tflite"}, `runtime "tflite"`},
		{[]string{"--statistic", "mean"}, `statistic "mean"`},
		{[]string{"--clock", "tsc"}, `clock "tsc"`},
		{[]string{"--predictor", "knn"}, `predictor "knn"`},
		{[]string{"--threads", "2"}, "threads and onnxruntime_lib are only used with runtime onnxruntime"},
		{[]string{"--onnxruntime-lib", "x.so"}, `onnxruntime_lib "x.so"`},
		{[]string{"--repeats", "2"}, "repeats 2"},
	}
	if !ortrun.Built {
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"--runtime", "onnxruntime"}, "-tags onnxruntime"})
	}
	for _, c := range cases {
		code, _, stderr := ofa(t, append(base, c.args...)...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
}
