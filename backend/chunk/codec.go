package chunk

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Codec says how a chunk's stored bytes encode its content.
type Codec uint8

// Stored codecs. A chunk that zstd does not shrink is stored raw.
const (
	Raw  Codec = 0
	Zstd Codec = 1
)

// ErrCorrupt reports stored bytes that do not rehydrate to their hash.
var ErrCorrupt = errors.New("corrupt")

// Level is a zstd effort level, named as klauspost/compress names them.
type Level = zstd.EncoderLevel

// ParseLevel accepts fastest, default, better or best.
func ParseLevel(s string) (Level, error) {
	ok, l := zstd.EncoderLevelFromString(s)
	if !ok {
		return 0, fmt.Errorf("unknown compression level %q (fastest, default, better, best)", s)
	}
	return l, nil
}

// Dryer compresses chunks, optionally with a trained dictionary. It is
// safe for concurrent use.
type Dryer struct {
	enc  *zstd.Encoder
	dict *zstd.Encoder // nil without a dictionary
}

// DictMinSize: chunks at least this large are also compressed without the
// dictionary and the smaller result kept; a dictionary helps small chunks
// most, and trying both on every chunk would double the cost of drying.
const DictMinSize = 32 << 10

func newEncoder(level Level, more ...zstd.EOption) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil, append([]zstd.EOption{
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(false), // every chunk is verified by its hash
		zstd.WithEncoderConcurrency(2 * runtime.GOMAXPROCS(0)),
		zstd.WithZeroFrames(true)}, more...)...)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return enc, nil
}

// NewDryer returns a Dryer at level; with dict (a zstd dictionary as
// BuildDict makes it) chunks are compressed with it.
func NewDryer(level Level, dict []byte) (*Dryer, error) {
	enc, err := newEncoder(level)
	if err != nil {
		return nil, err
	}
	d := &Dryer{enc: enc}
	if dict != nil {
		if d.dict, err = newEncoder(level, zstd.WithEncoderDict(dict)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Dry appends the stored form of raw to dst and returns it with its codec
// and whether the dictionary was used: the smallest of raw, zstd and (with
// a dictionary) zstd with the dictionary.
func (d *Dryer) Dry(dst, raw []byte) ([]byte, Codec, bool) {
	start := len(dst)
	if d.dict != nil {
		out := d.dict.EncodeAll(raw, dst)
		if len(raw) < DictMinSize && len(out)-start < len(raw) {
			return out, Zstd, true
		}
		plain := d.enc.EncodeAll(raw, nil)
		switch {
		case len(out)-start <= len(plain) && len(out)-start < len(raw):
			return out, Zstd, true
		case len(plain) < len(raw):
			return append(out[:start], plain...), Zstd, false
		}
		return append(out[:start], raw...), Raw, false
	}
	out := d.enc.EncodeAll(raw, dst)
	if len(out)-start >= len(raw) {
		return append(out[:start], raw...), Raw, false
	}
	return out, Zstd, false
}

// Hydrator decompresses and verifies chunks, those dried with its
// dictionary if it has one. It is safe for concurrent use.
type Hydrator struct {
	dec *zstd.Decoder
}

// NewHydrator returns a Hydrator; dict is the dictionary chunks were dried
// with, or nil.
func NewHydrator(dict []byte) (*Hydrator, error) {
	opts := []zstd.DOption{
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.IgnoreChecksum(true),
		zstd.WithDecoderMaxMemory(1 << 30)}
	if dict != nil {
		opts = append(opts, zstd.WithDecoderDicts(dict))
	}
	dec, err := zstd.NewReader(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &Hydrator{dec: dec}, nil
}

// Hydrate returns the content of a stored chunk of size bytes whose content
// address is h, or an error wrapping ErrCorrupt if it does not decode to
// exactly that content.
func (y *Hydrator) Hydrate(h hash.Hash, codec Codec, size int, stored []byte) ([]byte, error) {
	var raw []byte
	switch codec {
	case Raw:
		raw = stored
	case Zstd:
		var err error
		raw, err = y.dec.DecodeAll(stored, make([]byte, 0, size))
		if err != nil {
			return nil, fmt.Errorf("%w chunk %s: %v", ErrCorrupt, h, err)
		}
	case Delta:
		return nil, fmt.Errorf("chunk %s: a delta chunk needs its reference (HydrateDelta)", h)
	default:
		return nil, fmt.Errorf("%w chunk %s: unknown codec %d", ErrCorrupt, h, codec)
	}
	if err := verify(h, size, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// verify checks that raw is the size bytes with content address h.
func verify(h hash.Hash, size int, raw []byte) error {
	if len(raw) != size {
		return fmt.Errorf("%w chunk %s: %d bytes, want %d", ErrCorrupt, h, len(raw), size)
	}
	if hash.Sum(raw) != h {
		return fmt.Errorf("%w chunk %s: content does not match its hash", ErrCorrupt, h)
	}
	return nil
}
