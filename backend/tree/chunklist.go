package tree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// ChunkRef is one chunk of a file: its content address and raw size.
type ChunkRef struct {
	Hash hash.Hash
	Size uint32
}

// ChunkList is a file's chunks in order, with cumulative offsets so that the
// chunk holding any byte offset is found by binary search.
type ChunkList struct {
	Chunks []ChunkRef
	// Ends[i] is the file offset just past chunk i.
	Ends []int64
}

// checkLen is the number of digest bytes that seal an encoded chunk list.
const checkLen = 8

// MaxChunkSize bounds a chunk's raw size in any encoding.
const MaxChunkSize = 64 << 20

// EncodeChunkList returns the canonical encoding of a chunk list:
// uvarint count, then per chunk uvarint size and the 33-byte hash, sealed by
// the first 8 bytes of the SHA-256 of everything before them, so a damaged
// list is detected before any chunk is read.
func EncodeChunkList(chunks []ChunkRef) []byte {
	b := make([]byte, 0, 4+len(chunks)*(hash.Size+3)+checkLen)
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = binary.AppendUvarint(b, uint64(c.Size))
		b = append(b, c.Hash[:]...)
	}
	sum := hash.Sum(b)
	return append(b, sum[1:1+checkLen]...)
}

// DecodeChunkList parses an encoded chunk list and checks its seal and that
// its sizes add up to size.
func DecodeChunkList(b []byte, size int64) (*ChunkList, error) {
	if len(b) < 1+checkLen {
		return nil, fmt.Errorf("%w: chunk list too short", ErrMalformed)
	}
	body, seal := b[:len(b)-checkLen], b[len(b)-checkLen:]
	if sum := hash.Sum(body); !bytes.Equal(sum[1:1+checkLen], seal) {
		return nil, fmt.Errorf("%w: chunk list checksum mismatch", ErrMalformed)
	}
	d := decoder{b: body}
	n := d.uvarint("chunk count")
	if d.err == nil && n > uint64(len(body)/(hash.Size+1)) {
		d.fail("chunk count")
	}
	if d.err != nil {
		return nil, d.err
	}
	l := &ChunkList{Chunks: make([]ChunkRef, n), Ends: make([]int64, n)}
	var off int64
	for i := range l.Chunks {
		sz := d.uvarint("chunk size")
		if d.err == nil && (sz == 0 || sz > MaxChunkSize) {
			d.fail("chunk size")
		}
		h := d.hash("chunk hash")
		if d.err != nil {
			return nil, d.err
		}
		off += int64(sz)
		l.Chunks[i] = ChunkRef{Hash: h, Size: uint32(sz)}
		l.Ends[i] = off
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after chunk list", ErrMalformed)
	}
	if off != size {
		return nil, fmt.Errorf("%w: chunk sizes add up to %d, file size is %d", ErrMalformed, off, size)
	}
	return l, nil
}

// OneChunk returns the list of a file that is one chunk of size bytes
// with content address h (such files have no stored list).
func OneChunk(h hash.Hash, size int64) *ChunkList {
	return &ChunkList{Chunks: []ChunkRef{{Hash: h, Size: uint32(size)}}, Ends: []int64{size}}
}

// Find returns the index of the chunk holding offset off, or len(Chunks) if
// off is at or past the end.
func (l *ChunkList) Find(off int64) int {
	return sort.Search(len(l.Ends), func(i int) bool { return l.Ends[i] > off })
}

// Start returns the file offset of chunk i.
func (l *ChunkList) Start(i int) int64 {
	if i == 0 {
		return 0
	}
	return l.Ends[i-1]
}

// Size returns the file size the list covers.
func (l *ChunkList) Size() int64 {
	if len(l.Ends) == 0 {
		return 0
	}
	return l.Ends[len(l.Ends)-1]
}

// MemSize estimates the bytes a decoded list occupies, for cache accounting.
func (l *ChunkList) MemSize() int64 { return int64(len(l.Chunks))*(hash.Size+4+8) + 64 }
