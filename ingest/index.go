package ingest

import (
	"bytes"
	"encoding/binary"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// seen is what an ingest saw of one regular file; a later ingest of the
// same name reuses the file's content when path, size, mtime and inode match.
type seen struct {
	ino   uint64
	size  int64
	mtime int64
	hash  hash.Hash
}

// encodeIndex returns the reuse index of one directory: the address of the
// listing it was stored as, then the inode of each regular file in listing
// order (0 if unknown), sealed by 8 bytes of SHA-256. Names, sizes, mtimes
// and content addresses are in the listing itself.
func encodeIndex(listing hash.Hash, d *tree.Dir, inos map[string]uint64) []byte {
	b := append([]byte{}, listing[:]...)
	for _, e := range d.Entries {
		if e.Type == tree.TypeFile {
			b = binary.AppendUvarint(b, inos[e.Name])
		}
	}
	sum := hash.Sum(b)
	return append(b, sum[1:9]...)
}

// decodeIndex returns what the ingest that stored listing d (address h)
// saw of its files, by name. An index made for another listing, or
// damaged, yields nil, which only means the files are read again.
func decodeIndex(b []byte, h hash.Hash, d *tree.Dir) map[string]seen {
	if d == nil || len(b) < hash.Size+8 {
		return nil
	}
	body := b[:len(b)-8]
	if sum := hash.Sum(body); !bytes.Equal(sum[1:9], b[len(b)-8:]) || !bytes.Equal(body[:hash.Size], h[:]) {
		return nil
	}
	body = body[hash.Size:]
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
		if ino != 0 {
			m[e.Name] = seen{ino: ino, size: e.Size, mtime: e.MTime, hash: e.Hash}
		}
	}
	if len(body) != 0 {
		return nil
	}
	return m
}
