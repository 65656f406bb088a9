//go:build unix

package checkpoint

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofa-go/ofa/dirlock"
)

// TestWriteThroughFIFO: a named pipe is written through, never replaced by a regular
// file (issue 29, finding 1), and a pipe with no reader is a clear error, not a hang.
func TestWriteThroughFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.onnx")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	data := bytes.Repeat([]byte("ofa"), 50000) // more than a pipe buffer holds
	if err := WriteFileAtomic(path, data, 0o644); err == nil || !strings.Contains(err.Error(), "no reader") || !strings.Contains(err.Error(), path) {
		t.Fatalf("writing a pipe with no reader: %v, want an error naming %s and saying it has no reader", err, path)
	}
	got := make(chan []byte)
	go func() {
		r, err := os.Open(path) // blocks until the writer opens
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(r)
		r.Close()
		got <- b
	}()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// the reader may not have opened the pipe yet
		if err = WriteFileAtomic(path, data, 0o644); err == nil || !strings.Contains(err.Error(), "no reader") {
			break
		}
	}
	if err != nil {
		t.Fatalf("writing through the pipe: %v", err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("the reader got %d bytes, want %d", len(b), len(data))
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("after the write %s is %v (%v), want the named pipe", path, fi.Mode(), err)
	}
}

// TestWriteThroughDevNull: a character device is written through and stays a device.
func TestWriteThroughDevNull(t *testing.T) {
	fi, err := os.Stat(os.DevNull)
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Skip("no character device", os.DevNull)
	}
	if err := WriteFileAtomic(os.DevNull, []byte("model"), 0o644); err != nil {
		t.Fatalf("writing %s: %v", os.DevNull, err)
	}
	if fi, err := os.Lstat(os.DevNull); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("%s is now %v (%v), want the character device", os.DevNull, fi.Mode(), err)
	}
}

// TestWriteRefusesDirectoryAndSocket: paths that cannot be written through are refused
// with an error saying what they are (issue 29, finding 8: no raw rename error).
func TestWriteRefusesDirectoryAndSocket(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFileAtomic(dir, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("writing a directory: %v, want an error saying it is a directory", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused write left %v", entries)
	}
	sock := filepath.Join(dir, "s")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Skip(err)
	}
	if err := WriteFileAtomic(sock, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "socket") {
		t.Errorf("writing a socket: %v, want an error naming a socket", err)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		t.Errorf("the socket was replaced: %v (%v)", fi.Mode(), err)
	}
}

// TestWriteKeepsSymlink: a link to a regular file keeps being a link; its target is replaced.
func TestWriteKeepsSymlink(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "real.json"), filepath.Join(dir, "link.json")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	if err := WriteFileAtomic(link, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link is now %v (%v)", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Fatalf("target holds %q, want new", b)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "missing", "x"), dangling); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(dangling, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("writing a dangling link: %v, want an error naming the link", err)
	}
}

// TestRemoveStaleTempsSkipsLiveWrite: a temporary file whose writer still holds it is
// left alone (issue 29, finding 2: cleaning one directory broke a write in it).
func TestRemoveStaleTempsSkipsLiveWrite(t *testing.T) {
	dir := t.TempDir()
	live, stale := filepath.Join(dir, "resume.safetensors.tmp-1"), filepath.Join(dir, "resume.safetensors.tmp-2")
	f, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dirlock.HoldFile(f); err != nil {
		t.Skip("no file locks here:", err)
	}
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStaleTemps(dir)
	if err != nil || len(removed) != 1 || removed[0] != stale {
		t.Fatalf("removed %v (%v), want only %s", removed, err, stale)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the live temporary file is gone: %v", err)
	}
}

// TestReadFileRefusesSpecialFiles: reading a checkpoint from a named pipe with no writer,
// a directory or a device is an error at once (opening the pipe blocked forever).
func TestReadFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	for _, p := range []string{fifo, dir, os.DevNull} {
		if _, err := ReadFile(p, Limits{}); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "regular file") {
			t.Errorf("ReadFile(%s): %v, want an error naming it and saying a regular file is wanted", p, err)
		}
		if _, err := ReadMetadata(p, Limits{}); err == nil || !strings.Contains(err.Error(), "regular file") {
			t.Errorf("ReadMetadata(%s): %v", p, err)
		}
	}
}
