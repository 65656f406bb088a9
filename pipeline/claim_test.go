package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ofa-go/ofa/dirlock"
)

// TestClaimReleaseLeavesNoTrace: a command that claims a new directory and fails before
// writing leaves nothing behind, not even the lock file (issue 26, item 8: a failed
// `ofa extract --target 100x` left a directory holding only .ofa.lock); a directory that
// existed stays, and one that received output stays with it.
func TestClaimReleaseLeavesNoTrace(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "a", "b")
	release, _, err := Claim(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Fatalf("after a claim without output %s holds %v (%v), want nothing", root, entries, err)
	}

	existing := t.TempDir()
	release, _, err = Claim(existing)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if entries, err := os.ReadDir(existing); err != nil || len(entries) != 0 {
		t.Fatalf("an existing directory holds %v (%v) after a claim, want nothing", entries, err)
	}

	release, _, err = Claim(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "result.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	release()
	if entries, err := os.ReadDir(out); err != nil || len(entries) != 1 || entries[0].Name() != "result.json" {
		t.Fatalf("%s holds %v (%v), want only result.json", out, entries, err)
	}
}

// TestClaimNested: a claim inside a claimed directory is refused, and so is one above it,
// before any stale temporary file is removed (issue 29, findings 2 and 3).
func TestClaimNested(t *testing.T) {
	parent := t.TempDir()
	child := filepath.Join(parent, "child")
	release, _, err := Claim(child)
	if err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(child, "resume.safetensors.tmp-123")
	if err := os.WriteFile(temp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Claim(parent); !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("claiming the parent of a claimed directory: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(temp); err != nil {
		t.Fatalf("the refused claim removed a file of the held directory: %v", err)
	}
	release()
	release, _, err = Claim(parent)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, _, err := Claim(filepath.Join(parent, "child", "deeper")); !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("claiming inside a claimed directory: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "child", "deeper")); err == nil {
		t.Error("the refused claim left the directory it created")
	}
}
