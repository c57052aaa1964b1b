package layout

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// A pack holds, in one object, the chunks of a directory's files, so that
// a cold walk that reads them (tar, cp -r, rsync) makes one request per
// directory instead of one per file and per step of each delta chain. It
// is named by the listing's address (objects/pack/…), which the reader
// has in hand when it opens the directory's first file: no index is
// needed. Its members are chunk objects, each still verified against its
// own address when it is used; every member is also published on its
// own, so a pack is only ever a shortcut.
//
//	header (kind Pack, the listing's address) | uvarint count |
//	per member: uvarint length, a chunk object
//
// The members are the chunks of the listing's small one-chunk files
// (packable), then those of its other files, in listing order, each
// followed by the references its frame needs that the pack does not hold
// yet, until PackMax bytes.
const (
	// PackFileMax bounds the size of a one-chunk file a pack holds first.
	PackFileMax = 64 << 10
	// PackMax bounds a pack's encoded size.
	PackMax = 2 << 20
)

// oneChunk reports whether e, an entry of listing d, is a file stored as
// one chunk (which only a sealed listing says).
func oneChunk(d *tree.Dir, e *tree.Entry) bool {
	return !d.Unsealed && e.Type == tree.TypeFile && e.List.IsZero() && e.Size > 0
}

// packable reports whether e, an entry of listing d, is a file a pack
// holds first: one chunk, and small.
func packable(d *tree.Dir, e *tree.Entry) bool {
	return oneChunk(d, e) && e.Size <= PackFileMax
}

// multiChunk reports whether e, an entry of listing d, is a non-empty
// file a sealed listing names a chunk list for (an empty file's list
// names no chunk).
func multiChunk(d *tree.Dir, e *tree.Entry) bool {
	return !d.Unsealed && e.Type == tree.TypeFile && !e.List.IsZero() && e.Size > 0
}

// HasPack reports whether listing d is published with a pack: it has a
// file of known chunks (one, or a list). A pack of one file still saves
// requests: it holds the delta references the file's chunks need, which
// a reader would fetch one after another.
func HasPack(d *tree.Dir) bool {
	for i := range d.Entries {
		if oneChunk(d, &d.Entries[i]) || multiChunk(d, &d.Entries[i]) {
			return true
		}
	}
	return false
}

// BuildPack returns the pack of listing d, address h, with the frames
// frame gives (which must have verified them) and the chunk lists of d's
// multi-chunk files read through o.
func BuildPack(ctx context.Context, o *store.Objects, h hash.Hash, d *tree.Dir, frame func(context.Context, hash.Hash) (store.Frame, error)) ([]byte, error) {
	p := newFilling(PackMax)
	// add adds chunk c and the references it needs; it reports false once
	// the pack is full.
	var add func(c hash.Hash) (bool, error)
	add = func(c hash.Hash) (bool, error) {
		if p.in[c] {
			return true, nil
		}
		f, err := frame(ctx, c)
		if err != nil {
			return false, fmt.Errorf("pack %s: chunk %s: %w", h, c, err)
		}
		if !p.add(c, EncodeChunk(c, f)) {
			return false, nil
		}
		for _, r := range f.Refs {
			if ok, err := add(r); !ok || err != nil {
				return ok, err
			}
		}
		return true, nil
	}
	done := func() []byte { return encodeMembers(header(Pack, h, p.size), p.members) }
	for i := range d.Entries {
		if e := &d.Entries[i]; packable(d, e) {
			if ok, err := add(e.Hash); err != nil {
				return nil, err
			} else if !ok {
				return done(), nil
			}
		}
	}
	for i := range d.Entries {
		e := &d.Entries[i]
		var chunks []hash.Hash
		switch {
		case oneChunk(d, e) && !packable(d, e):
			chunks = []hash.Hash{e.Hash}
		case multiChunk(d, e):
			f, err := o.ListedFile(ctx, store.ListedEntry(d, e))
			if err != nil {
				return nil, fmt.Errorf("pack %s: %w", h, err)
			}
			for _, c := range f.List.Chunks {
				chunks = append(chunks, c.Hash)
			}
		}
		for _, c := range chunks {
			if ok, err := add(c); err != nil {
				return nil, err
			} else if !ok {
				return done(), nil
			}
		}
	}
	return done(), nil
}

// filling gathers the encoded members of a pack or a tree object, each
// once, while they fit in max bytes.
type filling struct {
	max, size int
	in        map[hash.Hash]bool
	members   [][]byte
}

func newFilling(max int) *filling {
	return &filling{max: max, size: headerSize + binary.MaxVarintLen64, in: map[hash.Hash]bool{}}
}

// add adds member m of address h; it reports false if m does not fit.
func (f *filling) add(h hash.Hash, m []byte) bool {
	n := len(m) + binary.MaxVarintLen64
	if f.size+n > f.max {
		return false
	}
	f.in[h] = true
	f.members = append(f.members, m)
	f.size += n
	return true
}

// EncodePack returns the pack of listing h holding the chunk objects
// members.
func EncodePack(h hash.Hash, members []Object) []byte {
	enc := make([][]byte, len(members))
	for i, m := range members {
		enc[i] = EncodeChunk(m.Hash, m.Frame)
	}
	return encodeMembers(header(Pack, h, 16+len(members)*64), enc)
}

// decodePack parses a pack's body into its member chunks.
func decodePack(r *reader) []Object { return decodeMembers(r, Chunk) }

// decodeMembers parses the body of a pack or a tree: a count, then that
// many objects of kind k, each after its length.
func decodeMembers(r *reader, k Kind) []Object {
	n := r.uvarint("member count")
	if r.err == nil && n > uint64(len(r.b)/headerSize) {
		r.fail("%d members", n)
	}
	var out []Object
	for i := uint64(0); r.err == nil && i < n; i++ {
		l := r.uvarint("member length")
		if r.err == nil && (l < uint64(headerSize) || l > uint64(len(r.b))) {
			r.fail("member of %d bytes", l)
		}
		if r.err != nil {
			break
		}
		b := r.b[:l]
		r.b = r.b[l:]
		addr, err := hash.FromBytes(b[6:headerSize])
		if err != nil {
			r.fail("member names no address")
			break
		}
		o, err := Decode(b, k, addr)
		if err != nil {
			r.err = err
			break
		}
		out = append(out, o)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes after the members")
	}
	return out
}

// encodeMembers appends the body of a pack or a tree to header b.
func encodeMembers(b []byte, members [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(members)))
	for _, m := range members {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}
