package ingest

import (
	"bytes"
	"encoding/binary"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// seen is what an ingest saw of one regular file; a later ingest of the
// same name reuses the file's content when path, size, mtime, inode and
// ctime match. The ctime is what catches a file rewritten with its size
// kept and its mtime set back (cp -p, rsync -t, touch -r, a write within
// the mtime's granularity): no one can set it.
type seen struct {
	reuseKey
	size  int64
	mtime int64
	hash  hash.Hash
}

// reuseKey is the inode and status-change time of a file as the walk saw it.
type reuseKey struct {
	ino   uint64
	ctime int64
}

// indexFormat opens a reuse index. Indexes before it (which began with the
// listing's address, whose first byte is never this) held no ctimes; they
// decode as no index, so their files are read once more.
const indexFormat = 'c'

// encodeIndex returns the reuse index of one directory: the format byte,
// the address of the listing it was stored as, then the inode and ctime of
// each regular file in listing order (0 if unknown), sealed by 8 bytes of
// SHA-256. Names, sizes, mtimes and content addresses are in the listing
// itself.
func encodeIndex(listing hash.Hash, d *tree.Dir, ids map[string]reuseKey) []byte {
	b := append([]byte{indexFormat}, listing[:]...)
	for _, e := range d.Entries {
		if e.Type == tree.TypeFile {
			id := ids[e.Name]
			b = binary.AppendUvarint(b, id.ino)
			b = binary.AppendVarint(b, id.ctime)
		}
	}
	sum := hash.Sum(b)
	return append(b, sum[1:9]...)
}

// decodeIndex returns what the ingest that stored listing d (address h)
// saw of its files, by name. An index made for another listing, or
// damaged, yields nil, which only means the files are read again.
func decodeIndex(b []byte, h hash.Hash, d *tree.Dir) map[string]seen {
	if d == nil || len(b) < 1+hash.Size+8 || b[0] != indexFormat {
		return nil
	}
	body := b[:len(b)-8]
	if sum := hash.Sum(body); !bytes.Equal(sum[1:9], b[len(b)-8:]) || !bytes.Equal(body[1:1+hash.Size], h[:]) {
		return nil
	}
	body = body[1+hash.Size:]
	m := map[string]seen{}
	for _, e := range d.Entries {
		if e.Type != tree.TypeFile {
			continue
		}
		ino, k := binary.Uvarint(body)
		if k <= 0 {
			return nil
		}
		body = body[k:]
		ctime, k := binary.Varint(body)
		if k <= 0 {
			return nil
		}
		body = body[k:]
		if ino != 0 {
			m[e.Name] = seen{reuseKey: reuseKey{ino, ctime}, size: e.Size, mtime: e.MTime, hash: e.Hash}
		}
	}
	if len(body) != 0 {
		return nil
	}
	return m
}
