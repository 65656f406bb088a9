package budget

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer serves handler and counts the requests it gets.
func countingServer(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, n int)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(w, r, int(n.Add(1)))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// body answers every request with status and body.
func body(status int, s string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(s))
	}
}

// quick is a source with short timeouts, so that failing cases stay fast.
func quick(url string) Source {
	return Source{URL: url, Timeout: 100 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond}
}

func TestFetchHTTP(t *testing.T) {
	fallback := &Target{Params: 123}
	for _, tc := range []struct {
		name     string
		handler  func(w http.ResponseWriter, r *http.Request, n int)
		edit     func(*Source)
		want     Target // on success
		attempts int    // requests the server must see
		errs     []string
		invalid  bool // the error must wrap ErrInvalid
	}{
		{
			name:     "ok",
			handler:  body(200, `{"params_multiple": 4}`),
			want:     Target{ParamsMultiple: 4},
			attempts: 1,
		},
		{
			name:     "ok combination",
			handler:  body(200, "{\"params\": 51000, \"macs\": 1e6, \"latency_ms\": 2.5}\n"),
			want:     Target{Params: 51000, MACs: 1000000, LatencyMS: 2.5},
			attempts: 1,
		},
		{
			name: "500 then ok",
			handler: func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					http.Error(w, "busy", http.StatusInternalServerError)
					return
				}
				body(200, `{"macs": 1000}`)(w, r, n)
			},
			want:     Target{MACs: 1000},
			attempts: 2,
		},
		{
			name:     "429 is retried",
			handler:  body(http.StatusTooManyRequests, "slow down"),
			attempts: 3,
			errs:     []string{"HTTP 429 after 3 attempts"},
		},
		{
			name:     "always 500",
			handler:  body(500, "down"),
			attempts: 3,
			errs:     []string{"budget: GET http://", "/b: HTTP 500 after 3 attempts"},
		},
		{
			name:     "always 500, no retries",
			handler:  body(500, "down"),
			edit:     func(s *Source) { s.Retries = -1 },
			attempts: 1,
			errs:     []string{"HTTP 500 after 1 attempt"},
		},
		{
			name:     "404 is not retried",
			handler:  body(404, "no such budget"),
			attempts: 1,
			errs:     []string{"/b: HTTP 404 after 1 attempt"},
		},
		{
			name:     "404 with fallback is an error",
			handler:  body(404, "no such budget"),
			edit:     func(s *Source) { s.Fallback = fallback },
			attempts: 1,
			errs:     []string{"HTTP 404 after 1 attempt"},
		},
		{
			name:     "wrong type",
			handler:  body(200, `{"params_multiple": "four"}`),
			attempts: 1,
			errs:     []string{`/b: target.params_multiple: got "four", want a number`},
			invalid:  true,
		},
		{
			name:     "unknown field",
			handler:  body(200, `{"params_multiple": 4, "latency": 3}`),
			attempts: 1,
			errs:     []string{`target.latency: unknown field`},
			invalid:  true,
		},
		{
			name:     "empty body",
			handler:  body(200, ""),
			attempts: 1,
			errs:     []string{`target: empty document`},
			invalid:  true,
		},
		{
			name:     "invalid target",
			handler:  body(200, `{"params_multiple": 0.5}`),
			attempts: 1,
			errs:     []string{`target.params_multiple: got 0.5, want >= 1`},
			invalid:  true,
		},
		{
			name:     "malformed with fallback is an error",
			handler:  body(200, `{"params_multiple": 4`),
			edit:     func(s *Source) { s.Fallback = fallback },
			attempts: 1,
			errs:     []string{`target: invalid JSON`},
			invalid:  true,
		},
		{
			name:     "exactly MaxBytes",
			handler:  body(200, `{"macs": 7}`+strings.Repeat(" ", 89)),
			edit:     func(s *Source) { s.MaxBytes = 100 },
			want:     Target{MACs: 7},
			attempts: 1,
		},
		{
			name:     "one byte over MaxBytes",
			handler:  body(200, `{"macs": 7}`+strings.Repeat(" ", 90)),
			edit:     func(s *Source) { s.MaxBytes = 100 },
			attempts: 1,
			errs:     []string{"/b: response larger than 100 bytes"},
		},
		{
			name:     "always 500 with fallback",
			handler:  body(503, "down"),
			edit:     func(s *Source) { s.Fallback = fallback },
			want:     *fallback,
			attempts: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := countingServer(t, tc.handler)
			s := quick(srv.URL + "/b")
			if tc.edit != nil {
				tc.edit(&s)
			}
			got, err := Fetch(context.Background(), s)
			if int(n.Load()) != tc.attempts {
				t.Errorf("server saw %d requests, want %d", n.Load(), tc.attempts)
			}
			if tc.errs != nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				checkErr(t, err, tc.errs, tc.invalid)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Target != tc.want || got.Attempts != tc.attempts {
				t.Errorf("got %+v, want %v after %d attempts", got, tc.want, tc.attempts)
			}
			if s.Fallback != nil && got.Target == *s.Fallback {
				if !strings.HasPrefix(got.From, "fallback (server unreachable: budget: GET ") {
					t.Errorf("From = %q, want it to say the fallback was used", got.From)
				}
			} else if got.From != s.URL {
				t.Errorf("From = %q, want %q", got.From, s.URL)
			}
		})
	}
}

// hang is a handler that answers only after the client has gone away (or 10 s), so that
// the server's Close does not wait for it.
func hang(_ http.ResponseWriter, r *http.Request, _ int) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func TestFetchHTTPHangs(t *testing.T) {
	srv, n := countingServer(t, hang)
	start := time.Now()
	_, err := Fetch(context.Background(), quick(srv.URL+"/b"))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("got no error")
	}
	checkErr(t, err, []string{"no answer within 100ms", "after 3 attempts"}, false)
	// 3 attempts of 100 ms and 10+20 ms of backoff.
	if elapsed < 300*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Errorf("took %v, want about 330ms", elapsed)
	}
	if n.Load() != 3 {
		t.Errorf("server saw %d requests, want 3", n.Load())
	}
}

func TestFetchHTTPSlowBody(t *testing.T) {
	// Headers come at once but the body never ends: Timeout covers reading it too.
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		_, _ = w.Write([]byte(`{"params_multiple": `))
		w.(http.Flusher).Flush()
		hang(w, r, 0)
	})
	s := quick(srv.URL + "/b")
	s.Retries = -1
	start := time.Now()
	_, err := Fetch(context.Background(), s)
	if err == nil {
		t.Fatal("got no error")
	}
	checkErr(t, err, []string{"reading the response", "after 1 attempt"}, false)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("took %v, want about 100ms", elapsed)
	}
}

func TestFetchHTTPCancel(t *testing.T) {
	srv, _ := countingServer(t, hang)
	s := quick(srv.URL + "/b")
	s.Timeout = 5 * time.Second
	s.Fallback = &Target{Params: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := Fetch(ctx, s)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %+v, %v; want the context's error and no fallback", got, err)
	}
	checkErr(t, err, []string{"after 1 attempt"}, false)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("took %v, want about 100ms", elapsed)
	}
}

func TestFetchHTTPTooLarge(t *testing.T) {
	const size = 10 << 20
	chunk := []byte(strings.Repeat(" ", 32<<10))
	for _, declared := range []bool{true, false} {
		t.Run("declared="+strconv.FormatBool(declared), func(t *testing.T) {
			type result struct {
				written int
				err     error
			}
			done := make(chan result, 1)
			srv, _ := countingServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if declared {
					w.Header().Set("Content-Length", strconv.Itoa(size))
				}
				var r result
				for r.written < size && r.err == nil {
					var k int
					k, r.err = w.Write(chunk)
					r.written += k
					w.(http.Flusher).Flush()
				}
				done <- r
			})
			start := time.Now()
			_, err := Fetch(context.Background(), Source{URL: srv.URL + "/big"})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("got no error")
			}
			checkErr(t, err, []string{"/big: response larger than 65536 bytes"}, false)
			if elapsed > time.Second {
				t.Errorf("took %v, want it to stop reading at once", elapsed)
			}
			// The client hangs up after at most MaxBytes+1 bytes, so the server cannot
			// deliver all 10 MiB (loopback socket buffers hold a few MiB at most).
			select {
			case r := <-done:
				t.Logf("server wrote %d bytes before: %v", r.written, r.err)
				if r.err == nil {
					t.Errorf("server wrote all %d bytes; want the client to have stopped reading", r.written)
				}
			case <-time.After(5 * time.Second):
				t.Error("server still writing 5s after the client gave up")
			}
		})
	}
}

func TestFetchHTTPUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/b"
	srv.Close() // nothing listens there any more: connection refused

	t.Run("error", func(t *testing.T) {
		start := time.Now()
		got, err := Fetch(context.Background(), quick(url))
		if err == nil {
			t.Fatalf("got %+v, want an error", got)
		}
		checkErr(t, err, []string{"budget: GET " + url + ": ", "connection refused after 3 attempts"}, false)
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("took %v, want about 30ms of backoff", elapsed)
		}
	})
	t.Run("fallback", func(t *testing.T) {
		s := quick(url)
		s.Fallback = &Target{ParamsMultiple: 2, MACs: 5}
		got, err := Fetch(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if got.Target != *s.Fallback || got.Attempts != 3 {
			t.Errorf("got %+v, want the fallback after 3 attempts", got)
		}
		for _, w := range []string{"fallback (server unreachable: budget: GET " + url, "connection refused after 3 attempts)"} {
			if !strings.Contains(got.From, w) {
				t.Errorf("From = %q, want it to contain %q", got.From, w)
			}
		}
	})
}

func TestEtcdFrom(t *testing.T) {
	for _, tc := range []struct {
		endpoints []string
		key, want string
	}{
		{[]string{"http://127.0.0.1:2379"}, "/ofa/b", "etcd://127.0.0.1:2379/ofa/b"},
		{[]string{"http://a:1", "b:2"}, "ofa/b", "etcd://a:1,b:2/ofa/b"},
	} {
		if got := etcdFrom(tc.endpoints, tc.key); got != tc.want {
			t.Errorf("etcdFrom(%q, %q) = %q, want %q", tc.endpoints, tc.key, got, tc.want)
		}
	}
}
