//go:build !onnxruntime || !cgo

// Command ortbench times inference in onnxruntime; this build has no onnxruntime support
// (see main.go: build it with cgo and -tags onnxruntime).
package main

import (
	"fmt"
	"os"

	"github.com/ofa-go/ofa/export/onnx/ortrun"
)

func main() {
	fmt.Fprintf(os.Stderr, "ortbench: %v (this program: go build -tags onnxruntime ./bench/ortbench)\n", ortrun.ErrNotBuilt)
	os.Exit(1)
}
