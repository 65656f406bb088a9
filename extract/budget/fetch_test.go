package budget

import (
	"context"
	"errors"
	"testing"
	"time"
)

// sourceCases are Sources with one bad field each, and the error ValidateAt("<key>")
// gives for them, with <key> standing for the section's key.
var sourceCases = []struct {
	s       Source
	want    string
	invalid bool // the error also wraps ErrInvalid (the fallback is at fault)
}{
	{Source{URL: "http://x/b", EtcdKey: "k"}, "<key>: got both url and etcd_endpoints or etcd_key, want one of the two", false},
	{Source{URL: "http://x/b", EtcdEndpoints: []string{"http://e:1"}}, "<key>: got both url and etcd_endpoints or etcd_key, want one of the two", false},
	{Source{URL: "ftp://x/b"}, `<key>.url: got "ftp://x/b", want http://host/... or https://host/...`, false},
	{Source{URL: "localhost:8080/b"}, `<key>.url: got "localhost:8080/b", want http://host/... or https://host/...`, false},
	{Source{URL: "http:///b"}, `<key>.url: got "http:///b", want http://host/... or https://host/...`, false},
	{Source{URL: "http://x/%zz"}, `<key>.url: got "http://x/%zz" (invalid URL escape "%zz"), want http://host/... or https://host/...`, false},
	{Source{EtcdKey: "k"}, `<key>.etcd_endpoints: none, want the etcd cluster's client URLs for etcd_key "k"`, false},
	{Source{EtcdEndpoints: []string{"http://127.0.0.1:2379"}}, "<key>.etcd_key: empty, want the key holding the target on etcd_endpoints", false},
	{Source{EtcdEndpoints: []string{"a;b"}, EtcdKey: "k"}, `<key>.etcd_endpoints[0]: got "a;b", want a URL like http://127.0.0.1:2379 or host:port`, false},
	{Source{EtcdEndpoints: []string{"http://e:1", ""}, EtcdKey: "k"}, `<key>.etcd_endpoints[1]: got "", want a URL like http://127.0.0.1:2379 or host:port`, false},
	{Source{EtcdEndpoints: []string{"localhost"}, EtcdKey: "k"}, `<key>.etcd_endpoints[0]: got "localhost", want a URL like http://127.0.0.1:2379 or host:port`, false},
	{Source{EtcdEndpoints: []string{"ftp://e:1"}, EtcdKey: "k"}, `<key>.etcd_endpoints[0]: got "ftp://e:1", want a URL like http://127.0.0.1:2379 or host:port`, false},
	{Source{EtcdEndpoints: []string{"http://e:1/v3"}, EtcdKey: "k"}, `<key>.etcd_endpoints[0]: got "http://e:1/v3", want a URL like http://127.0.0.1:2379 or host:port`, false},
	{Source{EtcdEndpoints: []string{"http://"}, EtcdKey: "k"}, `<key>.etcd_endpoints[0]: got "http://", want a URL like http://127.0.0.1:2379 or host:port`, false},
	{Source{EtcdEndpoints: []string{"https://e:1", "e:2"}, EtcdKey: "k"}, `<key>.etcd_endpoints[1]: got "e:2" after "https://e:1", want all endpoints https or none`, false},
	{Source{EtcdEndpoints: []string{"http://e:1", "https://e:2"}, EtcdKey: "k"}, `<key>.etcd_endpoints[1]: got "https://e:2" after "http://e:1", want all endpoints https or none`, false},
	{Source{URL: "http://x/b", Timeout: -time.Second}, "<key>.timeout: got -1s, want > 0 (or 0 for the default 5s)", false},
	{Source{URL: "http://x/b", Timeout: -1}, "<key>.timeout: got -1ns, want > 0 (or 0 for the default 5s)", false},
	{Source{URL: "http://x/b", Timeout: 5}, "<key>.timeout: got 5ns, want at least 1ms (a duration such as 5s)", false},
	{Source{URL: "http://x/b", Retries: -2}, "<key>.retries: got -2, want 1..100 (or 0 for the default 2, -1 for none)", false},
	{Source{URL: "http://x/b", Retries: 101}, "<key>.retries: got 101, want 1..100 (or 0 for the default 2, -1 for none)", false},
	{Source{URL: "http://x/b", Backoff: 200}, "<key>.backoff: got 200ns, want at least 1ms (a duration such as 200ms), or a negative one for no pause", false},
	{Source{URL: "http://x/b", MaxBytes: -1}, "<key>.max_bytes: got -1, want 10..1073741824 (or 0 for the default 65536)", false},
	{Source{URL: "http://x/b", MaxBytes: 9}, "<key>.max_bytes: got 9, want 10..1073741824 (or 0 for the default 65536)", false},
	{Source{URL: "http://x/b", MaxBytes: 1<<30 + 1}, "<key>.max_bytes: got 1073741825, want 10..1073741824 (or 0 for the default 65536)", false},
	{Source{URL: "http://x/b", Fallback: &Target{}}, "<key>.fallback: empty, want at least one of params_multiple, params, macs, latency_ms", true},
	{Source{URL: "http://x/b", Fallback: &Target{ParamsMultiple: 0.5}}, "<key>.fallback.params_multiple: got 0.5, want >= 1", true},
	{Source{URL: "http://x/b", Fallback: &Target{MACs: -3}}, "<key>.fallback.macs: got -3, want > 0", true},
}

// validSources are accepted by both Validate and ValidateAt.
var validSources = []Source{
	{URL: "https://example.com/b"},
	{URL: "http://127.0.0.1:8080/b?v=1", Timeout: time.Millisecond, Retries: -1, Backoff: -1, MaxBytes: 10},
	{URL: "http://x/b", Timeout: time.Minute, Retries: 100, Backoff: time.Millisecond, MaxBytes: 1 << 30},
	{EtcdEndpoints: []string{"http://127.0.0.1:2379", "127.0.0.1:22379", "http://etcd.example.com:2379/", "[::1]:2379"},
		EtcdKey: "/ofa/b", Fallback: &Target{MACs: 1}},
	{EtcdEndpoints: []string{"https://a.example.com:2379", "https://b.example.com:2379"}, EtcdKey: "ofa"},
}

func TestSourceValidate(t *testing.T) {
	for _, tc := range sourceCases {
		want := "budget: " + replaceKey(tc.want, "source")
		err := tc.s.Validate()
		checkValidateErr(t, tc.s, err, want, tc.invalid)
		if _, ferr := Fetch(context.Background(), tc.s); ferr == nil || ferr.Error() != want {
			t.Errorf("%+v: Fetch gave %v, want the Validate error", tc.s, ferr)
		}
	}
	err := Source{}.Validate()
	checkValidateErr(t, Source{}, err, "budget: source: want a url or etcd_endpoints and an etcd_key", false)
	for _, s := range validSources {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

func TestSourceValidateAt(t *testing.T) {
	for _, tc := range sourceCases {
		checkValidateErr(t, tc.s, tc.s.ValidateAt("extract.remote"), replaceKey(tc.want, "extract.remote"), tc.invalid)
	}
	// A section that names no server is checked field by field, and accepted when they
	// are fine: whether a remote target is wanted is decided elsewhere.
	for _, tc := range []struct {
		s    Source
		want string
	}{
		{Source{Timeout: -time.Second}, "extract.remote.timeout: got -1s, want > 0 (or 0 for the default 5s)"},
		{Source{MaxBytes: -1}, "extract.remote.max_bytes: got -1, want 10..1073741824 (or 0 for the default 65536)"},
		{Source{Retries: -3}, "extract.remote.retries: got -3, want 1..100 (or 0 for the default 2, -1 for none)"},
		{Source{Fallback: &Target{ParamsMultiple: -2}}, "extract.remote.fallback.params_multiple: got -2, want >= 1"},
	} {
		checkValidateErr(t, tc.s, tc.s.ValidateAt("extract.remote"), tc.want, tc.s.Fallback != nil)
	}
	for _, s := range append(validSources, Source{}, Source{Timeout: time.Second, Retries: 3, Fallback: &Target{Params: 5}}) {
		if err := s.ValidateAt("extract.remote"); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

func replaceKey(msg, key string) string {
	const placeholder = "<key>"
	return key + msg[len(placeholder):]
}

func checkValidateErr(t *testing.T, s Source, err error, want string, invalid bool) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%+v: no error, want %q", s, want)
	case err.Error() != want:
		t.Errorf("%+v: got %q, want %q", s, err, want)
	case !errors.Is(err, ErrRemote):
		t.Errorf("%+v: error %q does not wrap ErrRemote", s, err)
	case errors.Is(err, ErrInvalid) != invalid:
		t.Errorf("%+v: error %q: errors.Is(ErrInvalid) = %v, want %v", s, err, !invalid, invalid)
	}
}
