package chunk

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Codecs of chunks compressed with another chunk's content (their
// reference) as a raw zstd dictionary, as `zstd --patch-from` does. They
// decode alike; the codec records how the reference was chosen.
const (
	// Delta: the reference is an earlier version of the same content
	// (the same path's chunk in the parent version).
	Delta Codec = 2
	// Cross: the reference is other content (a chunk of a neighbouring
	// file, or the previous chunk of the same file).
	Cross Codec = 3
)

// DeltaWins: a delta of at most 1/DeltaWins of the raw chunk is kept
// without trying other references or plain compression (on the gomod
// corpus, a delta against the previous version of a file is a tenth of
// its plain compressed size).
const DeltaWins = 8

// HasRef reports whether chunks of codec c need their reference to decode.
func (c Codec) HasRef() bool { return c == Delta || c == Cross }

// DeltaDryer compresses chunks against reference chunks. It is safe for
// concurrent use; each call borrows an encoder from a pool.
type DeltaDryer struct {
	small, large deltaPool
}

// deltaPool holds encoders of one level, concurrency 1.
type deltaPool struct {
	level Level
	pool  sync.Pool
}

// DeltaSmall: chunks below this size are delta-dried at the fastest level.
// Installing a reference costs a fixed time that grows with the level's
// hash tables (0.1 ms fastest, 0.5 ms default, measured here), which
// dominates small chunks; on the gomod corpus the fastest level's deltas
// are 13% larger.
const DeltaSmall = 16 << 10

// NewDeltaDryer returns a DeltaDryer; chunks of at least DeltaSmall bytes
// are compressed at level.
func NewDeltaDryer(level Level) *DeltaDryer {
	return &DeltaDryer{small: deltaPool{level: zstd.SpeedFastest}, large: deltaPool{level: level}}
}

// Dry appends raw compressed against ref to dst. It streams through a
// pooled encoder: EncodeAll would install the reference twice per call.
func (d *DeltaDryer) Dry(dst, raw, ref []byte) ([]byte, error) {
	p := &d.large
	if len(raw) < DeltaSmall {
		p = &d.small
	}
	w := &appender{b: dst}
	enc, _ := p.pool.Get().(*zstd.Encoder)
	var err error
	if enc == nil {
		enc, err = zstd.NewWriter(w, zstd.WithEncoderLevel(p.level), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderDictRaw(0, ref))
	} else {
		err = enc.ResetWithOptions(w, zstd.WithEncoderDictRaw(0, ref))
	}
	if err != nil {
		return nil, fmt.Errorf("zstd delta encoder: %w", err)
	}
	if _, err = enc.Write(raw); err == nil {
		err = enc.Close()
	}
	// Resetting would install the reference again: a pooled encoder keeps
	// its last reference and output until its next use.
	p.pool.Put(enc)
	if err != nil {
		return nil, fmt.Errorf("zstd delta encode: %w", err)
	}
	return w.b, nil
}

// appender is an io.Writer appending to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// deltaDecoders pools single-threaded decoders for delta chunks; each
// use installs its reference as dictionary 0.
var deltaDecoders sync.Pool

// HydrateDelta returns the content of a Delta chunk of size bytes with
// content address h, given its reference's content, or an error wrapping
// ErrCorrupt if it does not decode to exactly that content.
func HydrateDelta(h hash.Hash, size int, stored, ref []byte) ([]byte, error) {
	raw, err := decodeDelta(stored, ref, make([]byte, 0, size))
	if err != nil {
		return nil, fmt.Errorf("%w chunk %s: %v", ErrCorrupt, h, err)
	}
	if err := verify(h, size, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// DecodeDelta decompresses what DeltaDryer.Dry made with ref. The caller
// verifies the result.
func DecodeDelta(stored, ref []byte) ([]byte, error) {
	return decodeDelta(stored, ref, nil)
}

func decodeDelta(stored, ref, dst []byte) ([]byte, error) {
	dec, _ := deltaDecoders.Get().(*zstd.Decoder)
	var err error
	if dec == nil {
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.IgnoreChecksum(true),
			zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderDictRaw(0, ref))
	} else {
		err = dec.ResetWithOptions(nil, zstd.WithDecoderDictRaw(0, ref))
	}
	if err != nil {
		return nil, fmt.Errorf("zstd delta decoder: %w", err)
	}
	raw, err := dec.DecodeAll(stored, dst)
	dec.ResetWithOptions(nil, zstd.WithDecoderDictRaw(0, nil))
	deltaDecoders.Put(dec)
	return raw, err
}
