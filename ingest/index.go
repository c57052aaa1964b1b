package ingest

import (
	"bytes"
	"encoding/binary"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// seen is what an ingest saw of one regular file; a later ingest of the
// same name reuses the file's content when path, size, mtime and inode match.
type seen struct {
	ino   uint64
	size  int64
	mtime int64
	hash  hash.Hash
}

// encodeIndex packs one directory's files: per file its name, inode, size,
// mtime and content hash, sealed by 8 bytes of SHA-256.
func encodeIndex(m map[string]seen) []byte {
	var b []byte
	for name, s := range m {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = binary.AppendUvarint(b, s.ino)
		b = binary.AppendUvarint(b, uint64(s.size))
		b = binary.AppendVarint(b, s.mtime)
		b = append(b, s.hash[:]...)
	}
	sum := hash.Sum(b)
	return append(b, sum[1:9]...)
}

// decodeIndex unpacks encodeIndex's output; damaged data yields nil, which
// only means the files are read again.
func decodeIndex(b []byte) map[string]seen {
	if len(b) < 8 {
		return nil
	}
	body := b[:len(b)-8]
	if sum := hash.Sum(body); !bytes.Equal(sum[1:9], b[len(b)-8:]) {
		return nil
	}
	m := map[string]seen{}
	for len(body) > 0 {
		n, k := binary.Uvarint(body)
		if k <= 0 || uint64(len(body)-k) < n {
			return nil
		}
		name := string(body[k : k+int(n)])
		body = body[k+int(n):]
		var s seen
		var k1, k2, k3 int
		var size uint64
		s.ino, k1 = binary.Uvarint(body)
		if k1 <= 0 {
			return nil
		}
		size, k2 = binary.Uvarint(body[k1:])
		if k2 <= 0 {
			return nil
		}
		s.mtime, k3 = binary.Varint(body[k1+k2:])
		if k3 <= 0 {
			return nil
		}
		body = body[k1+k2+k3:]
		h, err := hash.FromBytes(body[:min(hash.Size, len(body))])
		if err != nil {
			return nil
		}
		body = body[hash.Size:]
		s.size, s.hash = int64(size), h
		m[name] = s
	}
	return m
}
