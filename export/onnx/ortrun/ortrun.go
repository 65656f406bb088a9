// Package ortrun runs exported models (package export/onnx) in onnxruntime's C library,
// loaded at run time through github.com/yalue/onnxruntime_go, so that latencies can be
// measured where a model will be deployed rather than in the training engine.
//
// The runtime is compiled in only with cgo and the build tag onnxruntime:
//
//	go build -tags onnxruntime ./cmd/ofa
//
// Without it every function returns ErrNotBuilt, so the default build stays pure Go. The
// library itself is not linked: it is opened (dlopen) from the path given to Init, by
// default the CPU library shipped inside the npm package onnxruntime-node that
// scripts/install-onnx-test-deps.sh installs. onnxruntime_go pins the C API version of
// onnxruntime LibraryVersion; a library older than that is refused when loaded.
package ortrun

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// LibraryVersion is the onnxruntime version whose C API this package is compiled against
// (github.com/yalue/onnxruntime_go v1.25.0 pins API version 23, onnxruntime 1.23) and that
// scripts/install-onnx-test-deps.sh installs.
const LibraryVersion = "1.23.2"

// LibEnv names the environment variable holding the path of the onnxruntime shared
// library; it overrides DefaultLibPath's search.
const LibEnv = "ONNXRUNTIME_LIB"

// NodeEnv names the environment variable holding a directory with
// node_modules/onnxruntime-node (the same variable the export tests read); without it the
// default is export/onnx/testdata/ort relative to the working directory (the repository
// root).
const NodeEnv = "ONNXRUNTIME_NODE_DIR"

// ErrNotBuilt is returned by every function of a binary built without the onnxruntime
// build tag or without cgo.
var ErrNotBuilt = errors.New("ortrun: this binary was built without onnxruntime support; " +
	"rebuild it with cgo and the build tag onnxruntime: CGO_ENABLED=1 go build -tags onnxruntime ./cmd/ofa")

// ErrLibrary is wrapped by errors about the onnxruntime shared library: missing, not
// loadable, or of an incompatible version.
var ErrLibrary = errors.New("ortrun: onnxruntime library")

// IO names a graph input or output and the fixed shape a session feeds or reads.
type IO struct {
	Name  string
	Shape []int64
}

// Options configure a session.
type Options struct {
	// Threads is the number of intra-op threads; 0 means runtime.GOMAXPROCS(0), the number
	// of threads the tool's own inference uses. Inter-op parallelism is off (sequential
	// execution), as in the tool's own engine.
	Threads int
}

// DefaultLibPath returns the library to load: $ONNXRUNTIME_LIB if set, else the CPU
// library of this platform inside the npm package onnxruntime-node under
// $ONNXRUNTIME_NODE_DIR (default export/onnx/testdata/ort).
func DefaultLibPath() string {
	if p := os.Getenv(LibEnv); p != "" {
		return p
	}
	dir := os.Getenv(NodeEnv)
	if dir == "" {
		dir = filepath.Join("export", "onnx", "testdata", "ort")
	}
	goos, name := runtime.GOOS, "libonnxruntime.so.1"
	switch goos {
	case "darwin":
		name = "libonnxruntime." + LibraryVersion + ".dylib"
	case "windows":
		goos, name = "win32", "onnxruntime.dll"
	}
	cpu := runtime.GOARCH
	if cpu == "amd64" {
		cpu = "x64"
	}
	return filepath.Join(dir, "node_modules", "onnxruntime-node", "bin", "napi-v6", goos, cpu, name)
}

// threads resolves Options.Threads.
func (o Options) threads() int {
	if o.Threads > 0 {
		return o.Threads
	}
	return runtime.GOMAXPROCS(0)
}
