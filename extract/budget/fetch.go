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
	// http://127.0.0.1:2379 (or host:port, read as http). An https endpoint is dialled
	// with TLS, verified against the system's certificate authorities; no client
	// certificate or user is configured, so the cluster must allow anonymous reads.
	EtcdEndpoints []string `mapstructure:"etcd_endpoints"`
	// EtcdKey is the exact etcd key whose value is a JSON target.
	EtcdKey string `mapstructure:"etcd_key"`

	// Timeout bounds each attempt: connecting, waiting and reading the whole response.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries is the number of extra attempts after the first when it fails
	// transiently: the server cannot be reached, does not answer within Timeout, or
	// answers HTTP 5xx or 429 (etcd: unavailable or too many requests). A negative value disables retries. Answers that are
	// definite — any other HTTP status, a missing etcd key, content that is too large,
	// malformed or invalid — are never retried.
	Retries int `mapstructure:"retries"`
	// Backoff is the pause before the first retry; it doubles before each further one.
	// A negative value retries without pausing. Retry-After headers are ignored.
	Backoff time.Duration `mapstructure:"backoff"`
	// MaxBytes bounds the size of the target document. Larger HTTP responses are
	// refused without reading more than MaxBytes+1 bytes of them (at once when their
	// Content-Length says so). An etcd response is refused unread when gRPC's length
	// prefix says it exceeds MaxBytes plus the response's fixed overhead and the key; a
	// value within that overhead of the limit is refused once read.
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

// Validate checks that s names exactly one kind of server, with usable limits. Its
// errors wrap ErrRemote.
func (s Source) Validate() error {
	bad := func(format string, args ...any) error {
		return &remoteError{fmt.Errorf("budget: source: "+format, args...)}
	}
	etcd := len(s.EtcdEndpoints) > 0 || s.EtcdKey != ""
	switch {
	case s.URL == "" && !etcd:
		return bad("want a URL or etcd endpoints and a key")
	case s.URL != "" && etcd:
		return bad("got both a URL and etcd endpoints or key, want one")
	case s.URL != "":
		u, err := url.Parse(s.URL)
		if err != nil {
			return bad("%v", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("URL %q: want http://host/... or https://host/...", s.URL)
		}
	default:
		if len(s.EtcdEndpoints) == 0 {
			return bad("etcd key %q without endpoints", s.EtcdKey)
		}
		if s.EtcdKey == "" {
			return bad("etcd endpoints without a key")
		}
		for _, e := range s.EtcdEndpoints {
			if e == "" || strings.ContainsAny(e, "; \t\n") {
				return bad("etcd endpoint %q: want a URL like http://127.0.0.1:2379", e)
			}
		}
	}
	if s.Timeout < 0 {
		return bad("timeout %v, want > 0 (or 0 for %v)", s.Timeout, DefaultTimeout)
	}
	if s.MaxBytes < 0 {
		return bad("max_bytes %d, want > 0 (or 0 for %d)", s.MaxBytes, DefaultMaxBytes)
	}
	if s.Fallback != nil {
		if err := s.Fallback.Validate(); err != nil {
			return bad("fallback: %w", err)
		}
	}
	return nil
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
