package budget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"

	"github.com/spf13/viper"
	_ "github.com/spf13/viper/remote" // registers viper's etcd3 remote provider (crypt)
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
//     map it reads without a lock. Reads are therefore serialised process-wide through
//     remoteSlot; an attempt that cannot get the slot within its Timeout (because an
//     abandoned read still holds it) fails transiently like any other timeout.
//   - Size: viper reads the whole value, so MaxBytes is checked after the read. etcd
//     itself refuses values over --max-request-bytes (1.5 MiB by default), which bounds
//     what a read can cost.

// remoteSlot serialises reads through viper's remote provider (see above). It guards
// third-party package state, which is why it is a package-level variable.
var remoteSlot = make(chan struct{}, 1)

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

type etcdResult struct {
	data      []byte
	transient bool
	err       error
}

// etcdAttempt reads key once through viper, giving up when ctx ends.
func etcdAttempt(ctx context.Context, endpoints []string, key string, maxBytes int64) ([]byte, bool, error) {
	select {
	case remoteSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, true, errors.New("an earlier, abandoned etcd read is still running")
	}
	done := make(chan etcdResult, 1) // buffered: an abandoned read must not block
	go func() {
		defer func() { <-remoteSlot }()
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
