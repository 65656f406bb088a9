package budget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"

	cryptetcd "github.com/sagikazarmark/crypt/backend/etcd"
	"github.com/spf13/viper"
	_ "github.com/spf13/viper/remote" // registers viper's etcd3 remote provider (crypt)
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/semaphore"
)

// How an etcd key is read, and why it looks the way it does:
//
//   - Transport goes through viper's remote provider (AddRemoteProvider("etcd3", ...),
//     ReadRemoteConfig), which hands the raw value to a decoder. Viper's own JSON
//     decoder would lower-case keys, keep the last of duplicate keys and keep unknown
//     ones, so the viper instance gets a decoder that only captures the bytes; Parse
//     then decodes them strictly, exactly as for HTTP.
//   - Viper logs the cause of a failed read and returns only "No Files Found", so the
//     instance gets a logger that captures the cause. Whether it is transient is judged
//     from its text, the only form viper passes it on in.
//   - ReadRemoteConfig takes no context. crypt bounds each etcd Get by its own timeout
//     (3 s, or ETCDV3_CLI_TIMEOUT_SECOND seconds), but Timeout may be shorter, so the
//     read runs in a goroutine that an attempt abandons when Timeout passes; the
//     goroutine ends by itself when crypt's timeout does.
//   - crypt caches one etcd client per endpoint set, for the life of the process, in a
//     map that it reads without a lock and writes when it meets a new endpoint set; a
//     read racing a write is a fatal runtime error. So before viper first reads from an
//     endpoint set, this package creates crypt's client for it (the call viper's
//     provider would make, with the same configuration) while no read of its own is in
//     flight, and every read through viper holds a share of clientCache. Reads of known
//     endpoint sets therefore run concurrently; abandoned reads delay only the first
//     read of a new endpoint set, within its attempt's Timeout. (Other code in the
//     process that uses viper's remote provider is outside this guard.)
//   - Size: viper reads the whole value, so MaxBytes is checked after the read. etcd
//     itself refuses values over --max-request-bytes (1.5 MiB by default), which bounds
//     what a read can cost.

// clientCache guards crypt's client cache (see above): a read through viper holds one
// unit, creating a client all of them. It guards third-party package state, which is
// why it is package-level.
var (
	clientCache = semaphore.NewWeighted(cacheUnits)
	warmMu      sync.Mutex
	warm        = map[string]bool{} // crypt's cache keys that have a client
)

const cacheUnits = 1 << 30

// etcdFrom is the display name of a key: etcd://<host>[,<host>...]/<key>.
func etcdFrom(endpoints []string, key string) string {
	hosts := make([]string, len(endpoints))
	for i, e := range endpoints {
		hosts[i] = e
		if u, err := url.Parse(e); err == nil && u.Host != "" {
			hosts[i] = u.Host
		}
	}
	return "etcd://" + strings.Join(hosts, ",") + "/" + strings.TrimPrefix(key, "/")
}

// acquireRead takes a share of clientCache for a read from endpoints, first creating
// crypt's client for them if this process has not yet done so.
func acquireRead(ctx context.Context, endpoints []string) error {
	sorted := slices.Sorted(slices.Values(endpoints))
	key := strings.Join(sorted, ",") // crypt's cache key
	warmMu.Lock()
	known := warm[key]
	warmMu.Unlock()
	if !known {
		if err := clientCache.Acquire(ctx, cacheUnits); err != nil {
			return errors.New("waiting for earlier, abandoned etcd reads to end")
		}
		// crypt sorts the slice it is given, so it gets a copy.
		_, err := cryptetcd.NewFromV3Config(clientv3.Config{Endpoints: sorted})
		if err == nil {
			warmMu.Lock()
			warm[key] = true
			warmMu.Unlock()
		}
		clientCache.Release(cacheUnits)
		if err != nil {
			return &definiteError{err}
		}
	}
	if err := clientCache.Acquire(ctx, 1); err != nil {
		return errors.New("waiting for earlier, abandoned etcd reads to end")
	}
	return nil
}

// definiteError is a failure that retrying cannot cure.
type definiteError struct{ err error }

func (e *definiteError) Error() string { return e.err.Error() }
func (e *definiteError) Unwrap() error { return e.err }

type etcdResult struct {
	data      []byte
	transient bool
	err       error
}

// etcdAttempt reads key once through viper, giving up when ctx ends.
func etcdAttempt(ctx context.Context, endpoints []string, key string, maxBytes int64) ([]byte, bool, error) {
	if err := acquireRead(ctx, endpoints); err != nil {
		var de *definiteError
		return nil, !errors.As(err, &de), err
	}
	done := make(chan etcdResult, 1) // buffered: an abandoned read must not block
	go func() {
		defer clientCache.Release(1)
		done <- readViper(strings.Join(endpoints, ";"), key)
	}()
	select {
	case r := <-done:
		if r.err == nil && int64(len(r.data)) > maxBytes {
			return nil, false, &tooLargeError{maxBytes}
		}
		return r.data, r.transient, r.err
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// readViper reads key from the etcd cluster at endpoint (';'-separated) through viper's
// remote provider and returns the raw value.
func readViper(endpoint, key string) (r etcdResult) {
	defer func() {
		// A panic here would take the whole program down from a goroutine nobody waits
		// for; make it an ordinary (definite) error instead.
		if p := recover(); p != nil {
			r = etcdResult{err: fmt.Errorf("viper remote read panicked: %v", p)}
		}
	}()
	raw := &rawDecoder{}
	logs := &causeLog{}
	v := viper.NewWithOptions(viper.WithDecoderRegistry(raw), viper.WithLogger(slog.New(logs)))
	if err := v.AddRemoteProvider("etcd3", endpoint, key); err != nil {
		return etcdResult{err: err}
	}
	v.SetConfigType("json")
	err := v.ReadRemoteConfig()
	if raw.called {
		return etcdResult{data: raw.data}
	}
	cause := logs.last()
	if cause == "" {
		if err == nil {
			err = errors.New("viper returned no value")
		}
		return etcdResult{err: err}
	}
	// crypt's words for a missing key: "getting from etcd with key [k], res count 0 not
	// equal to 1".
	if strings.Contains(cause, "res count 0 ") {
		return etcdResult{err: fmt.Errorf("key %q not found", key)}
	}
	return etcdResult{transient: unreachable(cause), err: errors.New(cause)}
}

// unreachable reports whether the text of an etcd client error means that no endpoint
// answered in time (gRPC keeps redialling a refused endpoint until the deadline).
func unreachable(cause string) bool {
	for _, s := range []string{"context deadline exceeded", "DeadlineExceeded", "Unavailable",
		"connection refused", "connection reset", "no route to host", "network is unreachable"} {
		if strings.Contains(cause, s) {
			return true
		}
	}
	return false
}

// rawDecoder is a viper decoder registry whose every decoder only keeps the raw bytes.
type rawDecoder struct {
	data   []byte
	called bool
}

func (d *rawDecoder) Decoder(string) (viper.Decoder, error) { return d, nil }

func (d *rawDecoder) Decode(b []byte, _ map[string]any) error {
	d.data, d.called = bytes.Clone(b), true
	return nil
}

// causeLog is a slog handler that keeps the messages viper logs at error level, which is
// where it reports why a remote read failed.
type causeLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *causeLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *causeLog) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *causeLog) WithGroup(string) slog.Handler                { return h }

func (h *causeLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, strings.TrimPrefix(r.Message, "get remote config: "))
	return nil
}

func (h *causeLog) last() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.msgs) == 0 {
		return ""
	}
	return h.msgs[len(h.msgs)-1]
}
