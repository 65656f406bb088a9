// Package checkpoint reads and writes named float32 tensors plus string metadata in the
// safetensors format (https://github.com/huggingface/safetensors), so that checkpoints can
// be opened from Python as well as from Go. It knows nothing about models: names, shapes
// and metadata mean whatever the caller decides.
//
// Decoding treats the file as hostile: the header is fully validated against Limits before
// any tensor memory is allocated, so a corrupt or malicious file costs at most the bounded
// header read. docs/SAFETENSORS.md describes the layout and the rules Decode enforces.
package checkpoint

import (
	"errors"
	"fmt"
)

// ErrBadCheckpoint is wrapped by every error about malformed, truncated, inconsistent or
// oversized checkpoint data (and by Encode's errors about an invalid File), so callers can
// tell a bad file from, say, a missing one or a full disk.
var ErrBadCheckpoint = errors.New("checkpoint: bad checkpoint")

// Tensor is one named tensor: Data holds product(Shape) values in row-major order (the
// last dimension varies fastest). An empty Shape is a scalar holding one value; a zero
// dimension makes an empty tensor.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// File is the content of a checkpoint: free-form string metadata and the tensors in file
// order (the order their data appears in the byte buffer, which for files written by
// Encode or by Python's safetensors is also the order of the header).
type File struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// Get returns the tensor called name, pointing into f.Tensors, and whether it exists.
// It scans the tensors linearly, which is cheap next to decoding them; a caller looking
// up very many names in a very large file may prefer to build its own map.
func (f *File) Get(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// Limits bounds what Decode accepts. All limits are checked before any tensor memory is
// allocated. A zero or negative field means the DefaultLimits value.
type Limits struct {
	// MaxHeaderBytes bounds the JSON header, which is read into memory whole.
	MaxHeaderBytes int64
	// MaxTensors bounds the number of tensors in the header.
	MaxTensors int
	// MaxTotalBytes bounds the tensor data (the byte buffer after the header), which is
	// what Decode allocates as float32s.
	MaxTotalBytes int64
	// AllowNonFinite accepts NaN and ±Inf values; by default they are an error, since a
	// checkpoint holding them comes from a diverged run and would poison a resumed one.
	AllowNonFinite bool
}

// Default limit values, chosen to admit any checkpoint this tool trains while keeping a
// hostile header from making Decode allocate more than a few GiB.
const (
	defaultMaxHeaderBytes = 16 << 20
	defaultMaxTensors     = 100_000
	defaultMaxTotalBytes  = 4 << 30
)

// DefaultLimits returns the limits a zero Limits stands for: a 16 MiB header, 100,000
// tensors, 4 GiB of tensor data, and no NaN or Inf values.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderBytes: defaultMaxHeaderBytes,
		MaxTensors:     defaultMaxTensors,
		MaxTotalBytes:  defaultMaxTotalBytes,
	}
}

// withDefaults replaces unset fields by their default values.
func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.MaxTensors <= 0 {
		l.MaxTensors = defaultMaxTensors
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = defaultMaxTotalBytes
	}
	return l
}

// cpError is every error this package returns. It reads "checkpoint: [path: ]<what>",
// matches ErrBadCheckpoint when it is about the data (bad is set), and matches whatever
// the description wraps, such as io.ErrUnexpectedEOF or an *fs.PathError.
type cpError struct {
	path string // the file involved, set by ReadFile and WriteFile
	bad  bool   // a format error: wraps ErrBadCheckpoint
	err  error  // what went wrong, without the "checkpoint: " prefix
}

func (e *cpError) Error() string {
	if e.path == "" {
		return "checkpoint: " + e.err.Error()
	}
	return "checkpoint: " + e.path + ": " + e.err.Error()
}

func (e *cpError) Unwrap() []error {
	if e.bad {
		return []error{ErrBadCheckpoint, e.err}
	}
	return []error{e.err}
}

// bad returns a format error; format may use %w to keep a cause.
func bad(format string, args ...any) error {
	return &cpError{bad: true, err: fmt.Errorf(format, args...)}
}

// ioErr returns an error about reading or writing itself, which is not ErrBadCheckpoint.
func ioErr(format string, args ...any) error {
	return &cpError{err: fmt.Errorf(format, args...)}
}
