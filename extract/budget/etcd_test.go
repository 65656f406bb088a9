package budget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcdServer is a real etcd process on loopback ports, private to one test.
type etcdServer struct {
	t        *testing.T
	endpoint string // http://127.0.0.1:<port>
	cmd      *exec.Cmd
	exited   chan struct{}
	out      *lockedBuffer
	client   *clientv3.Client
	stopOnce sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd starts etcd with its data in a temporary directory, waits until it serves
// reads, and stops it when the test ends. It skips the test when etcd is not installed.
func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed: apt-get install etcd-server")
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	s := &etcdServer{t: t, endpoint: client, exited: make(chan struct{}), out: &lockedBuffer{}}
	s.cmd = exec.Command(bin,
		"--name", "budget-test",
		"--data-dir", t.TempDir(),
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "budget-test="+peer,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-outputs", "stderr",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.stop)

	s.client, err = clientv3.New(clientv3.Config{
		Endpoints: []string{client}, DialTimeout: time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { s.client.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := s.client.Get(ctx, "health-probe")
		cancel()
		if err == nil {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("etcd exited during startup:\n%s", s.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready after 10s: %v\n%s", err, s.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends etcd: SIGTERM, then SIGKILL if it has not exited within 5 s.
func (s *etcdServer) stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

func (s *etcdServer) put(key, value string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.client.Put(ctx, key, value); err != nil {
		s.t.Fatalf("put %s: %v", key, err)
	}
}

// TestFetchEtcd runs every etcd case against one etcd process; the cases with a
// stopped server come last, since they stop it.
func TestFetchEtcd(t *testing.T) {
	srv := startEtcd(t)
	srv.put("/ofa/good", `{"params_multiple": 4, "latency_ms": 2.5}`)
	srv.put("/ofa/malformed", `{"params_multiple": 4`)
	srv.put("/ofa/four", `{"params_multiple": "four"}`)
	srv.put("/ofa/unknown", `{"params_multiple": 4, "Params": 5}`)
	srv.put("/ofa/duplicate", `{"params": 4, "params": 5}`)
	srv.put("/ofa/large", `{"params_multiple": 4}`+strings.Repeat(" ", 200))
	srv.put("/ofa/huge", `{"params_multiple": 4}`+strings.Repeat(" ", 1<<20))
	srv.put("/ofa/empty", ``)
	// A value of exactly 100 bytes under a long key: the gRPC receive limit must leave
	// room for the key and the response around the value.
	longKey := "/ofa/" + strings.Repeat("k", 1000)
	srv.put(longKey, `{"macs": 7}`+strings.Repeat(" ", 89))
	srv.put(longKey+"+", `{"macs": 7}`+strings.Repeat(" ", 90))
	fallback := &Target{Params: 123}

	base := Source{EtcdEndpoints: []string{srv.endpoint}, Timeout: 2 * time.Second, Retries: 2, Backoff: 10 * time.Millisecond}
	with := func(key string, edit func(*Source)) Source {
		s := base
		s.EtcdKey = key
		if edit != nil {
			edit(&s)
		}
		return s
	}
	host := strings.TrimPrefix(srv.endpoint, "http://")

	t.Run("ok", func(t *testing.T) {
		got, err := Fetch(context.Background(), with("/ofa/good", nil))
		if err != nil {
			t.Fatal(err)
		}
		want := Fetched{Target: Target{ParamsMultiple: 4, LatencyMS: 2.5}, From: "etcd://" + host + "/ofa/good", Attempts: 1}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("ok with fallback set", func(t *testing.T) {
		got, err := Fetch(context.Background(), with("/ofa/good", func(s *Source) { s.Fallback = fallback }))
		if err != nil || got.Target != (Target{ParamsMultiple: 4, LatencyMS: 2.5}) {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("exactly MaxBytes under a long key", func(t *testing.T) {
		got, err := Fetch(context.Background(), with(longKey, func(s *Source) { s.MaxBytes = 100 }))
		if err != nil || got.Target != (Target{MACs: 7}) {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("host:port endpoint", func(t *testing.T) {
		got, err := Fetch(context.Background(), with("/ofa/good", func(s *Source) { s.EtcdEndpoints = []string{host} }))
		if err != nil || got.Target != (Target{ParamsMultiple: 4, LatencyMS: 2.5}) {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	for _, tc := range []struct {
		name, key string
		edit      func(*Source)
		want      []string // substrings of the error
		invalid   bool     // the error must also wrap ErrInvalid
	}{
		{name: "missing key", key: "/ofa/missing", want: []string{`etcd://` + host + `/ofa/missing: key "/ofa/missing" not found after 1 attempt`}},
		{name: "missing key with fallback", key: "/ofa/missing", edit: func(s *Source) { s.Fallback = fallback }, want: []string{`key "/ofa/missing" not found`}},
		{name: "malformed", key: "/ofa/malformed", want: []string{"/ofa/malformed: target: invalid JSON"}, invalid: true},
		{name: "malformed with fallback", key: "/ofa/malformed", edit: func(s *Source) { s.Fallback = fallback }, want: []string{"invalid JSON"}, invalid: true},
		{name: "wrong type", key: "/ofa/four", want: []string{`/ofa/four: target.params_multiple: got "four", want a number`}, invalid: true},
		{name: "unknown field", key: "/ofa/unknown", want: []string{`target.Params: unknown field`}, invalid: true},
		{name: "duplicate field", key: "/ofa/duplicate", want: []string{`target.params: duplicate field`}, invalid: true},
		{name: "empty value", key: "/ofa/empty", want: []string{`target: empty document`}, invalid: true},
		{name: "too large", key: "/ofa/large", edit: func(s *Source) { s.MaxBytes = 100 }, want: []string{"etcd://" + host + "/ofa/large: response larger than 100 bytes"}},
		{name: "one byte over MaxBytes under a long key", key: longKey + "+", edit: func(s *Source) { s.MaxBytes = 100 }, want: []string{"+: response larger than 100 bytes"}},
		{name: "far too large", key: "/ofa/huge", edit: func(s *Source) { s.MaxBytes = 100 }, want: []string{"etcd://" + host + "/ofa/huge: response larger than 100 bytes"}},
		{name: "far too large with fallback", key: "/ofa/huge", edit: func(s *Source) { s.Fallback = fallback }, want: []string{"/ofa/huge: response larger than 65536 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Fetch(context.Background(), with(tc.key, tc.edit))
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			checkErr(t, err, tc.want, tc.invalid)
		})
	}

	t.Run("size checked before and after reading", func(t *testing.T) {
		// A value far over the limit is refused by gRPC from the response's length
		// prefix; one just over it is read and then refused.
		for key, unread := range map[string]bool{"/ofa/huge": true, "/ofa/large": false} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, transient, err := etcdAttempt(ctx, []string{srv.endpoint}, key, 2*time.Second, 100)
			cancel()
			var tl *tooLargeError
			if !errors.As(err, &tl) || transient || tl.unread != unread {
				t.Errorf("%s: got %#v (transient %v), want a definite tooLargeError with unread %v", key, err, transient, unread)
			}
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		// Each fetch has a client of its own: -race checks that they share no state.
		a, b := srv.endpoint, host
		sets := [][]string{{a}, {b}, {a, a}, {b, a}, {a, b, a}}
		var wg sync.WaitGroup
		errs := make(chan error, 4*len(sets))
		for i := range 4 * len(sets) {
			wg.Go(func() {
				s := with("/ofa/good", nil)
				s.EtcdEndpoints = sets[i%len(sets)]
				got, err := Fetch(context.Background(), s)
				if err == nil && got.Target != (Target{ParamsMultiple: 4, LatencyMS: 2.5}) {
					err = fmt.Errorf("got %+v", got)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	srv.stop()
	for _, withFallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("stopped server, fallback %v", withFallback), func(t *testing.T) {
			checkUnreachable(t, srv.endpoint, withFallback)
		})
	}
}

// TestFetchEtcdUnreachable needs no etcd: nothing listens on the port.
func TestFetchEtcdUnreachable(t *testing.T) {
	down := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	for _, withFallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback %v", withFallback), func(t *testing.T) {
			checkUnreachable(t, down, withFallback)
		})
	}
}

// checkUnreachable fetches from an endpoint where nothing answers: every attempt must
// last its Timeout, and the fetch must fail or return the fallback after all of them.
func checkUnreachable(t *testing.T, endpoint string, withFallback bool) {
	t.Helper()
	fallback := &Target{Params: 123}
	s := Source{EtcdEndpoints: []string{endpoint}, EtcdKey: "/ofa/good",
		Timeout: 200 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond}
	if withFallback {
		s.Fallback = fallback
	}
	start := time.Now()
	got, err := Fetch(context.Background(), s)
	elapsed := time.Since(start)
	// 3 attempts of 200 ms plus 10+20 ms of backoff.
	if elapsed < 600*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("took %v, want about 630ms", elapsed)
	}
	if !withFallback {
		if err == nil {
			t.Fatalf("got %+v, want an error", got)
		}
		checkErr(t, err, []string{"/ofa/good: no answer within 200ms after 3 attempts"}, false)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != *fallback || got.Attempts != 3 ||
		!strings.HasPrefix(got.From, "fallback (server unreachable: budget: etcd://") {
		t.Errorf("got %+v, want the fallback after 3 attempts", got)
	}
}

// TestFetchEtcdCancel checks that cancelling the context stops an etcd read that is
// waiting for a connection, long before Timeout, and that the fallback is not used.
func TestFetchEtcdCancel(t *testing.T) {
	s := Source{EtcdEndpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}, EtcdKey: "/ofa/b",
		Timeout: time.Minute, Fallback: &Target{MACs: 9}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	got, err := Fetch(ctx, s)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %+v, %v; want the context's error and no fallback", got, err)
	}
	checkErr(t, err, []string{"/ofa/b: context canceled after 1 attempt"}, false)
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("took %v, want it to stop when the context was cancelled, not after Timeout", elapsed)
	}
}

// TestRecvLimit checks that the gRPC receive limit leaves room for the largest
// encoding of a response holding a value of exactly maxBytes.
func TestRecvLimit(t *testing.T) {
	for _, tc := range []struct {
		keyLen   int
		maxBytes int64
	}{{1, 10}, {5, 100}, {1000, 100}, {200, DefaultMaxBytes}, {1 << 16, 1 << 20}} {
		key := strings.Repeat("k", tc.keyLen)
		worst := &etcdserverpb.RangeResponse{
			Header: &etcdserverpb.ResponseHeader{ClusterId: math.MaxUint64, MemberId: math.MaxUint64, Revision: -1, RaftTerm: math.MaxUint64},
			Kvs: []*mvccpb.KeyValue{{Key: []byte(key), CreateRevision: -1, ModRevision: -1, Version: -1,
				Value: make([]byte, tc.maxBytes), Lease: -1}},
			More:  true,
			Count: -1,
		}
		if size, limit := worst.Size(), recvLimit(key, tc.maxBytes); size > limit {
			t.Errorf("key of %d bytes, value of %d: response of %d bytes over the limit %d", tc.keyLen, tc.maxBytes, size, limit)
		}
	}
	if got := recvLimit("k", maxMaxBytes); got <= int(maxMaxBytes) {
		t.Errorf("recvLimit at the largest MaxBytes = %d, want above %d", got, maxMaxBytes)
	}
	if got := recvLimit("k", math.MaxInt64); got != math.MaxInt32 {
		t.Errorf("recvLimit(MaxInt64) = %d, want MaxInt32", got)
	}
}

// checkErr checks that err is a Fetch error containing each of want, and whether it
// is about invalid content.
func checkErr(t *testing.T, err error, want []string, invalid bool) {
	t.Helper()
	t.Logf("error: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if !errors.Is(err, ErrRemote) {
		t.Errorf("error %q does not wrap ErrRemote", err)
	}
	if got := errors.Is(err, ErrInvalid); got != invalid {
		t.Errorf("error %q: errors.Is(ErrInvalid) = %v, want %v", err, got, invalid)
	}
}

// TestEtcdFailure checks how errors of the etcd client are classified.
func TestEtcdFailure(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		err       error
		transient bool
		want      string
	}{
		{"context ended", ended, status.Error(codes.Unavailable, "connection refused"), true, "context canceled"},
		{"etcd unavailable", live, rpctypes.ErrNoLeader, true, "etcdserver: no leader"},
		{"etcd too many requests", live, rpctypes.ErrTooManyRequests, true, "etcdserver: too many requests"},
		{"etcd permission denied", live, rpctypes.ErrPermissionDenied, false, "etcdserver: permission denied"},
		{"etcd user required", live, rpctypes.ErrUserEmpty, false, "etcdserver: user name is empty"},
		{"gRPC receive limit", live, status.Error(codes.ResourceExhausted, "grpc: received message larger than max (300 vs. 200)"), false, "response larger than 100 bytes"},
		{"transport unavailable", live, status.Error(codes.Unavailable, "connection reset"), true, "connection reset"},
		{"unimplemented", live, status.Error(codes.Unimplemented, "unknown service etcdserverpb.KV"), false, "unknown service etcdserverpb.KV"},
		{"network", live, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true, "dial: connection refused"},
		{"other", live, errors.New("bad endpoint"), false, "bad endpoint"},
	} {
		_, transient, err := etcdFailure(tc.ctx, tc.err, 100)
		if transient != tc.transient || err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v (transient %v), want %q (transient %v)", tc.name, err, transient, tc.want, tc.transient)
		}
	}
}
