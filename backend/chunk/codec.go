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

// Dryer compresses chunks. It is safe for concurrent use.
type Dryer struct {
	enc *zstd.Encoder
}

// NewDryer returns a Dryer at level.
func NewDryer(level Level) (*Dryer, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(false), // every chunk is verified by its hash
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &Dryer{enc: enc}, nil
}

// Dry appends the stored form of raw to dst and returns it with its codec:
// zstd when that is smaller, raw otherwise.
func (d *Dryer) Dry(dst, raw []byte) ([]byte, Codec) {
	start := len(dst)
	out := d.enc.EncodeAll(raw, dst)
	if len(out)-start >= len(raw) {
		return append(out[:start], raw...), Raw
	}
	return out, Zstd
}

// Hydrator decompresses and verifies chunks. It is safe for concurrent use.
type Hydrator struct {
	dec *zstd.Decoder
}

// NewHydrator returns a Hydrator.
func NewHydrator() (*Hydrator, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.IgnoreChecksum(true),
		zstd.WithDecoderMaxMemory(1<<30))
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
	default:
		return nil, fmt.Errorf("%w chunk %s: unknown codec %d", ErrCorrupt, h, codec)
	}
	if len(raw) != size {
		return nil, fmt.Errorf("%w chunk %s: %d bytes, want %d", ErrCorrupt, h, len(raw), size)
	}
	if hash.Sum(raw) != h {
		return nil, fmt.Errorf("%w chunk %s: content does not match its hash", ErrCorrupt, h)
	}
	return raw, nil
}
