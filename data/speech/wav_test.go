package speech

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the WAV fixtures in testdata/")

// chunk is one RIFF chunk for the fixture builder; size < 0 means len(body). The builder
// adds the pad byte after an odd-sized body unless noPad is set.
type chunk struct {
	id    string
	body  []byte
	size  int64
	noPad bool
}

// wavFile builds a RIFF file of form (normally "WAVE"); riffSize < 0 computes it.
func wavFile(magic, form string, riffSize int64, chunks ...chunk) []byte {
	var body []byte
	body = append(body, form...)
	for _, c := range chunks {
		size := c.size
		if size < 0 {
			size = int64(len(c.body))
		}
		body = append(body, c.id...)
		body = binary.LittleEndian.AppendUint32(body, uint32(size))
		body = append(body, c.body...)
		if len(c.body)%2 == 1 && !c.noPad {
			body = append(body, 0)
		}
	}
	if riffSize < 0 {
		riffSize = int64(len(body))
	}
	out := append([]byte(magic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[4:], uint32(riffSize))
	return append(out, body...)
}

// fmtBody is a 16-byte "fmt " body with every field given.
func fmtBody(tag, channels, rate, byteRate, blockAlign, bits int) []byte {
	b := make([]byte, 16)
	le := binary.LittleEndian
	le.PutUint16(b[0:], uint16(tag))
	le.PutUint16(b[2:], uint16(channels))
	le.PutUint32(b[4:], uint32(rate))
	le.PutUint32(b[8:], uint32(byteRate))
	le.PutUint16(b[12:], uint16(blockAlign))
	le.PutUint16(b[14:], uint16(bits))
	return b
}

// pcmFmt is a consistent PCM "fmt " chunk.
func pcmFmt(channels, rate, bits int) chunk {
	align := channels * bits / 8
	return chunk{id: "fmt ", body: fmtBody(wavePCM, channels, rate, rate*align, align, bits), size: -1}
}

// extFmt is a WAVE_FORMAT_EXTENSIBLE chunk with subformat tag sub (1 = PCM).
func extFmt(channels, rate, bits, valid, sub int) chunk {
	align := channels * bits / 8
	b := fmtBody(waveExtensible, channels, rate, rate*align, align, bits)
	b = binary.LittleEndian.AppendUint16(b, 22)
	b = binary.LittleEndian.AppendUint16(b, uint16(valid))
	b = binary.LittleEndian.AppendUint32(b, 4) // front centre
	b = binary.LittleEndian.AppendUint16(b, uint16(sub))
	b = append(b, pcmSubformatTail...)
	return chunk{id: "fmt ", body: b, size: -1}
}

func dataChunk(b []byte) chunk { return chunk{id: "data", body: b, size: -1} }

func pcm16(vs ...int16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// streaming hides the reader's size, so ReadWAV takes its incremental path.
type streaming struct{ r io.Reader }

func (s streaming) Read(p []byte) (int, error) { return s.r.Read(p) }

// wavFixture is one file in testdata/: the seed corpus of FuzzReadWAV and the table of
// TestWAVFixtures. want nil means the file must be rejected with ErrBadWAV and a message
// containing wantMsg.
type wavFixture struct {
	file     string
	contents []byte
	want     *Audio
	wantMsg  string
}

func wavFixtures() []wavFixture {
	mono16 := []int16{0, 1, -1, 32767, -32768, 1000}
	mono16want := make([]float32, len(mono16))
	for i, v := range mono16 {
		mono16want[i] = float32(v) / 32768
	}
	valid16 := wavFile("RIFF", "WAVE", -1, pcmFmt(1, 16000, 16), dataChunk(pcm16(mono16...)))
	list := chunk{id: "LIST", body: []byte("INFOx"), size: -1} // odd: padded
	// A data chunk that claims 1000 bytes, in a RIFF chunk sized to match, cut after 10:
	// what a truncated download looks like.
	cut := wavFile("RIFF", "WAVE", 36+1000, pcmFmt(1, 16000, 16), chunk{id: "data", body: pcm16(1, 2, 3, 4, 5), size: 1000})
	return []wavFixture{
		{"valid-16bit-mono.wav", valid16, &Audio{Rate: 16000, Samples: mono16want}, ""},
		{"valid-8bit-mono-odd.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(1, 8000, 8), dataChunk([]byte{128, 0, 255, 129, 127})),
			&Audio{Rate: 8000, Samples: []float32{0, -1, 127.0 / 128, 1.0 / 128, -1.0 / 128}}, ""},
		{"valid-16bit-stereo.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(2, 44100, 16),
			dataChunk(pcm16(100, 300, -32768, -32768, 32767, -32767, 1, 0))),
			&Audio{Rate: 44100, Samples: []float32{200.0 / 32768, -1, 0, 0.5 / 32768}}, ""},
		{"valid-8bit-3ch.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(3, 11025, 8), dataChunk([]byte{0, 128, 255, 131, 134, 137})),
			&Audio{Rate: 11025, Samples: []float32{(-1 + 0 + 127.0/128) / 3, (3.0/128 + 6.0/128 + 9.0/128) / 3}}, ""},
		{"valid-extensible.wav", wavFile("RIFF", "WAVE", -1, extFmt(1, 16000, 16, 16, wavePCM), dataChunk(pcm16(mono16...))),
			&Audio{Rate: 16000, Samples: mono16want}, ""},
		{"valid-odd-list-chunk.wav", wavFile("RIFF", "WAVE", -1, list, pcmFmt(1, 16000, 16),
			chunk{id: "fact", body: []byte{6, 0, 0, 0}, size: -1}, list, dataChunk(pcm16(mono16...)), list),
			&Audio{Rate: 16000, Samples: mono16want}, ""},
		{"valid-empty-data.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(1, 22050, 16), dataChunk(nil)),
			&Audio{Rate: 22050, Samples: []float32{}}, ""},

		{"empty.wav", nil, nil, "truncated header: want 12 bytes (RIFF, size, WAVE): file has 0"},
		{"truncated-header.wav", valid16[:20], nil, "truncated \"fmt \" chunk at offset 12: want 16 bytes: file has 0"},
		{"truncated-riff.wav", valid16[:7], nil, "truncated header: want 12 bytes (RIFF, size, WAVE): file has 7"},
		{"bad-riff-magic.wav", append([]byte("RIFX"), valid16[4:]...), nil, "bad magic: want \"RIFF\", found \"RIFX\""},
		{"bad-wave-magic.wav", wavFile("RIFF", "AVI ", -1, pcmFmt(1, 16000, 16), dataChunk(nil)), nil,
			"bad form type: want \"WAVE\", found \"AVI \""},
		{"bad-format-float.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(3, 1, 16000, 64000, 4, 32), size: -1}, dataChunk(make([]byte, 8))), nil,
			"unsupported format tag 0x0003 (IEEE float), want 1 (PCM) or 0xFFFE (extensible PCM)"},
		{"bad-format-mulaw.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(7, 1, 8000, 8000, 1, 8), size: -1}, dataChunk(make([]byte, 8))), nil,
			"unsupported format tag 0x0007 (mu-law)"},
		{"bad-extensible-subformat.wav", wavFile("RIFF", "WAVE", -1, extFmt(1, 16000, 16, 16, 3), dataChunk(pcm16(1))), nil,
			"unsupported WAVE_FORMAT_EXTENSIBLE subformat 03000000000010008000"},
		{"bad-extensible-valid-bits.wav", wavFile("RIFF", "WAVE", -1, extFmt(1, 16000, 16, 20, wavePCM), dataChunk(pcm16(1))), nil,
			"20 valid bits in 16-bit samples, want 1 to 16"},
		{"bad-bits-24.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(wavePCM, 1, 16000, 48000, 3, 24), size: -1}, dataChunk(make([]byte, 6))), nil,
			"24 bits per sample, want 8 or 16"},
		{"zero-channels.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(wavePCM, 0, 16000, 0, 0, 16), size: -1}, dataChunk(nil)), nil,
			"0 channels, want >= 1"},
		{"zero-rate.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(wavePCM, 1, 0, 0, 2, 16), size: -1}, dataChunk(nil)), nil,
			"sample rate 0 Hz, want 1000 to 192000"},
		{"bad-block-align.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(wavePCM, 2, 16000, 32000, 2, 16), size: -1}, dataChunk(nil)), nil,
			"block align 2, want 2 channels x 2 bytes = 4"},
		{"bad-byte-rate.wav", wavFile("RIFF", "WAVE", -1,
			chunk{id: "fmt ", body: fmtBody(wavePCM, 1, 16000, 16000, 2, 16), size: -1}, dataChunk(nil)), nil,
			"byte rate 16000, want 16000 Hz x 2-byte blocks = 32000"},
		{"short-fmt.wav", wavFile("RIFF", "WAVE", -1, chunk{id: "fmt ", body: make([]byte, 14), size: -1}, dataChunk(nil)), nil,
			"\"fmt \" chunk at offset 12 has 14 bytes, want >= 16"},
		{"second-fmt.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(1, 16000, 16), pcmFmt(1, 16000, 16), dataChunk(nil)), nil,
			"second \"fmt \" chunk at offset 36"},
		{"data-before-fmt.wav", wavFile("RIFF", "WAVE", -1, dataChunk(pcm16(1)), pcmFmt(1, 16000, 16)), nil,
			"\"data\" chunk at offset 12 before the \"fmt \" chunk"},
		{"no-data.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(1, 16000, 16), list), nil, "no \"data\" chunk in the 42-byte RIFF chunk"},
		{"no-chunks.wav", wavFile("RIFF", "WAVE", -1), nil, "no \"fmt \" or \"data\" chunk in the 4-byte RIFF chunk"},
		{"stray-bytes.wav", append(wavFile("RIFF", "WAVE", 4+24+3, pcmFmt(1, 16000, 16)), 1, 2, 3), nil,
			"3 stray bytes at offset 36"},
		{"odd-data-size.wav", wavFile("RIFF", "WAVE", -1, pcmFmt(1, 16000, 16), dataChunk([]byte{1, 2, 3})), nil,
			"\"data\" chunk at offset 36 has 3 bytes, not a whole number of 2-byte frames"},
		{"data-larger-than-file.wav", cut, nil, "truncated: \"data\" chunk declares 1000 bytes (500 frames), file has 10"},
		{"data-beyond-riff.wav", wavFile("RIFF", "WAVE", 4+24+8+4, pcmFmt(1, 16000, 16), dataChunk(pcm16(1, 2, 3, 4))), nil,
			"chunk \"data\" at offset 36 declares 8 bytes, RIFF chunk has 4 left"},
		{"huge-declared.wav", wavFile("RIFF", "WAVE", 0xFFFFFFFF, pcmFmt(1, 16000, 16),
			chunk{id: "data", body: pcm16(1, 2), size: 0xFFFFFFD0}), nil,
			"\"data\" chunk declares 2147483624 frames (4294967248 bytes), more than the limit of 28800000"},
		{"truncated-chunk.wav", wavFile("RIFF", "WAVE", 4+24+8+100, pcmFmt(1, 16000, 16),
			chunk{id: "LIST", body: []byte("INFO"), size: 100}), nil,
			"truncated chunk \"LIST\" at offset 36: want 100 more bytes, file has 4"},
	}
}

// TestWAVFixtures checks the testdata/ files (rewritten with -update) against their
// definitions, then decodes each both with its size known and as a stream.
func TestWAVFixtures(t *testing.T) {
	for _, fx := range wavFixtures() {
		t.Run(fx.file, func(t *testing.T) {
			path := filepath.Join("testdata", fx.file)
			if *update {
				if err := os.WriteFile(path, fx.contents, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, fx.contents) {
				t.Fatalf("%s differs from its definition; run go test -update", path)
			}
			for _, mode := range []string{"sized", "stream", "file"} {
				var r io.Reader = bytes.NewReader(got)
				switch mode {
				case "stream":
					r = streaming{r}
				case "file":
					f, err := os.Open(path)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					r = f
				}
				a, err := ReadWAV(r, fx.file, Limits{})
				if fx.want == nil {
					if !errors.Is(err, ErrBadWAV) {
						t.Fatalf("%s: err = %v, want ErrBadWAV", mode, err)
					}
					if msg := err.Error(); !strings.HasPrefix(msg, "speech: "+fx.file+": ") || !strings.Contains(msg, fx.wantMsg) {
						t.Errorf("%s: error %q, want the file name and %q", mode, msg, fx.wantMsg)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if a.Rate != fx.want.Rate || !equalSamples(a.Samples, fx.want.Samples, 1e-7) {
					t.Errorf("%s: got rate %d, samples %v; want %d, %v", mode, a.Rate, a.Samples, fx.want.Rate, fx.want.Samples)
				}
			}
		})
	}
}

func equalSamples(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol {
			return false
		}
	}
	return true
}

func TestWAVRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		rate int
		bits int
		n    int
	}{
		{"16-bit", 16000, 16, 16000},
		{"8-bit even", 8000, 8, 800},
		{"8-bit odd (padded)", 8000, 8, 801},
		{"16-bit empty", 44100, 16, 0},
		{"16-bit lowest rate", MinRate, 16, 10},
		{"16-bit highest rate", MaxRate, 16, 10},
	} {
		x := make([]float32, tc.n)
		for i := range x {
			x[i] = float32(rng.Float64()*2.2 - 1.1) // some out of range: clipped
		}
		var buf bytes.Buffer
		if err := WriteWAV(&buf, &Audio{Rate: tc.rate, Samples: x}, tc.bits); err != nil {
			t.Fatalf("%s: WriteWAV: %v", tc.name, err)
		}
		if want := 44 + tc.n*tc.bits/8 + tc.n*tc.bits/8%2; buf.Len() != want {
			t.Errorf("%s: %d bytes, want %d", tc.name, buf.Len(), want)
		}
		a, err := ReadWAV(bytes.NewReader(buf.Bytes()), tc.name, Limits{})
		if err != nil {
			t.Fatalf("%s: ReadWAV: %v", tc.name, err)
		}
		step := math.Ldexp(1, 1-tc.bits) // quantisation step: 2 / 2^bits
		for i, v := range a.Samples {
			want := math.Max(-1, math.Min(float64(x[i]), 1-step))
			if math.Abs(float64(v)-want) > step/2+1e-9 {
				t.Fatalf("%s: sample %d: wrote %v, read %v", tc.name, i, x[i], v)
			}
		}
		if a.Rate != tc.rate || len(a.Samples) != tc.n {
			t.Fatalf("%s: read %d samples at %d Hz", tc.name, len(a.Samples), a.Rate)
		}
		// What ReadWAV returns is written back exactly.
		var again bytes.Buffer
		if err := WriteWAV(&again, a, tc.bits); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
			t.Errorf("%s: rewriting the decoded clip changed the file (err %v)", tc.name, err)
		}
	}
}

func TestWriteWAVRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    *Audio
		bits int
	}{
		{"nil", nil, 16},
		{"24 bits", &Audio{Rate: 16000}, 24},
		{"rate 0", &Audio{Rate: 0}, 16},
		{"rate too high", &Audio{Rate: MaxRate + 1}, 8},
	} {
		if err := WriteWAV(io.Discard, tc.a, tc.bits); err == nil {
			t.Errorf("%s: WriteWAV succeeded", tc.name)
		}
	}
	var buf bytes.Buffer
	if err := WriteWAV(&buf, &Audio{Rate: 8000, Samples: []float32{float32(math.NaN())}}, 16); err != nil {
		t.Fatal(err)
	}
	if a, err := ReadWAV(&buf, "nan", Limits{}); err != nil || a.Samples[0] != 0 {
		t.Errorf("NaN sample: read %v, %v; want 0", a, err)
	}
}

func TestWAVLimits(t *testing.T) {
	file := wavFile("RIFF", "WAVE", -1, pcmFmt(1, 16000, 16), dataChunk(make([]byte, 200)))
	if _, err := ReadWAV(bytes.NewReader(file), "x", Limits{MaxSamples: 100}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := ReadWAV(bytes.NewReader(file), "x", Limits{MaxSamples: 99})
	if !errors.Is(err, ErrBadWAV) || !strings.Contains(err.Error(), "declares 100 frames (200 bytes), more than the limit of 99") {
		t.Errorf("over the limit: err = %v", err)
	}
}

// TestWAVLyingHeaderAllocatesLittle: a header may claim up to the limit; the reader must
// not believe it before the bytes arrive.
func TestWAVLyingHeaderAllocatesLittle(t *testing.T) {
	huge := wavFile("RIFF", "WAVE", 0xFFFFFFFF, pcmFmt(1, 16000, 16), chunk{id: "data", body: pcm16(1, 2), size: 0xFFFFFFD0})
	big := wavFile("RIFF", "WAVE", 0xFFFFFFFF, pcmFmt(1, 48000, 16), chunk{id: "data", body: pcm16(1, 2), size: 2 * 20_000_000})
	for _, tc := range []struct {
		name   string
		file   []byte
		stream bool
		limit  uint64 // bytes allocated at most
	}{
		{"huge, sized", huge, false, 64 << 10},
		{"huge, stream", huge, true, 64 << 10},
		{"under the limit, sized", big, false, 64 << 10},
		{"under the limit, stream", big, true, 4<<16 + 128<<10}, // first buffer only
	} {
		var r io.Reader = bytes.NewReader(tc.file)
		if tc.stream {
			r = streaming{r}
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ReadWAV(r, tc.name, Limits{})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBadWAV) {
			t.Errorf("%s: err = %v, want ErrBadWAV", tc.name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > tc.limit {
			t.Errorf("%s: allocated %d bytes, want <= %d", tc.name, got, tc.limit)
		}
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestWAVReadFailureIsNotBadWAV: an I/O failure is reported as such, not as a bad file.
func TestWAVReadFailureIsNotBadWAV(t *testing.T) {
	boom := errors.New("disk on fire")
	valid := wavFile("RIFF", "WAVE", -1, chunk{id: "LIST", body: []byte("INFO"), size: -1}, pcmFmt(1, 16000, 16),
		dataChunk(pcm16(1, 2, 3)))
	for n := range len(valid) {
		r := io.MultiReader(bytes.NewReader(valid[:n]), failingReader{boom})
		_, err := ReadWAV(r, "f", Limits{})
		if !errors.Is(err, boom) || errors.Is(err, ErrBadWAV) || !strings.HasPrefix(err.Error(), "speech: f: ") {
			t.Errorf("after %d bytes: err = %v, want the read error without ErrBadWAV", n, err)
		}
	}
}

// wavOracle walks the chunks of a file that ReadWAV accepted, independently of the reader,
// and returns the frame count its header declares.
func wavOracle(b []byte) (frames int, ok bool) {
	align := 0
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if body+16 > len(b) {
				return 0, false
			}
			align = int(binary.LittleEndian.Uint16(b[body+12:]))
		case "data":
			if align == 0 {
				return 0, false
			}
			return size / align, true
		}
		off = body + size + size&1
	}
	return 0, false
}
