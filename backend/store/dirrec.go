package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"zombiezen.com/go/sqlite"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// A directory record (dirs.data) is a codec byte and then the listing's
// canonical encoding: raw, zstd, or for chunk.Delta a uvarint chain depth,
// the 33-byte address of a base listing and zstd with the base's encoding
// as raw dictionary. Listings of successive versions of a directory differ
// in a few entries, so a delta is a fraction of the compressed listing.

// DirBase is the listing a new listing is delta-dried against.
type DirBase struct {
	Hash  hash.Hash
	Enc   []byte // its canonical encoding
	Depth int    // its reference chain depth
}

var (
	dirEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(2))
	dirDelta      = chunk.NewDeltaDryer(zstd.SpeedDefault)
	// dirDecoder inflates compressed listings; DecodeAll is safe for concurrent use.
	dirDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))
)

// packDir returns the smallest record of a listing: raw, zstd, or a delta
// against base when base is not nil.
func packDir(enc []byte, base *DirBase) []byte {
	out := append([]byte{byte(chunk.Raw)}, enc...)
	if len(enc) <= 128 {
		return out
	}
	if z := dirEncoder.EncodeAll(enc, []byte{byte(chunk.Zstd)}); len(z) < len(out) {
		out = z
	}
	if base != nil {
		head := binary.AppendUvarint([]byte{byte(chunk.Delta)}, uint64(base.Depth+1))
		head = append(head, base.Hash[:]...)
		if d, err := dirDelta.Dry(head, enc, base.Enc); err == nil && len(d) < len(out) {
			out = d
		}
	}
	return out
}

// dirRecord is a parsed directory record.
type dirRecord struct {
	codec   chunk.Codec
	depth   int
	base    hash.Hash
	payload []byte
}

func parseDirRecord(blob []byte) (dirRecord, error) {
	if len(blob) == 0 {
		return dirRecord{}, errors.New("empty directory record")
	}
	r := dirRecord{codec: chunk.Codec(blob[0]), payload: blob[1:]}
	switch r.codec {
	case chunk.Raw, chunk.Zstd:
		return r, nil
	case chunk.Delta:
		// One spelling per depth: a padded uvarint (0x81 0x00 for 1) is
		// refused, as the listing encoding refuses non-canonical bytes.
		d, n := binary.Uvarint(r.payload)
		if n <= 0 || n != uvarintLen(d) || d < 1 || d > MaxChainDepth || len(r.payload) < n+hash.Size {
			return r, errors.New("bad delta directory header")
		}
		base, err := hash.FromBytes(r.payload[n : n+hash.Size])
		if err != nil {
			return r, fmt.Errorf("delta directory base: %w", err)
		}
		r.depth, r.base, r.payload = int(d), base, r.payload[n+hash.Size:]
		return r, nil
	}
	return r, fmt.Errorf("unknown directory codec %d", blob[0])
}

// uvarintLen is the length of x's shortest uvarint.
func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
}

// dirBlob returns column expression col of listing h's row.
func (s *Store) dirBlob(ctx context.Context, h hash.Hash, col string) ([]byte, error) {
	var blob []byte
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT `+col+` FROM dirs WHERE hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				blob = columnCopy(st, 0)
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("directory %s: %w", h, ErrNotFound)
	}
	return blob, err
}

// DirBaseFor returns the base a new listing is delta-dried against when
// listing h is the same directory in the parent version: h itself if its
// chain is shorter than maxDepth, else the listing at the root of its
// chain.
func (s *Store) DirBaseFor(ctx context.Context, h hash.Hash, maxDepth int) (*DirBase, error) {
	head, err := s.dirBlob(ctx, h, `substr(data, 1, 48)`)
	if err != nil {
		return nil, missing(err, "directory", h)
	}
	r, err := parseDirRecord(head)
	if err != nil {
		return nil, fmt.Errorf("%w: directory %s: %v", ErrCorrupt, h, err)
	}
	if r.depth+1 > maxDepth {
		return s.DirBaseFor(ctx, r.base, 1)
	}
	d, err := s.Dir(ctx, h)
	if err != nil {
		return nil, err
	}
	enc, err := d.Encode()
	if err != nil {
		return nil, err
	}
	return &DirBase{Hash: h, Enc: enc, Depth: r.depth}, nil
}
