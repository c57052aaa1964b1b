// Package layout is the published form of a store: the same bytes in a
// plain directory, behind any static web server, from `serve http`, or in
// an S3 bucket prefix.
//
// Every object is immutable and named by its content address under a
// hash-prefix fan-out, one directory per kind:
//
//	objects/chunk/ab/cdef…   a chunk's stored frame (Kind Chunk)
//	objects/dir/ab/cdef…     a directory listing record (Kind Listing)
//	objects/list/ab/cdef…    a multi-chunk file's chunk list (Kind ChunkList)
//	objects/dict/ab/cdef…    a trained zstd dictionary (Kind Dict)
//	objects/pack/ab/cdef…    the chunks of a listing's small files (Kind Pack;
//	                         named by the listing's address, see BuildPack)
//	objects/tree/ab/cdef…    the listings of a directory tree (Kind Tree;
//	                         named by its top listing's address, see BuildTree)
//
// where abcdef… is the hex SHA-256 digest of the uncompressed content (of
// the file, for a chunk list; a one-chunk file has no list object: it is
// its chunk). The kinds live apart because two kinds can share an address
// (a file whose bytes are a listing's encoding). One small mutable index,
// index.json, names the roots; it is written last, after every object it
// needs.
//
// An object is a header and a body:
//
//	"SDFO" | format version (1) | kind | address (33 bytes) | kind fields | body
//
// chunk:  codec byte, uvarint decoded size, uvarint chain depth, dictionary
//
//	(0, or 1 and its 33-byte address), uvarint reference count, the
//	33-byte references, then the stored frame;
//
// dir:    the listing record as the store keeps it (codec, optional delta
//
//	base, payload);
//
// list:   uvarint file size, then the sealed chunk-list encoding;
// dict:   the dictionary's bytes;
// pack:   chunk objects (see BuildPack);
// tree:   listing objects (see BuildTree).
//
// The header is not trusted: readers verify content against its address
// above the store.Source seam (store.Objects), and Decode refuses any
// header the encoder would not write.
package layout

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Kind is what an object holds.
type Kind byte

// Object kinds.
const (
	Chunk     Kind = 1 // a chunk's stored frame
	Listing   Kind = 2 // a directory listing record
	ChunkList Kind = 3 // a multi-chunk file's chunk list
	Dict      Kind = 4 // a trained dictionary
	Pack      Kind = 5 // a listing's small files' chunks
	Tree      Kind = 6 // a directory tree's listings
)

var kindDirs = map[Kind]string{Chunk: "chunk", Listing: "dir", ChunkList: "list", Dict: "dict", Pack: "pack", Tree: "tree"}

// String names the kind as its objects' directory does.
func (k Kind) String() string {
	if d, ok := kindDirs[k]; ok {
		return d
	}
	return fmt.Sprintf("kind%d", byte(k))
}

// IndexKey is the roots index's name in a layout.
const IndexKey = "index.json"

// Limits on what Decode accepts.
const (
	// MaxObjectSize bounds an encoded object: a frame of the largest chunk
	// stored raw, or a chunk list of a file of millions of chunks.
	MaxObjectSize = 2*tree.MaxChunkSize + 1<<16
	// MaxRefs bounds a chunk's references.
	MaxRefs = 16
)

const (
	magic         = "SDFO"
	formatVersion = 1
	headerSize    = len(magic) + 2 + hash.Size
)

// Key returns the name of object h of kind k in a layout.
func Key(k Kind, h hash.Hash) string {
	x := hex.EncodeToString(h[1:])
	return "objects/" + k.String() + "/" + x[:2] + "/" + x[2:]
}

// IsObjectKey reports whether key names an object (objects/…) rather than
// the roots index. Fetchers read a 403 for an object as a missing one:
// S3 answers 403 AccessDenied, not 404, for a key that is not there when
// the reader may not list the bucket (a public-read policy granting
// s3:GetObject only), and a multi-chunk file's first probe (ChunkList) is
// for a chunk that is never there. A 403 for the index stays an error, so
// that a layout the reader may not read fails at the first request.
func IsObjectKey(key string) bool { return strings.HasPrefix(key, "objects/") }

// ParseKey is the inverse of Key; it refuses any other name.
func ParseKey(key string) (Kind, hash.Hash, error) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "objects" || len(parts[2]) != 2 {
		return 0, hash.Zero, fmt.Errorf("not an object name: %q", key)
	}
	for k, d := range kindDirs {
		if d != parts[1] {
			continue
		}
		h, err := hash.Parse("sha256:" + parts[2] + parts[3])
		if err != nil || Key(k, h) != key {
			return 0, hash.Zero, fmt.Errorf("not an object name: %q", key)
		}
		return k, h, nil
	}
	return 0, hash.Zero, fmt.Errorf("not an object name: %q", key)
}

// Object is a decoded object; the fields of its kind are set.
type Object struct {
	Kind   Kind
	Hash   hash.Hash
	Frame  store.Frame      // Chunk
	Record []byte           // Listing: the record as the store keeps it
	File   store.FileRecord // ChunkList
	Data   []byte           // Dict
	Pack   []Object         // Pack: its member chunks; Tree: its listings
}

func header(k Kind, h hash.Hash, extra int) []byte {
	b := make([]byte, 0, headerSize+extra)
	b = append(b, magic...)
	b = append(b, formatVersion, byte(k))
	return append(b, h[:]...)
}

// EncodeChunk returns the object of chunk h stored as frame f.
func EncodeChunk(h hash.Hash, f store.Frame) []byte {
	b := header(Chunk, h, 32+len(f.Refs)*hash.Size+len(f.Data))
	b = append(b, byte(f.Codec))
	b = binary.AppendUvarint(b, uint64(f.Size))
	b = binary.AppendUvarint(b, uint64(f.Depth))
	if f.Dict.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = append(b, f.Dict[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(f.Refs)))
	for _, r := range f.Refs {
		b = append(b, r[:]...)
	}
	return append(b, f.Data...)
}

// EncodeListing returns the object of listing h with stored record rec.
func EncodeListing(h hash.Hash, rec []byte) []byte {
	return append(header(Listing, h, len(rec)), rec...)
}

// EncodeChunkList returns the object of multi-chunk file h.
func EncodeChunkList(h hash.Hash, f store.FileRecord) []byte {
	b := header(ChunkList, h, 10+len(f.List))
	b = binary.AppendUvarint(b, uint64(f.Size))
	return append(b, f.List...)
}

// EncodeDict returns the object of dictionary h.
func EncodeDict(h hash.Hash, data []byte) []byte {
	return append(header(Dict, h, len(data)), data...)
}

// errBad wraps header faults as corruption.
func errBad(format string, a ...any) error {
	return fmt.Errorf("%w: layout object: %s", store.ErrCorrupt, fmt.Sprintf(format, a...))
}

// Decode parses object b, which must be of kind k and address h. Every
// fault is an error wrapping store.ErrCorrupt. The body aliases b.
func Decode(b []byte, k Kind, h hash.Hash) (Object, error) {
	if len(b) > MaxObjectSize {
		return Object{}, errBad("%d bytes, more than %d", len(b), MaxObjectSize)
	}
	if len(b) < headerSize || string(b[:len(magic)]) != magic {
		return Object{}, errBad("no header")
	}
	if b[4] != formatVersion {
		return Object{}, errBad("format version %d (this spraydryfs reads %d)", b[4], formatVersion)
	}
	if Kind(b[5]) != k {
		return Object{}, errBad("kind %s, want %s", Kind(b[5]), k)
	}
	if !bytes.Equal(b[6:headerSize], h[:]) {
		return Object{}, errBad("names another address")
	}
	o := Object{Kind: k, Hash: h}
	r := reader{b: b[headerSize:]}
	switch k {
	case Chunk:
		o.Frame = r.frame()
	case Listing:
		if len(r.b) == 0 {
			r.fail("empty listing record")
		}
		o.Record = r.b
	case ChunkList:
		n := r.uvarint("file size")
		if r.err == nil && n > 1<<62 {
			r.fail("file size %d", n)
		}
		o.File = store.FileRecord{Size: int64(n), List: r.b}
		if r.err == nil && len(r.b) == 0 {
			r.fail("empty chunk list")
		}
	case Dict:
		if len(r.b) == 0 {
			r.fail("empty dictionary")
		}
		o.Data = r.b
	case Pack:
		o.Pack = decodePack(&r)
	case Tree:
		o.Pack = decodeMembers(&r, Listing)
	default:
		r.fail("unknown kind")
	}
	if r.err != nil {
		return Object{}, fmt.Errorf("%s %s: %w", k, h, r.err)
	}
	return o, nil
}

// reader takes fields off the front of b, remembering the first fault.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = errBad(format, a...)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated before %s", what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// uvarint reads a minimal uvarint.
func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) hash(what string) hash.Hash {
	if r.err != nil {
		return hash.Zero
	}
	if len(r.b) < hash.Size {
		r.fail("truncated %s", what)
		return hash.Zero
	}
	h, err := hash.FromBytes(r.b[:hash.Size])
	if err != nil {
		r.fail("bad %s", what)
		return hash.Zero
	}
	r.b = r.b[hash.Size:]
	return h
}

func (r *reader) frame() store.Frame {
	var f store.Frame
	f.Codec = chunk.Codec(r.byte("codec"))
	size := r.uvarint("size")
	depth := r.uvarint("depth")
	switch r.byte("dictionary flag") {
	case 0:
	case 1:
		f.Dict = r.hash("dictionary")
	default:
		r.fail("bad dictionary flag")
	}
	n := r.uvarint("reference count")
	if r.err != nil {
		return f
	}
	switch {
	case f.Codec != chunk.Raw && f.Codec != chunk.Zstd && !f.Codec.HasRef():
		r.fail("unknown codec %d", f.Codec)
	case size > tree.MaxChunkSize:
		r.fail("size %d", size)
	case depth > store.MaxChainDepth:
		r.fail("chain depth %d", depth)
	case n > MaxRefs:
		r.fail("%d references", n)
	case f.Codec.HasRef() != (n > 0) || (n > 0) != (depth > 0):
		r.fail("codec %d with %d references at depth %d", f.Codec, n, depth)
	}
	if r.err != nil {
		return f // n is unchecked: a count of 2^63 would loop for ever
	}
	for range n {
		f.Refs = append(f.Refs, r.hash("reference"))
	}
	if r.err == nil && f.Codec == chunk.Raw && uint64(len(r.b)) != size {
		r.fail("raw frame of %d bytes for size %d", len(r.b), size)
	}
	f.Size, f.Depth, f.Data = int(size), int(depth), r.b
	return f
}

// ErrNotFound reports a missing layout file; it wraps store.ErrNotFound.
var ErrNotFound = fmt.Errorf("layout: %w", store.ErrNotFound)

// IsNotFound reports whether err says a layout file is missing.
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
