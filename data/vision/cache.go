package vision

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The cache file of a decoded dataset, named <key>.ofaimg in the cache folder:
//
//	pixels (N x C x H x W bytes) | labels (N bytes) | meta JSON | JSON length (uint64 LE) | cacheMagic
//
// key (a SHA-256 of the root, every file's path, label, size and modification time, the
// split sizes and the options) makes a changed file, resize or channel choice a new file.
// It is written to a temporary name and renamed, so a reader never sees a partial cache,
// and memory-mapped read-only, so a dataset larger than memory trains with its pages
// loaded on demand and dropped by the kernel under pressure.
const cacheMagic = "OFAIMG01"

func cachePath(dir, key string) string { return filepath.Join(dir, key+".ofaimg") }

// openCache maps an existing cache file; it returns nil, nil when there is none.
func openCache(dir, key string) (*cached, error) {
	path := cachePath(dir, key)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	size := fi.Size()
	bad := func(what string) error {
		return fmt.Errorf("vision: cache %s: %w: %s (delete it to decode again)", path, ErrBadImage, what)
	}
	if size < 16 {
		return nil, bad("too short")
	}
	var tail [16]byte
	if _, err := f.ReadAt(tail[:], size-16); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	if string(tail[8:]) != cacheMagic {
		return nil, bad("no trailer")
	}
	jl := int64(binary.LittleEndian.Uint64(tail[:8]))
	if jl <= 0 || jl > size-16 {
		return nil, bad("bad metadata length")
	}
	jb := make([]byte, jl)
	if _, err := f.ReadAt(jb, size-16-jl); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	var m meta
	if err := json.Unmarshal(jb, &m); err != nil {
		return nil, bad("metadata: " + err.Error())
	}
	n := int64(m.Counts[0] + m.Counts[1] + m.Counts[2])
	per := int64(m.Channels * m.Size * m.Size)
	if per <= 0 || n*(per+1) != size-16-jl {
		return nil, bad("sizes do not match the metadata")
	}
	b, closeFn, err := mapFile(f, int(n*(per+1)))
	if err != nil {
		return nil, fmt.Errorf("vision: cache %s: %w", path, err)
	}
	return &cached{meta: m, pixels: b[:n*per], labels: b[n*per : n*(per+1)], close: closeFn}, nil
}

// cacheWriter decodes straight into a mapped temporary file.
type cacheWriter struct {
	dir, key string
	f        *os.File
	buf      []uint8
	unmap    func() error
	done     bool
}

func newCacheWriter(dir, key string, size int) (*cacheWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	f, err := os.CreateTemp(dir, key+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	buf, unmap, err := mapWritable(f, size)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	return &cacheWriter{dir: dir, key: key, f: f, buf: buf, unmap: unmap}, nil
}

// abort removes the temporary file unless finish succeeded.
func (w *cacheWriter) abort() {
	if w.done {
		return
	}
	w.unmap()
	w.f.Close()
	os.Remove(w.f.Name())
}

// finish writes the labels and metadata after the kept pixels, truncates, syncs, renames
// the file into place and maps it read-only.
func (w *cacheWriter) finish(m meta, pixelBytes int, labels []uint8) (*cached, error) {
	if err := w.unmap(); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	w.unmap = func() error { return nil }
	jb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	tail := make([]byte, 0, len(labels)+len(jb)+16)
	tail = append(tail, labels...)
	tail = append(tail, jb...)
	tail = binary.LittleEndian.AppendUint64(tail, uint64(len(jb)))
	tail = append(tail, cacheMagic...)
	if _, err := w.f.WriteAt(tail, int64(pixelBytes)); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	if err := w.f.Truncate(int64(pixelBytes + len(tail))); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	if err := os.Rename(w.f.Name(), cachePath(w.dir, w.key)); err != nil {
		return nil, fmt.Errorf("vision: cache: %w", err)
	}
	w.done = true
	c, err := openCache(w.dir, w.key)
	if err == nil && c == nil {
		err = fmt.Errorf("vision: cache %s vanished after writing", cachePath(w.dir, w.key))
	}
	return c, err
}
