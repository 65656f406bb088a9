package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRemote is wrapped by every error Fetch returns, so callers can tell a target that
// could not be fetched from other failures. Errors about the content a server returned
// wrap ErrInvalid as well.
var ErrRemote = errors.New("remote target")

// Defaults for the zero fields of a Source.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultRetries  = 2
	DefaultBackoff  = 200 * time.Millisecond
	DefaultMaxBytes = 64 << 10
)

// Source says where to fetch a target from: either URL, or EtcdEndpoints and EtcdKey.
// Zero numeric fields mean the defaults above.
type Source struct {
	// URL is an http or https URL answering GET with a JSON target (see Parse) and
	// status 200.
	URL string `mapstructure:"url"`
	// EtcdEndpoints are the client URLs of one etcd v3 cluster, e.g.
	// http://127.0.0.1:2379 (or host:port, read as http), all https or none. An https
	// endpoint is dialled with TLS, verified against the system's certificate
	// authorities; no client certificate or user is configured, so the cluster must
	// allow anonymous reads.
	EtcdEndpoints []string `mapstructure:"etcd_endpoints"`
	// EtcdKey is the exact etcd key whose value is a JSON target.
	EtcdKey string `mapstructure:"etcd_key"`

	// Timeout bounds each attempt: connecting, waiting and reading the whole response.
	// It is at least 1 ms (a bare number in a configuration file is read as
	// nanoseconds, which is never what was meant).
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries is the number of extra attempts after the first when it fails
	// transiently: the server cannot be reached, does not answer within Timeout, or
	// answers HTTP 5xx or 429 (etcd: unavailable or too many requests). -1 disables
	// retries; at most 100 are allowed. Answers that are definite — any other HTTP
	// status, a missing etcd key, content that is too large, malformed or invalid —
	// are never retried.
	Retries int `mapstructure:"retries"`
	// Backoff is the pause before the first retry; it doubles before each further one.
	// A negative value retries without pausing; a positive one is at least 1 ms.
	// Retry-After headers are ignored.
	Backoff time.Duration `mapstructure:"backoff"`
	// MaxBytes bounds the size of the target document, from 10 bytes (the smallest
	// target, {"macs":1}) to 1 GiB. Larger HTTP responses are refused without reading
	// more than MaxBytes+1 bytes of them (at once when their Content-Length says so).
	// An etcd response is refused unread when gRPC's length prefix says it exceeds
	// MaxBytes plus the response's fixed overhead and the key; a value within that
	// overhead of the limit is refused once read.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// Fallback, when set, is returned (and Fetched.From says so) if every attempt failed
	// transiently, i.e. the server is unreachable or unavailable. It is never used when
	// the server gave a definite answer — a malformed or invalid target is always an
	// error — nor when ctx ended first.
	Fallback *Target `mapstructure:"fallback"`
}

// Fetched is a target fetched by Fetch and where it came from.
type Fetched struct {
	Target Target
	// From is the URL, "etcd://<host>/<key>", or "fallback (server unreachable:
	// <error>)" when Source.Fallback was used.
	From string
	// Attempts is the number of attempts made, retries included.
	Attempts int
}

// Bounds on the numeric fields of a Source; values beyond them are mistakes.
const (
	minTimeout  = time.Millisecond // also the smallest positive Backoff
	maxRetries  = 100
	minMaxBytes = int64(len(`{"macs":1}`))
	maxMaxBytes = int64(1 << 30)
)

// Validate checks that s names exactly one kind of server, with usable limits (see
// ValidateAt). Its errors, which Fetch returns as they are, wrap ErrRemote and read
// "budget: source.<field>: ...".
func (s Source) Validate() error {
	if s.URL == "" && len(s.EtcdEndpoints) == 0 && s.EtcdKey == "" {
		return &remoteError{errors.New("budget: source: want a url or etcd_endpoints and an etcd_key")}
	}
	if err := s.check("source"); err != nil {
		return &remoteError{fmt.Errorf("budget: %w", err)}
	}
	return nil
}

// ValidateAt checks s as the configuration section at key (e.g. "extract.remote"),
// naming the offending field by its full key, e.g. "extract.remote.timeout: got -1s,
// want > 0 (or 0 for the default 5s)". It rejects a URL that is not http(s), a URL
// together with etcd settings, etcd endpoints without a key or a key without endpoints,
// an endpoint that is not a URL or host:port, https endpoints mixed with plain ones, a
// Timeout below 1 ms, Retries outside
// -1..100, a positive Backoff below 1 ms, MaxBytes outside 10 bytes..1 GiB (0 is the
// default), and an invalid Fallback (named "<key>.fallback.<field>").
//
// Unlike Validate, it accepts a Source that names no server at all, the state of a
// section left out of the configuration or holding only limits; whether a remote target
// is wanted is the caller's business. Its errors wrap ErrRemote, and ErrInvalid too
// when the Fallback is at fault.
func (s Source) ValidateAt(key string) error {
	if err := s.check(key); err != nil {
		return &remoteError{err}
	}
	return nil
}

// check is ValidateAt without the ErrRemote wrapping.
func (s Source) check(key string) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s", join(key, field), fmt.Sprintf(format, args...))
	}
	etcd := len(s.EtcdEndpoints) > 0 || s.EtcdKey != ""
	switch {
	case s.URL != "" && etcd:
		return bad("", "got both url and etcd_endpoints or etcd_key, want one of the two")
	case s.URL != "":
		u, err := url.Parse(s.URL)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return bad("url", "got %q (%v), want http://host/... or https://host/...", s.URL, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("url", "got %q, want http://host/... or https://host/...", s.URL)
		}
	case len(s.EtcdEndpoints) == 0 && s.EtcdKey != "":
		return bad("etcd_endpoints", "none, want the etcd cluster's client URLs for etcd_key %q", s.EtcdKey)
	case len(s.EtcdEndpoints) > 0 && s.EtcdKey == "":
		return bad("etcd_key", "empty, want the key holding the target on etcd_endpoints")
	}
	for i, e := range s.EtcdEndpoints {
		field := fmt.Sprintf("etcd_endpoints[%d]", i)
		if !validEndpoint(e) {
			return bad(field, "got %q, want a URL like http://127.0.0.1:2379 or host:port", e)
		}
		// The etcd client dials every endpoint the way the first one's scheme says.
		if first := s.EtcdEndpoints[0]; secure(e) != secure(first) {
			return bad(field, "got %q after %q, want all endpoints https or none", e, first)
		}
	}
	switch {
	case s.Timeout < 0:
		return bad("timeout", "got %v, want > 0 (or 0 for the default %v)", s.Timeout, DefaultTimeout)
	case s.Timeout > 0 && s.Timeout < minTimeout:
		return bad("timeout", "got %v, want at least %v (a duration such as 5s)", s.Timeout, minTimeout)
	case s.Retries < -1 || s.Retries > maxRetries:
		return bad("retries", "got %d, want 1..%d (or 0 for the default %d, -1 for none)", s.Retries, maxRetries, DefaultRetries)
	case s.Backoff > 0 && s.Backoff < minTimeout:
		return bad("backoff", "got %v, want at least %v (a duration such as 200ms), or a negative one for no pause", s.Backoff, minTimeout)
	case s.MaxBytes < 0, s.MaxBytes > 0 && s.MaxBytes < minMaxBytes, s.MaxBytes > maxMaxBytes:
		return bad("max_bytes", "got %d, want %d..%d (or 0 for the default %d)", s.MaxBytes, minMaxBytes, maxMaxBytes, DefaultMaxBytes)
	}
	if s.Fallback != nil {
		if err := s.Fallback.ValidateAt(join(key, "fallback")); err != nil {
			return err
		}
	}
	return nil
}

// secure reports whether an etcd endpoint is dialled with TLS.
func secure(endpoint string) bool { return strings.HasPrefix(endpoint, "https://") }

// validEndpoint reports whether e is an etcd client URL, http(s)://host[:port], or a
// bare host:port.
func validEndpoint(e string) bool {
	if e == "" || strings.ContainsAny(e, "; \t\n\r") {
		return false
	}
	if !strings.Contains(e, "://") {
		host, port, err := net.SplitHostPort(e)
		return err == nil && host != "" && port != ""
	}
	u, err := url.Parse(e)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// withDefaults fills the zero fields and turns negative Retries and Backoff into zero.
func (s Source) withDefaults() Source {
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	switch {
	case s.Retries == 0:
		s.Retries = DefaultRetries
	case s.Retries < 0:
		s.Retries = 0
	}
	switch {
	case s.Backoff == 0:
		s.Backoff = DefaultBackoff
	case s.Backoff < 0:
		s.Backoff = 0
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = DefaultMaxBytes
	}
	return s
}

// remoteError marks an error as a Fetch error: it prints as the error it holds and
// wraps both ErrRemote and that error.
type remoteError struct{ err error }

func (e *remoteError) Error() string   { return e.err.Error() }
func (e *remoteError) Unwrap() []error { return []error{ErrRemote, e.err} }

// tooLargeError is a definite answer: the server holds a document over the size limit.
type tooLargeError struct {
	limit  int64
	unread bool // refused from the size the server declared, before reading the document
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("response larger than %d bytes", e.limit)
}

// timeoutError is an attempt that ran out of Timeout.
type timeoutError struct {
	timeout time.Duration
	err     error
}

func (e *timeoutError) Error() string {
	if e.err.Error() == context.DeadlineExceeded.Error() {
		return fmt.Sprintf("no answer within %v", e.timeout)
	}
	return fmt.Sprintf("no answer within %v: %v", e.timeout, e.err)
}

func (e *timeoutError) Unwrap() error { return e.err }

// attempt makes one try within ctx and returns the raw document. transient reports
// whether a failure is worth retrying.
type attempt func(ctx context.Context) (data []byte, transient bool, err error)

// Fetch gets the target s points to, retrying transient failures as Source describes,
// and parses it strictly with Parse. A server that hangs costs at most about
// Timeout×(Retries+1) plus the backoff pauses; cancelling ctx stops at once.
//
// Every error wraps ErrRemote and names the URL or key; transport errors also give the
// number of attempts and the last cause, e.g.
//
//	budget: GET http://127.0.0.1:1234/b: HTTP 500 after 3 attempts
//	budget: http://127.0.0.1:1234/b: response larger than 65536 bytes
//	budget: http://127.0.0.1:1234/b: target.params_multiple: got "four", want a number
func Fetch(ctx context.Context, s Source) (Fetched, error) {
	if err := s.Validate(); err != nil {
		return Fetched{}, err
	}
	s = s.withDefaults()

	var from, op string
	var try attempt
	if s.URL != "" {
		from, op = s.URL, "GET "+s.URL
		client := newHTTPClient()
		defer client.CloseIdleConnections()
		try = func(ctx context.Context) ([]byte, bool, error) {
			return httpAttempt(ctx, client, s.URL, s.MaxBytes)
		}
	} else {
		from = etcdFrom(s.EtcdEndpoints, s.EtcdKey)
		op = from
		try = func(ctx context.Context) ([]byte, bool, error) {
			return etcdAttempt(ctx, s.EtcdEndpoints, s.EtcdKey, s.Timeout, s.MaxBytes)
		}
	}

	data, attempts, transient, err := retry(ctx, s, try)
	if err != nil {
		var tl *tooLargeError
		if errors.As(err, &tl) {
			return Fetched{}, &remoteError{fmt.Errorf("budget: %s: %w", from, err)}
		}
		err = &remoteError{fmt.Errorf("budget: %s: %w after %s", op, err, plural(attempts, "attempt"))}
		if transient && s.Fallback != nil && ctx.Err() == nil {
			return Fetched{
				Target:   *s.Fallback,
				From:     "fallback (server unreachable: " + err.Error() + ")",
				Attempts: attempts,
			}, nil
		}
		return Fetched{}, err
	}
	t, err := Parse(data, from)
	if err != nil {
		return Fetched{}, &remoteError{err}
	}
	return Fetched{Target: t, From: from, Attempts: attempts}, nil
}

// retry runs try until it succeeds, fails definitely, or has failed transiently
// Retries+1 times, each attempt under its own Timeout.
func retry(ctx context.Context, s Source, try attempt) (data []byte, attempts int, transient bool, err error) {
	pause := s.Backoff
	for attempts = 1; ; attempts++ {
		actx, cancel := context.WithTimeout(ctx, s.Timeout)
		data, transient, err = try(actx)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil {
			return data, attempts, false, nil
		}
		if ctx.Err() != nil {
			// The caller gave up: report that rather than the attempt's own error.
			return nil, attempts, false, ctx.Err()
		}
		if timedOut && transient {
			err = &timeoutError{s.Timeout, err}
		}
		if !transient || attempts > s.Retries {
			return nil, attempts, transient, err
		}
		if pause > 0 {
			timer := time.NewTimer(pause)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return nil, attempts, false, ctx.Err()
			}
			pause *= 2
		}
	}
}

// transientNetError reports whether a network error means the server could not be
// reached or did not answer in time, as opposed to a definite failure such as a TLS
// certificate error or an unknown host name.
func transientNetError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTimeout || dns.IsTemporary
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
