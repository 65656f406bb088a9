// Package budget describes the target condition an extraction must meet — a deployment
// budget on parameters, multiply-accumulates and predicted latency — and reads it from
// JSON, from a command-line shorthand, or from a remote configuration server (an HTTP(S)
// URL or an etcd v3 key). It knows nothing about models: turning "4x fewer parameters"
// into a parameter count is the caller's business.
//
// A target arrives from outside the program, so every reader is strict: unknown or
// duplicate fields, wrong types, non-finite or out-of-range numbers and trailing data are
// errors that name the offending field, never values silently dropped or defaulted.
package budget

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error about a malformed or out-of-range target, whether
// it comes from Validate, Parse, ParseFlag or the content a server returned to Fetch.
var ErrInvalid = errors.New("invalid target")

// Target is a deployment budget. It is any non-empty combination of
//
//   - a parameter limit, given either relative to the supernet's largest subnet
//     (ParamsMultiple) or as an absolute count (Params) — not both;
//   - a limit on multiply-accumulates per example (MACs);
//   - a limit on predicted latency per example (LatencyMS);
//
// and an extracted subnet meets it when every given limit holds. A zero field is unset,
// which is why Parse and ParseFlag reject an explicit zero instead of reading it as "no
// limit".
type Target struct {
	// ParamsMultiple asks for this many times fewer parameters than the supernet's
	// largest subnet (4 = a quarter of them); it must be >= 1.
	ParamsMultiple float64 `json:"params_multiple,omitempty" mapstructure:"params_multiple"`
	// Params is the maximum parameter count.
	Params int64 `json:"params,omitempty" mapstructure:"params"`
	// MACs is the maximum number of multiply-accumulates per example.
	MACs int64 `json:"macs,omitempty" mapstructure:"macs"`
	// LatencyMS is the maximum predicted latency per example, in milliseconds.
	LatencyMS float64 `json:"latency_ms,omitempty" mapstructure:"latency_ms"`
}

// The JSON (and flag) names of the fields, in the order String and errors list them.
const (
	fieldParamsMultiple = "params_multiple"
	fieldParams         = "params"
	fieldMACs           = "macs"
	fieldLatencyMS      = "latency_ms"
)

var fieldNames = []string{fieldParamsMultiple, fieldParams, fieldMACs, fieldLatencyMS}

// fieldError is an error about one field of a target; it prints as "<key>: <msg>",
// where key names the field ("target.params", or e.g. "extract.target.params" for
// ValidateAt), and wraps ErrInvalid.
type fieldError struct {
	key string // the field's full name, or the target's as a whole
	msg string
}

func (e *fieldError) Error() string { return e.key + ": " + e.msg }

func (e *fieldError) Unwrap() error { return ErrInvalid }

// errField is an error about field ("" for the whole target) of a target read by Parse
// or ParseFlag.
func errField(field, format string, args ...any) error {
	return &fieldError{key: join("target", field), msg: fmt.Sprintf(format, args...)}
}

// join appends field to the key of the section holding it.
func join(key, field string) string {
	if field == "" {
		return key
	}
	return key + "." + field
}

// Validate reports the first problem with t, naming the field: an empty target, both
// ParamsMultiple and Params, ParamsMultiple below 1, a negative limit, or a NaN or
// infinite float. The error wraps ErrInvalid and names fields "target.<field>".
func (t Target) Validate() error { return t.ValidateAt("target") }

// ValidateAt is Validate for a target at key in a configuration (a file, the
// environment, flags): its errors name the offending field by its full key, e.g.
// ValidateAt("extract.target") reports "extract.target.params_multiple: got -2, want
// >= 1", and an empty target "extract.target: empty, ...". A configuration loader for
// which the zero Target means "no target given" calls it only for a non-zero one.
func (t Target) ValidateAt(key string) error {
	bad := func(field, format string, args ...any) error {
		return &fieldError{key: join(key, field), msg: fmt.Sprintf(format, args...)}
	}
	if t == (Target{}) {
		return bad("", "empty, want at least one of %s", strings.Join(fieldNames, ", "))
	}
	if m := t.ParamsMultiple; math.IsNaN(m) || math.IsInf(m, 0) {
		return bad(fieldParamsMultiple, "got %s, want a finite number >= 1", formatFloat(m))
	}
	if t.ParamsMultiple != 0 && t.ParamsMultiple < 1 {
		return bad(fieldParamsMultiple, "got %s, want >= 1", formatFloat(t.ParamsMultiple))
	}
	if t.Params < 0 {
		return bad(fieldParams, "got %d, want > 0", t.Params)
	}
	if t.ParamsMultiple != 0 && t.Params != 0 {
		return bad(fieldParams, "got %d together with params_multiple %s, want only one of the two",
			t.Params, formatFloat(t.ParamsMultiple))
	}
	if t.MACs < 0 {
		return bad(fieldMACs, "got %d, want > 0", t.MACs)
	}
	if x := t.LatencyMS; math.IsNaN(x) || math.IsInf(x, 0) {
		return bad(fieldLatencyMS, "got %s, want a finite number", formatFloat(x))
	}
	if t.LatencyMS < 0 {
		return bad(fieldLatencyMS, "got %s, want > 0", formatFloat(t.LatencyMS))
	}
	return nil
}

// String describes t for logs and reports, e.g. "4x fewer params" or
// "params <= 51000, macs <= 1000000, latency_ms <= 2.5".
func (t Target) String() string {
	var parts []string
	if t.ParamsMultiple != 0 {
		parts = append(parts, formatFloat(t.ParamsMultiple)+"x fewer params")
	}
	if t.Params != 0 {
		parts = append(parts, "params <= "+strconv.FormatInt(t.Params, 10))
	}
	if t.MACs != 0 {
		parts = append(parts, "macs <= "+strconv.FormatInt(t.MACs, 10))
	}
	if t.LatencyMS != 0 {
		parts = append(parts, "latency_ms <= "+formatFloat(t.LatencyMS))
	}
	if len(parts) == 0 {
		return "empty target"
	}
	return strings.Join(parts, ", ")
}

func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// ParseFlag reads the command-line shorthand for a target: comma-separated limits, each
// either "<m>x" (ParamsMultiple, e.g. "4x") or "<field>=<number>" with field one of
// params_multiple, params, macs, latency_ms ("params=50000", "macs=1e6",
// "latency_ms=2.5", "macs=1e6,latency_ms=3"). Counts may use exponent notation but must
// be whole numbers. The result is validated; errors name the field and wrap ErrInvalid.
func ParseFlag(s string) (Target, error) {
	t, err := parseFlag(s)
	if err != nil {
		return Target{}, fmt.Errorf("budget: target %q: %w", s, err)
	}
	return t, nil
}

func parseFlag(s string) (Target, error) {
	var t Target
	seen := map[string]bool{}
	if strings.TrimSpace(s) == "" {
		return t, errField("", "empty, want e.g. 4x or params=50000 or macs=1e6,latency_ms=3")
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		var field, value string
		switch {
		case item == "":
			return t, errField("", "empty item in comma-separated list")
		case strings.Contains(item, "="):
			field, value, _ = strings.Cut(item, "=")
			field, value = strings.TrimSpace(field), strings.TrimSpace(value)
		case strings.HasSuffix(item, "x") || strings.HasSuffix(item, "X"):
			field, value = fieldParamsMultiple, strings.TrimSpace(item[:len(item)-1])
		default:
			return t, errField("", "got %q, want <m>x or <field>=<number>", item)
		}
		if seen[field] {
			return t, errField(field, "given more than once")
		}
		seen[field] = true
		if err := setField(&t, field, value); err != nil {
			return t, err
		}
	}
	return t, t.Validate()
}

// setField parses a number given as text for field; it is how both ParseFlag and Parse
// (with the JSON number literal) fill a target, so the two agree on what they accept.
func setField(t *Target, field, text string) error {
	switch field {
	case fieldParamsMultiple, fieldLatencyMS:
		x, err := parseFloat(field, text)
		if err != nil {
			return err
		}
		if field == fieldParamsMultiple {
			t.ParamsMultiple = x
		} else {
			t.LatencyMS = x
		}
	case fieldParams, fieldMACs:
		n, err := parseCount(field, text)
		if err != nil {
			return err
		}
		if field == fieldParams {
			t.Params = n
		} else {
			t.MACs = n
		}
	default:
		return errField(field, "unknown field, want one of %s", strings.Join(fieldNames, ", "))
	}
	return nil
}

func parseFloat(field, text string) (float64, error) {
	x, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errField(field, "got %q, want a number", text)
	}
	// ParseFloat also accepts "NaN", "Inf" and overflowing literals (as ±Inf).
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, errField(field, "got %s, want a finite number", text)
	}
	if x == 0 {
		return 0, errField(field, "got %s, want > 0 (leave the field out for no limit)", text)
	}
	return x, nil
}

// parseCount reads a whole number that may be written with a fraction or exponent
// ("1e6", "50000.0"), as long as it is exactly an integer that fits an int64.
func parseCount(field, text string) (int64, error) {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		if n == 0 {
			return 0, errField(field, "got 0, want > 0 (leave the field out for no limit)")
		}
		return n, nil
	}
	x, err := parseFloat(field, text)
	if err != nil {
		return 0, err
	}
	// 2^63 is exactly representable; anything at or beyond it overflows int64.
	if x != math.Trunc(x) || x >= math.Exp2(63) || x < -math.Exp2(63) {
		return 0, errField(field, "got %s, want a whole number below 2^63", text)
	}
	return int64(x), nil
}
