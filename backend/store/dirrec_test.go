package store

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// FuzzParseDirRecord: parseDirRecord never panics, and a record it
// accepts is exactly the header it describes followed by its payload (one
// byte string per record: no second spelling of a depth).
func FuzzParseDirRecord(f *testing.F) {
	enc := bytes.Repeat([]byte("a listing's canonical encoding "), 8)
	base := &DirBase{Hash: hash.Sum([]byte("base")), Enc: bytes.Repeat([]byte("a listing's canonical encodinG "), 8), Depth: 3}
	f.Add(packDir(enc, nil))
	f.Add(packDir(enc, base))
	f.Add(append([]byte{byte(chunk.Raw)}, enc...))
	f.Add(append([]byte{byte(chunk.Delta), 0x81, 0x00}, base.Hash[:]...)) // depth 1, spelt in two bytes
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		r, err := parseDirRecord(blob)
		if err != nil {
			return
		}
		head := []byte{byte(r.codec)}
		switch r.codec {
		case chunk.Raw, chunk.Zstd:
		case chunk.Delta:
			if r.depth < 1 || r.depth > MaxChainDepth {
				t.Fatalf("depth %d accepted", r.depth)
			}
			head = binary.AppendUvarint(head, uint64(r.depth))
			head = append(head, r.base[:]...)
		default:
			t.Fatalf("codec %d accepted", r.codec)
		}
		if again := append(head, r.payload...); !bytes.Equal(again, blob) {
			t.Fatalf("record re-encodes differently:\n in  %x\n out %x", blob, again)
		}
	})
}
