//go:build ignore

// Vision-memory measures what a folder dataset costs in memory and time: it writes n
// synthetic 64x64 RGB PNG images (5 classes) under DIR unless they are there, then, in this
// process, loads them through data/vision (decoding into the memory-mapped cache, or
// reusing it), reads one epoch of training batches, and prints one JSON line: images,
// cache bytes, decode images/s, peak RSS and its anonymous and file-backed parts.
// Run it twice per size (first run decodes, second reuses the cache):
//
//	go run scripts/vision-memory.go -dir /tmp/vm -n 20000 -cache /tmp/vm-cache
//
// scripts/vision-memory.sh runs the table of docs/RESULTS.md's "Datasets larger than memory".
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/vision"
)

func main() {
	dir := flag.String("dir", "", "dataset folder (written if missing)")
	n := flag.Int("n", 10000, "training images")
	size := flag.Int("size", 32, "input size (images are 64x64, scaled)")
	cache := flag.String("cache", "", "cache folder")
	flag.Parse()
	if err := run(*dir, *n, *size, *cache); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir string, n, size int, cache string) error {
	if _, err := os.Stat(filepath.Join(dir, "train")); err != nil {
		for i := range n {
			img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
			for y := range 64 {
				for x := range 64 {
					img.SetNRGBA(x, y, color.NRGBA{uint8(i*7 + x*3), uint8(i*13 + y*5), uint8(x * y), 255})
				}
			}
			var b bytes.Buffer
			if err := png.Encode(&b, img); err != nil {
				return err
			}
			p := filepath.Join(dir, "train", fmt.Sprintf("c%d", i%5), fmt.Sprintf("%06d.png", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
				return err
			}
		}
	}
	decoded := 0
	start := time.Now()
	d, err := vision.LoadFolder(dir, vision.Options{Size: size, CacheDir: cache, Progress: func(done, _ int) { decoded = done }})
	if err != nil {
		return err
	}
	loadSec := time.Since(start).Seconds()
	l, err := data.NewLoader(d.Train, data.LoaderConfig{BatchSize: 128, Seed: 1, Shuffle: true, Mean: 0.5, Std: 0.25,
		Augment: data.Augment{CropPad: 2, HFlip: true}})
	if err != nil {
		return err
	}
	var b data.Batch
	start = time.Now()
	for i := range l.BatchesPerEpoch() {
		l.Batch(0, i, &b)
	}
	epochSec := time.Since(start).Seconds()
	var cacheBytes int64
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".ofaimg") {
			cacheBytes += fi.Size()
		}
	}
	st := status()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"images": d.Train.N + d.Val.N, "decoded": decoded, "cache_mb": float64(cacheBytes) / 1e6,
		"load_s": loadSec, "images_per_s": float64(d.Train.N+d.Val.N) / loadSec,
		"epoch_batches_per_s": float64(l.BatchesPerEpoch()) / epochSec, "epoch_images_per_s": float64(l.BatchesPerEpoch()*128) / epochSec,
		"peak_rss_mb": st["VmHWM"], "rss_anon_mb": st["RssAnon"], "rss_file_mb": st["RssFile"],
	})
}

// status reads the memory lines of /proc/self/status, in MB.
func status() map[string]float64 {
	out := map[string]float64{}
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		var k string
		var v float64
		if _, err := fmt.Sscanf(strings.Replace(line, ":", " ", 1), "%s %f", &k, &v); err == nil {
			out[k] = v / 1024
		}
	}
	return out
}
