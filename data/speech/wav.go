package speech

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/ofa-go/ofa/data"
)

// ErrBadWAV is wrapped by every error about a malformed, truncated, unsupported or oversized
// WAV file, so callers can tell a bad file from, say, a permission problem.
var ErrBadWAV = errors.New("bad WAV file")

// DefaultMaxSamples is the sample-frame limit used when Limits.MaxSamples is not set: ten
// minutes at 48 kHz, which decodes to 110 MB of float32 samples.
const DefaultMaxSamples = 10 * 60 * 48000

// Rates outside [MinRate, MaxRate] are rejected by ReadWAV and WriteWAV.
const (
	MinRate = 1000
	MaxRate = 192000
)

// WAV format tags (mmreg.h).
const (
	wavePCM        = 0x0001
	waveExtensible = 0xFFFE
)

// pcmSubformatTail is bytes 2..15 of KSDATAFORMAT_SUBTYPE_PCM
// (00000001-0000-0010-8000-00aa00389b71); bytes 0..1 hold the format tag.
var pcmSubformatTail = []byte{0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71}

// Limits bounds what ReadWAV accepts, checked before any allocation.
type Limits struct {
	// MaxSamples is the largest number of sample frames (samples per channel) accepted;
	// <= 0 means DefaultMaxSamples.
	MaxSamples int64
}

func (l Limits) maxSamples() int64 {
	if l.MaxSamples <= 0 {
		return DefaultMaxSamples
	}
	return min(l.MaxSamples, int64(math.MaxInt32))
}

// Audio is a decoded clip: mono samples in [-1, 1] at Rate samples per second.
type Audio struct {
	// Rate is the sample rate in Hz.
	Rate int
	// Samples holds the mono signal; multi-channel files are averaged.
	Samples []float32
}

// Duration returns the length of the clip in seconds.
func (a *Audio) Duration() float64 { return float64(len(a.Samples)) / float64(a.Rate) }

// wavError is a format error: it reads "speech: <file>: <what>" and matches ErrBadWAV.
type wavError struct {
	name, msg string
}

func (e *wavError) Error() string { return "speech: " + e.name + ": " + e.msg }
func (e *wavError) Unwrap() error { return ErrBadWAV }

func badWAV(name, format string, args ...any) error {
	return &wavError{name: name, msg: fmt.Sprintf(format, args...)}
}

// ReadWAV decodes a RIFF/WAVE file from r; name is used only in error messages.
//
// It accepts uncompressed PCM (format tag 1, or WAVE_FORMAT_EXTENSIBLE with the PCM
// subformat) of 8-bit unsigned or 16-bit signed little-endian samples, any number of
// channels (averaged to mono) and rates from MinRate to MaxRate. Chunks other than "fmt "
// and "data" (LIST, fact, cue, ...) are skipped, honouring the pad byte after odd-sized
// chunks; "fmt " must come before "data", and nothing after the data chunk is read.
//
// Every header field is checked, and the declared sizes are checked against lim, against
// the enclosing RIFF chunk and, when the size of r is known (an in-memory reader, or a
// regular file that can Stat and Seek, such as *os.File and embed.FS files), against the
// bytes actually there, all before anything is allocated; a file that ends early is an
// error, never a short clip. Format errors wrap ErrBadWAV; failures of r itself are
// returned wrapped with the file name but without ErrBadWAV.
func ReadWAV(r io.Reader, name string, lim Limits) (*Audio, error) {
	size, sized := data.SizeHint(r)
	if !sized {
		size = -1
	}
	return ReadWAVSize(r, size, name, lim)
}

// ReadWAVSize is ReadWAV for a reader whose remaining length the caller knows (size >= 0),
// such as a section of a larger file; size < 0 means unknown, and ReadWAV then reads the
// input as a stream, growing its buffer as the samples actually arrive.
func ReadWAVSize(r io.Reader, size int64, name string, lim Limits) (*Audio, error) {
	d := wavDecoder{r: r, name: name, size: size}
	return d.decode(lim)
}

// wavDecoder tracks the position in the file so that messages can name offsets.
type wavDecoder struct {
	r    io.Reader
	name string
	size int64 // bytes in the file, or -1 if unknown
	off  int64 // bytes consumed so far
}

// format is the decoded "fmt " chunk.
type format struct {
	channels, rate, bits, blockAlign int
}

// read fills p, reporting how many bytes arrived; a short read is io.ErrUnexpectedEOF (or
// io.EOF if nothing arrived).
func (d *wavDecoder) read(p []byte) (int, error) {
	n, err := data.ReadFull(d.r, p)
	d.off += int64(n)
	return n, err
}

// left returns the bytes of the file after the current offset; it is meaningful only when
// the size is known.
func (d *wavDecoder) left() int64 { return max(d.size-d.off, 0) }

// ioErr classifies err from reading what (described for messages): running out of input is
// a truncated file, anything else a failure of the reader.
func (d *wavDecoder) ioErr(err error, got int, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badWAV(d.name, "truncated %s: file has %d", what, got)
	}
	return fmt.Errorf("speech: %s: reading %s: %w", d.name, what, err)
}

func (d *wavDecoder) decode(lim Limits) (*Audio, error) {
	var head [12]byte
	if n, err := d.read(head[:]); err != nil {
		return nil, d.ioErr(err, n, "header: want 12 bytes (RIFF, size, WAVE)")
	}
	if string(head[0:4]) != "RIFF" {
		return nil, badWAV(d.name, "bad magic: want \"RIFF\", found %q", head[0:4])
	}
	if string(head[8:12]) != "WAVE" {
		return nil, badWAV(d.name, "bad form type: want \"WAVE\", found %q", head[8:12])
	}
	riffSize := int64(binary.LittleEndian.Uint32(head[4:8]))
	if riffSize < 4 {
		return nil, badWAV(d.name, "RIFF chunk declares %d bytes, want >= 4", riffSize)
	}
	riffEnd := 8 + riffSize // file offset where the RIFF chunk ends

	var fmtc *format
	for {
		if d.off == riffEnd {
			if fmtc == nil {
				return nil, badWAV(d.name, "no \"fmt \" or \"data\" chunk in the %d-byte RIFF chunk", riffSize)
			}
			return nil, badWAV(d.name, "no \"data\" chunk in the %d-byte RIFF chunk", riffSize)
		}
		if riffEnd-d.off < 8 {
			return nil, badWAV(d.name, "%d stray bytes at offset %d, want an 8-byte chunk header or the end of the RIFF chunk",
				riffEnd-d.off, d.off)
		}
		var ch [8]byte
		at := d.off
		if n, err := d.read(ch[:]); err != nil {
			return nil, d.ioErr(err, n, "chunk header at offset %d: want 8 bytes", at)
		}
		id := string(ch[0:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		if room := riffEnd - d.off; size > room {
			return nil, badWAV(d.name, "chunk %q at offset %d declares %d bytes, RIFF chunk has %d left", id, at, size, room)
		}
		// The pad byte after an odd-sized chunk may be missing only at the end of the RIFF chunk.
		padded := min(size+size&1, riffEnd-d.off)
		switch id {
		case "fmt ":
			if fmtc != nil {
				return nil, badWAV(d.name, "second \"fmt \" chunk at offset %d", at)
			}
			f, err := d.readFormat(size, padded)
			if err != nil {
				return nil, err
			}
			fmtc = f
		case "data":
			if fmtc == nil {
				return nil, badWAV(d.name, "\"data\" chunk at offset %d before the \"fmt \" chunk", at)
			}
			return d.readData(*fmtc, size, lim)
		default:
			if err := d.skip(padded, id, at); err != nil {
				return nil, err
			}
		}
	}
}

// readFormat reads and validates a "fmt " chunk of size bytes (padded to padded).
func (d *wavDecoder) readFormat(size, padded int64) (*format, error) {
	at := d.off - 8
	if size < 16 {
		return nil, badWAV(d.name, "\"fmt \" chunk at offset %d has %d bytes, want >= 16", at, size)
	}
	var b [40]byte
	n := min(size, int64(len(b)))
	if got, err := d.read(b[:n]); err != nil {
		return nil, d.ioErr(err, got, "\"fmt \" chunk at offset %d: want %d bytes", at, size)
	}
	if err := d.skip(padded-n, "fmt ", at); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	tag := int(le.Uint16(b[0:]))
	f := &format{
		channels:   int(le.Uint16(b[2:])),
		rate:       int(le.Uint32(b[4:])),
		blockAlign: int(le.Uint16(b[12:])),
		bits:       int(le.Uint16(b[14:])),
	}
	byteRate := int64(le.Uint32(b[8:]))
	switch tag {
	case wavePCM:
	case waveExtensible:
		if size < 40 {
			return nil, badWAV(d.name, "WAVE_FORMAT_EXTENSIBLE \"fmt \" chunk has %d bytes, want >= 40", size)
		}
		if cb := le.Uint16(b[16:]); cb < 22 {
			return nil, badWAV(d.name, "WAVE_FORMAT_EXTENSIBLE extension size %d, want >= 22", cb)
		}
		sub := int(le.Uint16(b[24:]))
		if sub != wavePCM || !bytes.Equal(b[26:40], pcmSubformatTail) {
			return nil, badWAV(d.name, "unsupported WAVE_FORMAT_EXTENSIBLE subformat %x (%s), want PCM", b[24:40], tagName(sub))
		}
		if valid := int(le.Uint16(b[18:])); valid < 1 || valid > f.bits {
			return nil, badWAV(d.name, "%d valid bits in %d-bit samples, want 1 to %d", valid, f.bits, f.bits)
		}
	default:
		return nil, badWAV(d.name, "unsupported format tag 0x%04x (%s), want 1 (PCM) or 0xFFFE (extensible PCM)", tag, tagName(tag))
	}
	switch {
	case f.channels == 0:
		return nil, badWAV(d.name, "0 channels, want >= 1")
	case f.rate < MinRate || f.rate > MaxRate:
		return nil, badWAV(d.name, "sample rate %d Hz, want %d to %d", f.rate, MinRate, MaxRate)
	case f.bits != 8 && f.bits != 16:
		return nil, badWAV(d.name, "%d bits per sample, want 8 or 16", f.bits)
	case f.blockAlign != f.channels*f.bits/8:
		return nil, badWAV(d.name, "block align %d, want %d channels x %d bytes = %d",
			f.blockAlign, f.channels, f.bits/8, f.channels*f.bits/8)
	case byteRate != int64(f.rate)*int64(f.blockAlign):
		return nil, badWAV(d.name, "byte rate %d, want %d Hz x %d-byte blocks = %d",
			byteRate, f.rate, f.blockAlign, int64(f.rate)*int64(f.blockAlign))
	}
	return f, nil
}

// tagName names the common WAV format tags, for error messages.
func tagName(tag int) string {
	switch tag {
	case 0x0001:
		return "PCM"
	case 0x0002:
		return "MS ADPCM"
	case 0x0003:
		return "IEEE float"
	case 0x0006:
		return "A-law"
	case 0x0007:
		return "mu-law"
	case 0x0011:
		return "IMA ADPCM"
	case 0x0055:
		return "MP3"
	case 0xFFFE:
		return "extensible"
	}
	return "unknown"
}

// skip discards n bytes of the chunk id that starts at file offset at.
func (d *wavDecoder) skip(n int64, id string, at int64) error {
	if n == 0 {
		return nil
	}
	truncated := func(have int64) error {
		return badWAV(d.name, "truncated chunk %q at offset %d: want %d more bytes, file has %d", id, at, n, have)
	}
	if d.size >= 0 && n > d.left() {
		return truncated(d.left())
	}
	var scratch [4096]byte
	var done int64
	for done < n {
		m, err := data.ReadSome(d.r, scratch[:min(int64(len(scratch)), n-done)])
		done += int64(m)
		d.off += int64(m)
		switch {
		case err == nil, done == n:
		case errors.Is(err, io.EOF):
			return truncated(done)
		default:
			return fmt.Errorf("speech: %s: skipping chunk %q at offset %d: %w", d.name, id, at, err)
		}
	}
	return nil
}

// readData decodes a data chunk of size bytes.
func (d *wavDecoder) readData(f format, size int64, lim Limits) (*Audio, error) {
	at := d.off - 8
	if size%int64(f.blockAlign) != 0 {
		return nil, badWAV(d.name, "\"data\" chunk at offset %d has %d bytes, not a whole number of %d-byte frames",
			at, size, f.blockAlign)
	}
	frames := size / int64(f.blockAlign)
	if maxS := lim.maxSamples(); frames > maxS {
		return nil, badWAV(d.name, "\"data\" chunk declares %d frames (%d bytes), more than the limit of %d",
			frames, size, maxS)
	}
	declared := func() string {
		return fmt.Sprintf("\"data\" chunk declares %d bytes (%d frames)", size, frames)
	}
	if d.size >= 0 && size > d.left() {
		return nil, badWAV(d.name, "truncated: %s, file has %d", declared(), d.left())
	}
	var samples []float32
	if d.size >= 0 {
		samples = make([]float32, 0, frames)
	} else {
		samples = make([]float32, 0, min(frames, 1<<16))
	}
	perBuf := max(1, 32<<10/f.blockAlign)
	buf := make([]byte, perBuf*f.blockAlign)
	bps, ch := f.bits/8, f.channels
	inv := 1 / float32(ch)
	for done := int64(0); done < frames; {
		k := int(min(int64(perBuf), frames-done))
		chunk := buf[:k*f.blockAlign]
		n, err := d.read(chunk)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, badWAV(d.name, "truncated: %s, file has %d", declared(), done*int64(f.blockAlign)+int64(n))
			}
			return nil, fmt.Errorf("speech: %s: reading %s: %w", d.name, declared(), err)
		}
		for i := range k {
			frame := chunk[i*f.blockAlign : (i+1)*f.blockAlign]
			var sum float32
			if bps == 1 {
				for _, b := range frame {
					sum += (float32(b) - 128) / 128
				}
			} else {
				for c := range ch {
					sum += float32(int16(binary.LittleEndian.Uint16(frame[2*c:]))) / 32768
				}
			}
			if ch > 1 {
				sum *= inv
			}
			samples = append(samples, sum)
		}
		done += int64(k)
	}
	return &Audio{Rate: f.rate, Samples: samples}, nil
}

// WriteWAV writes a as a mono PCM WAV file of 8-bit unsigned or 16-bit signed samples
// (bits 8 or 16). Samples are clipped to [-1, 1] and rounded; NaN is written as 0. Every
// value ReadWAV returns for a file of the same depth is written back unchanged.
func WriteWAV(w io.Writer, a *Audio, bits int) error {
	switch {
	case a == nil:
		return errors.New("speech: WriteWAV: nil audio")
	case bits != 8 && bits != 16:
		return fmt.Errorf("speech: WriteWAV: %d bits per sample, want 8 or 16", bits)
	case a.Rate < MinRate || a.Rate > MaxRate:
		return fmt.Errorf("speech: WriteWAV: sample rate %d Hz, want %d to %d", a.Rate, MinRate, MaxRate)
	}
	bps := bits / 8
	dataSize := int64(len(a.Samples)) * int64(bps)
	pad := dataSize & 1
	if 36+dataSize+pad > math.MaxUint32 {
		return fmt.Errorf("speech: WriteWAV: %d samples do not fit in a WAV file", len(a.Samples))
	}
	buf := make([]byte, 44, 44+dataSize+pad)
	copy(buf[0:], "RIFF")
	le := binary.LittleEndian
	le.PutUint32(buf[4:], uint32(36+dataSize+pad))
	copy(buf[8:], "WAVEfmt ")
	le.PutUint32(buf[16:], 16)
	le.PutUint16(buf[20:], wavePCM)
	le.PutUint16(buf[22:], 1)
	le.PutUint32(buf[24:], uint32(a.Rate))
	le.PutUint32(buf[28:], uint32(a.Rate*bps))
	le.PutUint16(buf[32:], uint16(bps))
	le.PutUint16(buf[34:], uint16(bits))
	copy(buf[36:], "data")
	le.PutUint32(buf[40:], uint32(dataSize))
	for _, x := range a.Samples {
		if x != x { // NaN
			x = 0
		}
		if bits == 8 {
			v := math.Round(float64(x)*128) + 128
			buf = append(buf, byte(min(max(v, 0), 255)))
		} else {
			v := math.Round(float64(x) * 32768)
			buf = le.AppendUint16(buf, uint16(int16(min(max(v, -32768), 32767))))
		}
	}
	if pad == 1 {
		buf = append(buf, 0)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("speech: WriteWAV: %w", err)
	}
	return nil
}
