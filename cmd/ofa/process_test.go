//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/dirlock"
	"github.com/ofa-go/ofa/modelfile"
)

// asOFAEnv, set to 1 in a child process's environment, makes the test binary run the ofa
// command line given as its arguments instead of the tests, so that a test can kill a real
// ofa process with SIGKILL (an in-process run cannot be killed that way). The name does not
// start with OFA_, which the configuration reserves for its keys.
const asOFAEnv = "CMD_OFA_TEST_RUN_AS_OFA"

func TestMain(m *testing.M) {
	if os.Getenv(asOFAEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// hangGuard only turns a child that never ends into a failure; no test result depends on
// how long anything takes.
const hangGuard = 5 * time.Minute

// child is an ofa process started by a test.
type child struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	out  *watched
	done chan struct{}
}

// watched collects a child's standard output and error (one stream, in order) and kills
// the child the moment a given text shows up in it.
type watched struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	killOn string
	fired  bool
	kill   func()
}

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.killOn != "" && !w.fired && bytes.Contains(w.buf.Bytes(), []byte(w.killOn)) {
		w.fired = true
		w.kill()
	}
	return len(p), nil
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startOFA starts `ofa args...` as a child process. If killOn is not empty, the child is
// killed with SIGKILL as soon as its output shows killOn.
func startOFA(t *testing.T, killOn string, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, args: args, out: &watched{killOn: killOn}, done: make(chan struct{})}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Env = append(os.Environ(), asOFAEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.out.kill = c.kill
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.kill()
		<-c.done
	})
	return c
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// kill sends SIGKILL (also to a stopped child).
func (c *child) kill() { c.cmd.Process.Signal(syscall.SIGKILL) }

// signal sends sig (SIGSTOP, SIGCONT).
func (c *child) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to ofa %v: %v", sig, c.args, err)
	}
}

// output is what the child printed so far.
func (c *child) output() string { return c.out.String() }

// exited says whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits for the child to end and returns its exit code and whether SIGKILL ended it.
func (c *child) wait() (code int, killed bool) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(hangGuard):
		c.kill()
		<-c.done
		c.t.Fatalf("ofa %v did not end within %v:\n%s", c.args, hangGuard, c.output())
	}
	ps := c.cmd.ProcessState
	ws, _ := ps.Sys().(syscall.WaitStatus)
	return ps.ExitCode(), ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// mustSucceed waits for the child and fails the test unless it exited with code 0.
func (c *child) mustSucceed() string {
	c.t.Helper()
	if code, _ := c.wait(); code != 0 {
		c.t.Fatalf("ofa %v: exit code %d:\n%s", c.args, code, c.output())
	}
	return c.output()
}

// waitFor polls cond (every millisecond) until it holds, and reports false if the child
// ended first.
func (c *child) waitFor(cond func() bool) bool {
	c.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if c.exited() {
			return cond()
		}
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	c.t.Fatalf("ofa %v: the awaited state did not come within %v:\n%s", c.args, hangGuard, c.output())
	return false
}

// killWhen kills the child as soon as cond holds (polled every millisecond); it reports
// false if the child ended before.
func (c *child) killWhen(cond func() bool) bool {
	c.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if c.exited() {
			return false
		}
		if cond() {
			c.kill()
			return true
		}
		time.Sleep(time.Millisecond)
	}
	c.t.Fatalf("ofa %v: the awaited state did not come within %v:\n%s", c.args, hangGuard, c.output())
	return false
}

// exists says whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// locksDir says whether the lock file of dir names pid: that process holds the lock.
func locksDir(dir string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(dir, dirlock.LockName))
	return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid)
}

// markedBy says whether dir carries an incomplete marker written by process pid.
func markedBy(dir string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(dir, modelfile.MarkerIncomplete))
	if err != nil {
		return false
	}
	var m struct {
		PID int `json:"pid"`
	}
	return json.Unmarshal(b, &m) == nil && m.PID == pid
}

// replaced returns a condition that holds once path is another file than it is now (an
// atomic write renames a new file over it).
func replaced(path string) func() bool {
	before, err := os.Stat(path)
	return func() bool {
		now, err2 := os.Stat(path)
		if err2 != nil {
			return false
		}
		return err != nil || !os.SameFile(before, now)
	}
}

// tempFiles lists the files under dir named like the tool's temporary files.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() && checkpoint.IsTempName(d.Name()) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// markers lists the incomplete markers under dir.
func markers(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == modelfile.MarkerIncomplete {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// plantTemp writes a file named like a temporary file that a killed writer left in dir.
func plantTemp(t *testing.T, dir string, n int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "model.safetensors.tmp-"+strconv.Itoa(900000+n))
	if err := os.WriteFile(p, []byte("half a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
