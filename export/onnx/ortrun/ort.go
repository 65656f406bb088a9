//go:build onnxruntime && cgo

package ortrun

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Built reports whether this binary can run onnxruntime (cgo and the build tag
// onnxruntime).
const Built = true

// env is the process's one onnxruntime environment. onnxruntime_go keeps the loaded
// library and its environment in package state, so this package can load one library per
// process; env records which.
var env struct {
	sync.Mutex
	path, version string
}

// Init loads the onnxruntime shared library at lib (a path; "" means DefaultLibPath()) and
// returns its version. Later calls with the same library do nothing; a different library
// in the same process is an error, since onnxruntime_go holds one per process.
func Init(lib string) (version string, err error) {
	if lib == "" {
		lib = DefaultLibPath()
	}
	abs, err := filepath.Abs(lib)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrLibrary, lib, err)
	}
	env.Lock()
	defer env.Unlock()
	if env.path != "" {
		if env.path != abs {
			return "", fmt.Errorf("%w: %s is loaded already; cannot load %s in the same process", ErrLibrary, env.path, abs)
		}
		return env.version, nil
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%w %s: %w; install the npm package onnxruntime-node %s (scripts/install-onnx-test-deps.sh) "+
			"or name the library with $%s", ErrLibrary, abs, err, LibraryVersion, LibEnv)
	}
	ort.SetSharedLibraryPath(abs) // an absolute path: dlopen would search a bare name in the system's directories
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("%w %s (want onnxruntime %s or newer): %w", ErrLibrary, abs, LibraryVersion, err)
	}
	env.path, env.version = abs, ort.GetVersion()
	return env.version, nil
}

// Session is a model loaded into onnxruntime with fixed input and output buffers: fill
// Input, call Run, read Output. It is not safe for concurrent use.
type Session struct {
	s       *ort.AdvancedSession
	in, out *ort.Tensor[float32]
}

// NewSession loads an ONNX model (serialized ModelProto) with one float32 input and one
// float32 output of the given fixed shapes. Init must have succeeded.
func NewSession(model []byte, input, output IO, opts Options) (*Session, error) {
	if !ort.IsInitialized() {
		return nil, fmt.Errorf("%w: not loaded; call ortrun.Init first", ErrLibrary)
	}
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(input.Shape...))
	if err != nil {
		return nil, fmt.Errorf("ortrun: input %q of shape %v: %w", input.Name, input.Shape, err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(output.Shape...))
	if err != nil {
		in.Destroy()
		return nil, fmt.Errorf("ortrun: output %q of shape %v: %w", output.Name, output.Shape, err)
	}
	so, err := sessionOptions(opts)
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, err
	}
	defer so.Destroy()
	s, err := ort.NewAdvancedSessionWithONNXData(model, []string{input.Name}, []string{output.Name},
		[]ort.Value{in}, []ort.Value{out}, so)
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, fmt.Errorf("ortrun: creating a session (input %q %v, output %q %v): %w", input.Name, input.Shape, output.Name, output.Shape, err)
	}
	return &Session{s: s, in: in, out: out}, nil
}

// sessionOptions: every graph optimisation, opts' intra-op threads, sequential execution.
func sessionOptions(opts Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ortrun: session options: %w", err)
	}
	for _, step := range []struct {
		what string
		err  error
	}{
		{"graph optimization level", so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll)},
		{"execution mode", so.SetExecutionMode(ort.ExecutionModeSequential)},
		{"intra-op threads", so.SetIntraOpNumThreads(opts.threads())},
		{"inter-op threads", so.SetInterOpNumThreads(1)},
	} {
		if step.err != nil {
			so.Destroy()
			return nil, fmt.Errorf("ortrun: session options: %s: %w", step.what, step.err)
		}
	}
	return so, nil
}

// Input returns the input buffer (row-major, the input's shape), read by every Run.
func (s *Session) Input() []float32 { return s.in.GetData() }

// Output returns the output buffer, written by every Run.
func (s *Session) Output() []float32 { return s.out.GetData() }

// Run runs the model once on the current input.
func (s *Session) Run() error {
	if err := s.s.Run(); err != nil {
		return fmt.Errorf("ortrun: run: %w", err)
	}
	return nil
}

// Close releases the session and its buffers.
func (s *Session) Close() error {
	err := s.s.Destroy()
	if e := s.in.Destroy(); err == nil {
		err = e
	}
	if e := s.out.Destroy(); err == nil {
		err = e
	}
	return err
}
