package checkpoint

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// dirNames lists dir, failing the test on error.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(path, smallFile()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got, smallFile())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, encode(t, smallFile())) {
		t.Error("WriteFile wrote other bytes than Encode")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"model.safetensors"}) {
		t.Errorf("directory holds %q, want only model.safetensors", names)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(path, smallFile()); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A File that cannot be encoded: 5 values for a shape of 6.
	broken := &File{Tensors: []Tensor{{Name: "w", Shape: []int{2, 3}, Data: make([]float32, 5)}}}
	err = WriteFile(path, broken)
	if !errors.Is(err, ErrBadCheckpoint) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want ErrBadCheckpoint naming %s", err, path)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, old) {
		t.Errorf("failed write changed the existing file (read err %v)", err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"model.safetensors"}) {
		t.Errorf("after a failed write the directory holds %q, want only model.safetensors", names)
	}

	// A successful write replaces the file and keeps its permissions.
	next := &File{Metadata: map[string]string{"step": "2"}, Tensors: []Tensor{{Name: "w", Shape: []int{1}, Data: []float32{7}}}}
	if err := WriteFile(path, next); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got, next)
	if names := dirNames(t, dir); !slices.Equal(names, []string{"model.safetensors"}) {
		t.Errorf("after a write the directory holds %q, want only model.safetensors", names)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("replaced file has mode %v, want the old file's 0600", fi.Mode().Perm())
		}
	}
}

func TestWriteFileNewMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	path := filepath.Join(t.TempDir(), "new.safetensors")
	if err := WriteFile(path, smallFile()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != newFileMode {
		t.Errorf("new file has mode %v, want %v", fi.Mode().Perm(), fs.FileMode(newFileMode))
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "model.safetensors")
	err := WriteFile(path, smallFile())
	if err == nil || errors.Is(err, ErrBadCheckpoint) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist without ErrBadCheckpoint", err)
	}
	if err != nil && !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.safetensors")
	_, err := ReadFile(missing, Limits{})
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrBadCheckpoint) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist naming the path", err)
	}

	corrupt := filepath.Join(dir, "corrupt.safetensors")
	b := encode(t, smallFile())
	if err := os.WriteFile(corrupt, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(corrupt, Limits{})
	if !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("corrupt file: err = %v, want ErrBadCheckpoint", err)
	}
	if want := "checkpoint: " + corrupt + `: tensor "head.bias": data_offsets [28, 44] run past the end`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("corrupt file: err = %v, want it to begin %q", err, want)
	}

	_, err = ReadFile(dir, Limits{}) // a directory is not a checkpoint
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: err = %v, want an error naming it", err)
	}
}

// TestWriteFileAtomicData: WriteFileAtomic writes the bytes through a temporary file,
// gives a new file perm and keeps a replaced file's mode, and names the path on errors.
func TestWriteFileAtomicData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manifest.json")
	if err := WriteFileAtomic(path, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("read %q, %v", b, err)
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("new file: mode %v (%v), want 0600", fi.Mode().Perm(), err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFileAtomic(path, []byte(`{"a":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != `{"a":2}` {
		t.Fatalf("read %q, %v", b, err)
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("replaced file: mode %v (%v), want the old 0640", fi.Mode().Perm(), err)
		}
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"manifest.json"}) {
		t.Errorf("directory holds %q, want only manifest.json", names)
	}
	missing := filepath.Join(dir, "no", "report.md")
	if err := WriteFileAtomic(missing, nil, 0o644); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want fs.ErrNotExist naming %s", err, missing)
	}
}

// TestRemoveStaleTemps: the temporary files a killed write leaves (named as WriteFile and
// WriteFileAtomic name them) are removed; every other file, directory and link stays.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// what a kill -9 between CreateTemp and Rename leaves, named by the writers' own pattern
	var stale []string
	for _, base := range []string{"resume.safetensors", "supernet.safetensors", "manifest.json"} {
		f, err := os.CreateTemp(dir, base+tempInfix+"*")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		stale = append(stale, f.Name())
	}
	slices.Sort(stale)
	keep := []string{"resume.safetensors", "metrics.jsonl", "notes.tmp-abc", ".tmp-123", "model.safetensors.tmp-",
		"x.tmp-12.bak", "report.md.tmp", "tmp-99"}
	for _, name := range keep {
		touch(name)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.tmp-77"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub.tmp-77", "a.safetensors.tmp-1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, "sub.tmp-77")
	if runtime.GOOS != "windows" {
		if err := os.Symlink("resume.safetensors", filepath.Join(dir, "link.safetensors.tmp-5")); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, "link.safetensors.tmp-5")
	}

	removed, err := RemoveStaleTemps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, stale) {
		t.Errorf("removed %q, want %q", removed, stale)
	}
	slices.Sort(keep)
	if names := dirNames(t, dir); !slices.Equal(names, keep) {
		t.Errorf("directory holds %q, want %q", names, keep)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub.tmp-77", "a.safetensors.tmp-1")); err != nil {
		t.Errorf("a file in a subdirectory: %v", err)
	}
	if removed, err := RemoveStaleTemps(dir); err != nil || len(removed) != 0 {
		t.Errorf("second call removed %q, %v", removed, err)
	}
	if _, err := RemoveStaleTemps(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want fs.ErrNotExist", err)
	}
}

func TestIsTempName(t *testing.T) {
	for name, want := range map[string]bool{
		"model.safetensors.tmp-0":          true,
		"model.safetensors.tmp-4294967295": true,
		"manifest.json.tmp-17":             true,
		"a.tmp-b.tmp-3":                    true,
		"model.safetensors":                false,
		".tmp-3":                           false,
		"x.tmp-":                           false,
		"x.tmp-3a":                         false,
		"x.tmp-3.json":                     false,
		"x.tmp3":                           false,
	} {
		if got := IsTempName(name); got != want {
			t.Errorf("IsTempName(%q) = %v, want %v", name, got, want)
		}
	}
}
