package vision

import (
	"bufio"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ofa-go/ofa/data"
)

// splitNames name the three splits in messages and data.Images names.
var splitNames = [3]string{"train", "val", "test"}

// decodeSplits reads the headers of every file (format, size, colour), settles the input's
// channels and size, then decodes every image once, in parallel, into one buffer (a cache
// file when o.CacheDir is set, reused by a later call with the same files and options).
func decodeSplits(root, kind string, classes []string, splits [][]file, o Options) (*Dataset, error) {
	var all []file
	for k, s := range splits {
		for _, f := range s {
			f.split = k
			all = append(all, f)
		}
	}
	key := fingerprint("ofa-vision-v1", root, listKey(all), fmt.Sprint(len(splits[0]), len(splits[1]), len(splits[2])),
		fmt.Sprint(o.Size, o.Channels, o.MaxPixels, o.SkipBad))
	var c *cached
	if o.CacheDir != "" {
		var err error
		if c, err = openCache(o.CacheDir, key); err != nil {
			return nil, err
		}
	}
	if c == nil {
		var err error
		if c, err = decodeAll(root, all, o, key); err != nil {
			return nil, err
		}
	}
	return c.dataset(root, kind, classes, key)
}

// meta is what a decode settles besides the pixels; it is stored in the cache.
type meta struct {
	Channels, Size int
	SizesSeen      string
	Resized        bool
	// Counts are the examples kept per split; Labels' layout follows Pixels'.
	Counts  [3]int
	Skipped []string
}

// cached is a decoded dataset: pixels and labels of every split back to back.
type cached struct {
	meta   meta
	pixels []uint8
	labels []uint8
	close  func() error
}

func (c *cached) dataset(root, kind string, classes []string, key string) (*Dataset, error) {
	m := c.meta
	per := m.Channels * m.Size * m.Size
	d := &Dataset{}
	sets := []**data.Images{&d.Train, &d.Val, &d.Test}
	off := 0
	for i, n := range m.Counts {
		s := &data.Images{Name: filepath.Base(root) + "/" + splitNames[i], N: n, Channels: m.Channels, Height: m.Size,
			Width: m.Size, Classes: len(classes), Pixels: c.pixels[off*per : (off+n)*per : (off+n)*per],
			Labels: c.labels[off : off+n : off+n], ClassNames: append([]string(nil), classes...)}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		*sets[i] = s
		off += n
	}
	if d.Train.N == 0 {
		return nil, fmt.Errorf("vision: %s: %w: no training images left", root, ErrLayout)
	}
	mean, std := d.Train.ChannelStats()
	d.Description = data.Description{Kind: kind, Root: root, Fingerprint: key,
		Train: m.Counts[0], Val: m.Counts[1], Test: m.Counts[2], Classes: append([]string(nil), classes...),
		Channels: m.Channels, Height: m.Size, Width: m.Size, SizesSeen: m.SizesSeen, Mean: mean, Std: std,
		Skipped: m.Skipped}
	if m.Resized {
		d.Description.Resize = data.ResizeShorterCentreCrop
	}
	return d, nil
}

// readHeader opens a file and reads only its image header.
func readHeader(path string, maxPixels int) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("vision: %w", err)
	}
	defer f.Close()
	// DecodeConfig reads only as far as the header; 64 kB covers most, the reader the rest.
	cfg, format, err := image.DecodeConfig(bufio.NewReaderSize(f, 64<<10))
	return checkHeader(cfg, format, err, path, maxPixels)
}

// decodeAll reads every header, settles channels and size, and decodes every image into
// memory, or into a new cache file when o.CacheDir is set.
func decodeAll(root string, all []file, o Options, key string) (*cached, error) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	n := len(all)
	headers := make([]Header, n)
	errs := make([]error, n)
	parallel(n, workers, func(i int) {
		if all[i].blob != nil {
			headers[i], errs[i] = DecodeHeader(all[i].blob, all[i].rel, o.MaxPixels)
			return
		}
		headers[i], errs[i] = readHeader(filepath.Join(root, filepath.FromSlash(all[i].rel)), o.MaxPixels)
	})
	ok := make([]bool, n)
	var skipped []string
	for i := range all {
		if errs[i] != nil {
			if !o.SkipBad {
				return nil, errs[i]
			}
			skipped = append(skipped, errs[i].Error())
			continue
		}
		ok[i] = true
	}
	m := meta{Channels: o.Channels, Size: o.Size}
	minW, minH, maxW, maxH, allGray := 1<<62, 1<<62, 0, 0, true
	for i, h := range headers {
		if !ok[i] {
			continue
		}
		minW, minH, maxW, maxH = min(minW, h.Width), min(minH, h.Height), max(maxW, h.Width), max(maxH, h.Height)
		allGray = allGray && h.Gray
	}
	if maxW == 0 {
		return nil, fmt.Errorf("vision: %s: %w: no readable images", root, ErrLayout)
	}
	m.SizesSeen = fmt.Sprintf("%dx%d", minW, minH)
	if minW != maxW || minH != maxH {
		m.SizesSeen = fmt.Sprintf("%dx%d..%dx%d (width x height)", minW, minH, maxW, maxH)
	}
	if m.Channels == 0 {
		m.Channels = 3
		if allGray {
			m.Channels = 1
		}
	}
	if m.Channels != 1 && m.Channels != 3 {
		return nil, fmt.Errorf("vision: %d channels, want 1 or 3", m.Channels)
	}
	if m.Size == 0 {
		if minW != maxW || minH != maxH || minW != minH {
			return nil, fmt.Errorf("vision: %s: images have sizes %s: set data.image_size (they are scaled by the shorter side and centre-cropped)", root, m.SizesSeen)
		}
		m.Size = minW
	}
	m.Resized = minW != m.Size || maxW != m.Size || minH != m.Size || maxH != m.Size
	per := m.Channels * m.Size * m.Size
	if _, okSize := data.MulInts(n, per+1); !okSize {
		return nil, fmt.Errorf("vision: %s: %d images of %dx%dx%d overflow int", root, n, m.Channels, m.Size, m.Size)
	}

	var (
		buf  []uint8
		sink *cacheWriter
		err  error
	)
	if o.CacheDir != "" {
		if sink, err = newCacheWriter(o.CacheDir, key, n*(per+1)); err != nil {
			return nil, err
		}
		defer sink.abort()
		buf = sink.buf
	} else {
		buf = make([]uint8, n*(per+1))
	}
	var done atomic.Int64
	var mu sync.Mutex
	progress := func() {
		d := int(done.Add(1))
		if o.Progress != nil && (d%64 == 0 || d == n) {
			mu.Lock()
			o.Progress(d, n)
			mu.Unlock()
		}
	}
	parallel(n, workers, func(i int) {
		defer progress()
		if !ok[i] {
			return
		}
		path, b := all[i].rel, all[i].blob
		if b == nil {
			path = filepath.Join(root, filepath.FromSlash(all[i].rel))
			var err error
			if b, err = data.ReadFileLimited(path, MaxFileBytes); err != nil {
				errs[i] = fmt.Errorf("vision: %w", err)
				return
			}
		}
		img, _, err := Decode(b, path, o.MaxPixels)
		if err != nil {
			errs[i] = err
			return
		}
		ToPixels(buf[i*per:(i+1)*per], img, m.Channels, m.Size)
	})
	// Compact: keep the good examples in order, count them per split.
	kept := 0
	labels := make([]uint8, 0, n)
	for i := range all {
		if ok[i] && errs[i] != nil {
			if !o.SkipBad {
				return nil, errs[i]
			}
			skipped = append(skipped, errs[i].Error())
			ok[i] = false
		}
		if !ok[i] {
			continue
		}
		if kept != i {
			copy(buf[kept*per:(kept+1)*per], buf[i*per:(i+1)*per])
		}
		labels = append(labels, uint8(all[i].label))
		m.Counts[all[i].split]++
		kept++
	}
	m.Skipped = skipped
	pixels := buf[:kept*per]
	if sink != nil {
		return sink.finish(m, kept*per, labels)
	}
	return &cached{meta: m, pixels: pixels, labels: labels}, nil
}

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
