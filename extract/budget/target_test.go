package budget

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string // "" for valid
	}{
		{Target{ParamsMultiple: 4}, ""},
		{Target{ParamsMultiple: 1}, ""},
		{Target{Params: 51000, MACs: 1e6, LatencyMS: 2.5}, ""},
		{Target{ParamsMultiple: 2, LatencyMS: 0.1}, ""},
		{Target{MACs: 1}, ""},
		{Target{}, "target: empty, want at least one of params_multiple, params, macs, latency_ms"},
		{Target{ParamsMultiple: 0.5}, "target.params_multiple: got 0.5, want >= 1"},
		{Target{ParamsMultiple: -4}, "target.params_multiple: got -4, want >= 1"},
		{Target{ParamsMultiple: math.NaN()}, "target.params_multiple: got NaN, want a finite number >= 1"},
		{Target{ParamsMultiple: math.Inf(1)}, "target.params_multiple: got +Inf, want a finite number >= 1"},
		{Target{Params: -1}, "target.params: got -1, want > 0"},
		{Target{ParamsMultiple: 4, Params: 50000}, "target.params: got 50000 together with params_multiple 4, want only one of the two"},
		{Target{MACs: -5}, "target.macs: got -5, want > 0"},
		{Target{LatencyMS: math.NaN()}, "target.latency_ms: got NaN, want a finite number"},
		{Target{LatencyMS: math.Inf(-1)}, "target.latency_ms: got -Inf, want a finite number"},
		{Target{MACs: 3, LatencyMS: -0.5}, "target.latency_ms: got -0.5, want > 0"},
	} {
		err := tc.t.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.t, err)
		case tc.want == "":
		case err == nil:
			t.Errorf("%+v: no error, want %q", tc.t, tc.want)
		case err.Error() != tc.want || !errors.Is(err, ErrInvalid):
			t.Errorf("%+v: got %q, want %q wrapping ErrInvalid", tc.t, err, tc.want)
		}
	}
}

// TestTargetValidateAt checks that ValidateAt makes the same checks as Validate and
// names the field by its full configuration key.
func TestTargetValidateAt(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string // "" for valid
	}{
		{Target{ParamsMultiple: 4, LatencyMS: 3}, ""},
		{Target{Params: 1, MACs: 1}, ""},
		{Target{}, "extract.target: empty, want at least one of params_multiple, params, macs, latency_ms"},
		{Target{ParamsMultiple: -2}, "extract.target.params_multiple: got -2, want >= 1"},
		{Target{ParamsMultiple: 0.25}, "extract.target.params_multiple: got 0.25, want >= 1"},
		{Target{ParamsMultiple: math.Inf(-1)}, "extract.target.params_multiple: got -Inf, want a finite number >= 1"},
		{Target{Params: -50000}, "extract.target.params: got -50000, want > 0"},
		{Target{ParamsMultiple: 2, Params: 9}, "extract.target.params: got 9 together with params_multiple 2, want only one of the two"},
		{Target{MACs: -1}, "extract.target.macs: got -1, want > 0"},
		{Target{LatencyMS: -0.001}, "extract.target.latency_ms: got -0.001, want > 0"},
		{Target{MACs: 5, LatencyMS: math.NaN()}, "extract.target.latency_ms: got NaN, want a finite number"},
	} {
		err := tc.t.ValidateAt("extract.target")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.t, err)
		case tc.want == "":
		case err == nil:
			t.Errorf("%+v: no error, want %q", tc.t, tc.want)
		case err.Error() != tc.want || !errors.Is(err, ErrInvalid):
			t.Errorf("%+v: got %q, want %q wrapping ErrInvalid", tc.t, err, tc.want)
		}
		// Validate is ValidateAt("target").
		verr := tc.t.Validate()
		if (verr == nil) != (err == nil) || err != nil && "extract."+verr.Error() != err.Error() {
			t.Errorf("%+v: Validate gave %v, ValidateAt %v", tc.t, verr, err)
		}
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{ParamsMultiple: 4}, "4x fewer params"},
		{Target{ParamsMultiple: 2.5, LatencyMS: 3}, "2.5x fewer params, latency_ms <= 3"},
		{Target{Params: 51000, MACs: 1000000}, "params <= 51000, macs <= 1000000"},
		{Target{Params: 51000, MACs: 1000000, LatencyMS: 2.5}, "params <= 51000, macs <= 1000000, latency_ms <= 2.5"},
		{Target{}, "empty target"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestParseFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
	}{
		{"4x", Target{ParamsMultiple: 4}},
		{"4.5X", Target{ParamsMultiple: 4.5}},
		{"params_multiple=8", Target{ParamsMultiple: 8}},
		{"params=50000", Target{Params: 50000}},
		{"params=5e4", Target{Params: 50000}},
		{"macs=1e6", Target{MACs: 1000000}},
		{"latency_ms=2.5", Target{LatencyMS: 2.5}},
		{"macs=1e6,latency_ms=3", Target{MACs: 1000000, LatencyMS: 3}},
		{" 4x , macs = 2000 ", Target{ParamsMultiple: 4, MACs: 2000}},
		{"params=9223372036854775807", Target{Params: math.MaxInt64}},
	} {
		got, err := ParseFlag(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseFlag(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "target: empty"},
		{"  ", "target: empty"},
		{"4", `target: got "4", want <m>x or <field>=<number>`},
		{"x", `target.params_multiple: got "", want a number`},
		{"fourx", `target.params_multiple: got "four", want a number`},
		{"0.5x", "target.params_multiple: got 0.5, want >= 1"},
		{"0x", "target.params_multiple: got 0, want > 0 (leave the field out for no limit)"},
		{"params=abc", `target.params: got "abc", want a number`},
		{"params=", `target.params: got "", want a number`},
		{"params=-3", "target.params: got -3, want > 0"},
		{"params=0", "target.params: got 0, want > 0"},
		{"macs=1.5", "target.macs: got 1.5, want a whole number below 2^63"},
		{"macs=1e19", "target.macs: got 1e19, want a whole number below 2^63"},
		{"macs=9223372036854775808", "target.macs: got 9223372036854775808, want a whole number below 2^63"},
		{"latency_ms=NaN", "target.latency_ms: got NaN, want a finite number"},
		{"latency_ms=inf", "target.latency_ms: got inf, want a finite number"},
		{"latency_ms=1e999", "target.latency_ms: got 1e999, want a finite number"},
		{"latency_ms=-2", "target.latency_ms: got -2, want > 0"},
		{"speed=3", "target.speed: unknown field, want one of params_multiple, params, macs, latency_ms"},
		{"params=1,params=2", "target.params: given more than once"},
		{"4x,params_multiple=2", "target.params_multiple: given more than once"},
		{"4x,params=5", "target.params: got 5 together with params_multiple 4, want only one of the two"},
		{"macs=1e6,,latency_ms=3", "target: empty item"},
		{"macs=1e6,", "target: empty item"},
	} {
		got, err := ParseFlag(tc.in)
		if err == nil {
			t.Errorf("ParseFlag(%q) = %+v, want an error containing %q", tc.in, got, tc.want)
			continue
		}
		prefix := "budget: target " + quote(tc.in) + ": "
		if !strings.HasPrefix(err.Error(), prefix+tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseFlag(%q): got %q, want %q wrapping ErrInvalid", tc.in, err, prefix+tc.want)
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
	}{
		{`{"params_multiple": 4}`, Target{ParamsMultiple: 4}},
		{`{"params": 51000, "macs": 1000000}`, Target{Params: 51000, MACs: 1000000}},
		{`{"macs": 1e6, "latency_ms": 2.5}`, Target{MACs: 1000000, LatencyMS: 2.5}},
		{"\n\t {\"latency_ms\":3} \n", Target{LatencyMS: 3}},
		{`{"params": 5E4}`, Target{Params: 50000}},
		{`{"params": 50000.0}`, Target{Params: 50000}},
	} {
		got, err := Parse([]byte(tc.in), "test.json")
		if err != nil || got != tc.want {
			t.Errorf("Parse(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{``, "target: empty document, want a JSON object"},
		{" \n ", "target: empty document"},
		{`null`, "target: got null, want a JSON object"},
		{`[]`, "target: got an array, want a JSON object"},
		{`"params"`, `target: got "params", want a JSON object`},
		{`4`, "target: got 4, want a JSON object"},
		{`{}`, "target: empty, want at least one of"},
		{`{"params_multiple": "four"}`, `target.params_multiple: got "four", want a number`},
		{`{"params_multiple": "4"}`, `target.params_multiple: got "4", want a number`},
		{`{"params_multiple": null}`, "target.params_multiple: got null, want a number"},
		{`{"params": true}`, "target.params: got true, want a number"},
		{`{"params": [1]}`, "target.params: got an array, want a number"},
		{`{"macs": {"max": 1}}`, "target.macs: got an object, want a number"},
		{`{"params_multiple": 0.5}`, "target.params_multiple: got 0.5, want >= 1"},
		{`{"params_multiple": 0}`, "target.params_multiple: got 0, want > 0 (leave the field out for no limit)"},
		{`{"params": 0}`, "target.params: got 0, want > 0"},
		{`{"params": -5}`, "target.params: got -5, want > 0"},
		{`{"params": 50000.5}`, "target.params: got 50000.5, want a whole number below 2^63"},
		{`{"macs": 1e19}`, "target.macs: got 1e19, want a whole number below 2^63"},
		{`{"latency_ms": 1e400}`, "target.latency_ms: got 1e400, want a finite number"},
		{`{"latency_ms": -1}`, "target.latency_ms: got -1, want > 0"},
		{`{"foo": 1}`, "target.foo: unknown field, want one of params_multiple, params, macs, latency_ms"},
		{`{"Params": 1}`, "target.Params: unknown field"},
		{`{"a b\n": 1}`, `target."a b\n": unknown field`},
		{`{"": 1}`, `target."": unknown field`},
		{`{"params": 1, "params": 2}`, "target.params: duplicate field"},
		{`{"params": 1, "params_multiple": 4}`, "target.params: got 1 together with params_multiple 4"},
		{`{"params": 1} {"macs": 2}`, "target: trailing data after the JSON object, at byte 15"},
		{`{"params": 1} x`, "target: trailing data"},
		{`{"params": 1}}`, "target: trailing data"},
		{`{"params": 1`, "target: invalid JSON: unexpected end of input"},
		{`{"params": 1,}`, "target: invalid JSON at byte 14: invalid character '}'"},
		{`{params: 1}`, "target: invalid JSON at byte 2"},
		{`{"params": NaN}`, "target: invalid JSON at byte 12"},
		{`{"params" 1}`, "target: invalid JSON at byte 11"},
		{`{"params": 01}`, "target: invalid JSON"},
	} {
		got, err := Parse([]byte(tc.in), "test.json")
		if err == nil {
			t.Errorf("Parse(%s) = %+v, want an error containing %q", tc.in, got, tc.want)
			continue
		}
		if want := "budget: test.json: " + tc.want; !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s): got %q, want %q... wrapping ErrInvalid", tc.in, err, want)
		}
	}
}

// TestParseTestdata parses every file in testdata: files named bad-* must be rejected,
// the others accepted.
func TestParseTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data, name)
		bad := strings.HasPrefix(filepath.Base(name), "bad-")
		switch {
		case bad && err == nil:
			t.Errorf("%s: got %+v, want an error", name, got)
		case bad && !strings.HasPrefix(err.Error(), "budget: "+name+": target"):
			t.Errorf("%s: error %q does not name the file and the field", name, err)
		case !bad && err != nil:
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestJSONRoundTrip checks that what encoding/json writes for a valid target, Parse
// reads back unchanged.
func TestJSONRoundTrip(t *testing.T) {
	for _, want := range []Target{
		{ParamsMultiple: 4},
		{ParamsMultiple: 1.0000000000000002, LatencyMS: 0.1},
		{Params: math.MaxInt64, MACs: 1},
		{Params: 51000, MACs: 1000000, LatencyMS: 2.5},
	} {
		data, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data, "marshalled")
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", data, got, err, want)
		}
	}
}

// FuzzParse checks that Parse never panics, that whatever it accepts is valid, and that
// it reads back what encoding/json writes for it.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid target %+v: %v", got, err)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := Parse(again, "again"); err != nil || back != got {
			t.Fatalf("round trip of %+v through %s: %+v, %v", got, again, back, err)
		}
	})
}

// FuzzParseFlag checks that ParseFlag never panics and only accepts valid targets.
func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{"4x", "params=50000", "macs=1e6,latency_ms=3", "latency_ms=2.5", "0.5x,", "params=1e19"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFlag(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("ParseFlag accepted an invalid target %+v: %v", got, err)
		}
	})
}
