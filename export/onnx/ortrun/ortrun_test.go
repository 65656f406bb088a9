package ortrun_test

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/export/onnx/ortrun"
)

// TestDefaultLibPath: $ONNXRUNTIME_LIB wins; else the library of this platform inside
// the npm package under $ONNXRUNTIME_NODE_DIR.
func TestDefaultLibPath(t *testing.T) {
	t.Setenv(ortrun.LibEnv, "/opt/ort/lib/libonnxruntime.so.1.23.2")
	if got := ortrun.DefaultLibPath(); got != "/opt/ort/lib/libonnxruntime.so.1.23.2" {
		t.Errorf("with %s set: %s", ortrun.LibEnv, got)
	}
	t.Setenv(ortrun.LibEnv, "")
	t.Setenv(ortrun.NodeEnv, "/srv/ortnode")
	got := ortrun.DefaultLibPath()
	prefix := filepath.Join("/srv/ortnode", "node_modules", "onnxruntime-node", "bin", "napi-v6") + string(filepath.Separator)
	if !strings.HasPrefix(got, prefix) {
		t.Errorf("with %s set: %s, want a path under %s", ortrun.NodeEnv, got, prefix)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" && got != prefix+filepath.Join("linux", "x64", "libonnxruntime.so.1") {
		t.Errorf("linux/amd64: %s", got)
	}
}

// TestNotBuilt: without the build tag every entry point says how to build with it.
func TestNotBuilt(t *testing.T) {
	if ortrun.Built {
		t.Skip("built with onnxruntime support")
	}
	if _, err := ortrun.Init(""); !errors.Is(err, ortrun.ErrNotBuilt) || !strings.Contains(err.Error(), "-tags onnxruntime") {
		t.Errorf("Init: %v, want ErrNotBuilt naming -tags onnxruntime", err)
	}
	if _, err := ortrun.NewSession(nil, ortrun.IO{}, ortrun.IO{}, ortrun.Options{}); !errors.Is(err, ortrun.ErrNotBuilt) {
		t.Errorf("NewSession: %v, want ErrNotBuilt", err)
	}
}
