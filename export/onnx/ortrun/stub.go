//go:build !onnxruntime || !cgo

package ortrun

// Built reports whether this binary can run onnxruntime (cgo and the build tag
// onnxruntime).
const Built = false

// Session is a model loaded into onnxruntime; in this build it cannot be created.
type Session struct{}

// Init returns ErrNotBuilt: this binary has no onnxruntime support.
func Init(lib string) (version string, err error) { return "", ErrNotBuilt }

// NewSession returns ErrNotBuilt: this binary has no onnxruntime support.
func NewSession(model []byte, input, output IO, opts Options) (*Session, error) {
	return nil, ErrNotBuilt
}

// Input returns nil: no session exists in this build.
func (s *Session) Input() []float32 { return nil }

// Output returns nil: no session exists in this build.
func (s *Session) Output() []float32 { return nil }

// Run returns ErrNotBuilt.
func (s *Session) Run() error { return ErrNotBuilt }

// Close does nothing.
func (s *Session) Close() error { return nil }
