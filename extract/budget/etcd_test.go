package budget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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

// TestFetchEtcd runs every etcd case against one etcd process; the cases with an
// unreachable endpoint come last, since one of them stops it. crypt's own timeout for
// an etcd read is lowered to 1 s, so that abandoned reads end soon.
func TestFetchEtcd(t *testing.T) {
	t.Setenv("ETCDV3_CLI_TIMEOUT_SECOND", "1")
	srv := startEtcd(t)
	srv.put("/ofa/good", `{"params_multiple": 4, "latency_ms": 2.5}`)
	srv.put("/ofa/malformed", `{"params_multiple": 4`)
	srv.put("/ofa/four", `{"params_multiple": "four"}`)
	srv.put("/ofa/unknown", `{"params_multiple": 4, "Params": 5}`)
	srv.put("/ofa/duplicate", `{"params": 4, "params": 5}`)
	srv.put("/ofa/large", `{"params_multiple": 4}`+strings.Repeat(" ", 200))
	srv.put("/ofa/empty", ``)
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

	for _, tc := range []struct {
		name, key  string
		edit       func(*Source)
		want       []string // substrings of the error
		invalid    bool     // the error must also wrap ErrInvalid
		maxElapsed time.Duration
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Fetch(context.Background(), with(tc.key, tc.edit))
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			checkErr(t, err, tc.want, tc.invalid)
		})
	}

	t.Run("concurrent", func(t *testing.T) {
		// Endpoint sets that crypt caches separately, fetched at once: -race checks
		// that crypt's client cache is never written while viper reads it.
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

	down := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	for _, tc := range []struct {
		name     string
		stopped  bool // stop the shared server first (the cached client then loses it)
		fallback bool
	}{
		{name: "unused port"},
		{name: "unused port with fallback", fallback: true},
		{name: "stopped server", stopped: true},
		{name: "stopped server with fallback", stopped: true, fallback: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Source{EtcdEndpoints: []string{down}, EtcdKey: "/ofa/good",
				Timeout: 200 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond}
			if tc.stopped {
				srv.stop()
				s.EtcdEndpoints = []string{srv.endpoint}
			}
			if tc.fallback {
				s.Fallback = fallback
			}
			start := time.Now()
			got, err := Fetch(context.Background(), s)
			elapsed := time.Since(start)
			// 3 attempts of 200 ms plus 10+20 ms of backoff.
			if elapsed < 600*time.Millisecond || elapsed > 2*time.Second {
				t.Errorf("took %v, want about 630ms", elapsed)
			}
			if !tc.fallback {
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
		})
	}
}

// TestFetchEtcdCryptTimeout covers an unreachable endpoint whose read crypt itself
// gives up on before Timeout: its error text must still count as transient.
func TestFetchEtcdCryptTimeout(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed: apt-get install etcd-server")
	}
	t.Setenv("ETCDV3_CLI_TIMEOUT_SECOND", "1")
	s := Source{EtcdEndpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}, EtcdKey: "/ofa/b",
		Timeout: 3 * time.Second, Retries: -1, Fallback: &Target{MACs: 9}}
	// Wait for reads that earlier tests abandoned, which would delay the first read from
	// a new endpoint set.
	if err := clientCache.Acquire(context.Background(), cacheUnits); err != nil {
		t.Fatal(err)
	}
	clientCache.Release(cacheUnits)
	start := time.Now()
	got, err := Fetch(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("From: %s", got.From)
	if elapsed := time.Since(start); elapsed > 2500*time.Millisecond {
		t.Errorf("took %v, want about 1s (crypt's timeout)", elapsed)
	}
	if got.Target != *s.Fallback || !strings.Contains(got.From, "/ofa/b: context deadline exceeded after 1 attempt)") {
		t.Errorf("got %+v, want the fallback after crypt's deadline", got)
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
