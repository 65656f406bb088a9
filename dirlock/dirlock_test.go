package dirlock

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// holdEnv, when set to a directory, makes the test binary a helper process that locks it,
// says "locked" on standard output and holds the lock until its standard input closes.
const holdEnv = "DIRLOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		os.Exit(hold(dir))
	}
	os.Exit(m.Run())
}

func hold(dir string) int {
	unlock, err := Lock(dir)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin) // until the parent closes the pipe
	if err := unlock(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

// startHolder starts a helper process holding dir's lock and returns it with the pipe whose
// closing makes it release the lock and exit.
func startHolder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q (%v), want locked", line, err)
	}
	return cmd, stdin
}

// TestLockHeldByAnotherProcess: while another process holds the lock, Lock fails at once
// naming that process's id; once it exits, Lock succeeds.
func TestLockHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, stdin := startHolder(t, dir)
	_, err := Lock(dir)
	want := "locked by process " + strconv.Itoa(cmd.Process.Pid)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %v, want ErrLocked naming %s and %q", err, dir, want)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatalf("after the holder exited: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, LockName))
	if err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q (%v), want this process's id", b, err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
}

// TestLockKilledHolder: a holder killed with SIGKILL leaves no stale lock.
func TestLockKilledHolder(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startHolder(t, dir)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	unlock()
}

// TestLockSameProcess: a second Lock in the holding process is refused too, and the lock
// can be taken again after unlock.
func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Lock: %v, want ErrLocked naming this process", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = Lock(dir)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock()
}

func TestLockMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if _, err := Lock(dir); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %v, want fs.ErrNotExist naming %s", err, dir)
	}
}

// TestLockNested: a lock covers its tree in both directions (issue 29, finding 3): while
// another process holds D, D/supernet is refused, and while it holds D/supernet, D is
// refused; both errors name the held directory and its holder.
func TestLockNested(t *testing.T) {
	for _, tc := range []struct{ name, held, want string }{
		{"parent held", ".", "sub/inner"},
		{"child held", "sub/inner", "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			held, want := filepath.Join(root, tc.held), filepath.Join(root, tc.want)
			for _, d := range []string{held, want} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd, stdin := startHolder(t, held)
			_, err := Lock(want)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "process "+strconv.Itoa(cmd.Process.Pid)) ||
				!strings.Contains(err.Error(), filepath.Clean(held)) {
				t.Fatalf("Lock(%s) while %s is held: %v, want ErrLocked naming %s and its holder", want, held, err, held)
			}
			if _, err := os.Stat(filepath.Join(want, LockName)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the refused Lock left its lock file (%v)", err)
			}
			stdin.Close()
			cmd.Wait()
			unlock, err := Lock(want)
			if err != nil {
				t.Fatalf("after the holder exited: %v", err)
			}
			unlock()
		})
	}
}

// TestUnlockRemovesLockFile: a directory is left as it was found (issue 26, item 8).
func TestUnlockRemovesLockFile(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("after unlock the directory holds %v (%v), want nothing", entries, err)
	}
}

// TestBusy: a file held with HoldFile is busy until closed.
func TestBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.tmp-1")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if Busy(path) {
		t.Fatal("busy before HoldFile")
	}
	if err := HoldFile(f); err != nil {
		t.Fatal(err)
	}
	if !Busy(path) {
		t.Fatal("not busy while held")
	}
	f.Close()
	if Busy(path) {
		t.Fatal("busy after close")
	}
}
