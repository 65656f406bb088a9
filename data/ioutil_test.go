package data

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadFileLimited: files within the limit are read whole; a larger regular file is
// refused before it is read, and a device that never ends is cut off after the limit.
func TestReadFileLimited(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	if b, err := ReadFileLimited(small, 5); err != nil || string(b) != "hello" {
		t.Fatalf("small file: %q, %v", b, err)
	}
	if _, err := ReadFileLimited(small, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("file over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := ReadFileLimited("/dev/zero", 1<<16); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("/dev/zero: %v, want ErrTooLarge", err)
		}
	}
	if _, err := ReadFileLimited(dir, 10); err == nil {
		t.Fatal("read a directory")
	}
}
