package extract

// ErrLatency is wrapped by errors about latency measurement settings and latency table
// files; they read "latency: ..." (a latency table is not an extraction), yet match
// ErrExtract too, for callers that test the package's errors as one.
var ErrLatency error = latencyError{}

type latencyError struct{}

func (latencyError) Error() string { return "latency" }

// Is makes errors.Is(err, ErrExtract) hold for latency errors.
func (latencyError) Is(target error) bool { return target == ErrExtract }
