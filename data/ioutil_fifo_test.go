//go:build unix

package data

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadFileLimitedPipe: a named pipe with no writer is an error at once (issue 29:
// `--config FIFO` blocked forever), and one with a writer is read.
func TestReadFileLimitedPipe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip(err)
	}
	if _, err := ReadFileLimited(path, 1<<10); err == nil || !strings.Contains(err.Error(), "no writer") || !strings.Contains(err.Error(), path) {
		t.Fatalf("pipe without writer: %v, want an error naming it", err)
	}
	// a pipe whose writer wrote and left: the data waits in the pipe (kept open by r0)
	r0, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r0.Close()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("train:\n  steps: 3\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b, err := ReadFileLimited(path, 1<<10); err != nil || string(b) != "train:\n  steps: 3\n" {
		t.Fatalf("pipe with data: %q, %v", b, err)
	}
}
