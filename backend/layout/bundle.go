package layout

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/lru"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// A bundle is a pack or a tree object that a Source fetched from past its
// Keeper (a local cache). The Keeper takes it whole, one file instead of
// one per member, once store.Objects has verified every member: nothing
// unverified is kept. Until then it is pending, within pendingBundles
// bytes. A bundle pushed out of that budget, or still pending when the
// Source is flushed (a reader that read only part of a directory), has
// the members verified so far kept one by one instead, as a Source
// without bundles would.
type bundle struct {
	key     string            // the layout key of the pack or tree
	kind    Kind              // its members' kind: Chunk or Listing
	members []Object          // as fetched
	index   map[hash.Hash]int // member address → position
	digests []digest          // of the members' bytes
	ok      []bool            // members verified
	left    int               // members not yet verified
	size    int64             // bytes it holds
	encode  func() []byte     // the whole object
	elem    *list.Element     // in bundles.order while pending
}

const (
	// pendingBundles bounds the bytes of the bundles waiting for their
	// members to be verified.
	pendingBundles = 32 << 20
	// seenMemory bounds the digests of the copies verified so far: a
	// member verified before its bundle came (a file's twin in another
	// directory, a delta reference) is not verified again.
	seenMemory = 4 << 20
)

// member names a member of a bundle.
type member struct {
	kind Kind
	h    hash.Hash
}

// digest identifies the bytes of a copy of an object.
type digest [sha256.Size]byte

// bundles are a Source's pending bundles. It is safe for concurrent use.
type bundles struct {
	mu       sync.Mutex
	order    list.List // *bundle, oldest first
	size     int64
	byMember map[hash.Hash][]*bundle
	seen     *lru.Cache[member, digest] // the copies verified
}

// add makes key, whose members of kind are members, pending; what it
// pushes out of the budget has its verified members kept by k.
func (bs *bundles) add(k Keeper, key string, kind Kind, members []Object, size int64, encode func() []byte) {
	b := &bundle{key: key, kind: kind, members: members, index: make(map[hash.Hash]int, len(members)),
		digests: make([]digest, len(members)), ok: make([]bool, len(members)), left: len(members), size: size, encode: encode}
	for i, m := range members {
		b.index[m.Hash] = i
		b.digests[i] = objectDigest(kind, m)
	}
	bs.mu.Lock()
	bs.init()
	for i, m := range members {
		if d, ok := bs.seen.Get(member{kind, m.Hash}); ok && d == b.digests[i] {
			b.ok[i] = true
			b.left--
		}
	}
	if b.left == 0 {
		bs.mu.Unlock()
		k.Keep(key, encode)
		return
	}
	b.elem = bs.order.PushBack(b)
	bs.size += size
	for h := range b.index {
		bs.byMember[h] = append(bs.byMember[h], b)
	}
	bs.mu.Unlock()
	bs.shed(k, func() bool { return bs.size > pendingBundles && bs.order.Len() > 1 })
}

// init makes the maps (bs.mu held).
func (bs *bundles) init() {
	if bs.byMember == nil {
		bs.byMember = map[hash.Hash][]*bundle{}
		bs.seen = lru.New[member, digest](seenMemory)
	}
}

// verified records that v, object h of kind Chunk or Listing, passed
// verification. It reports whether a pending bundle holds that copy of h;
// a bundle that h completes is kept by k.
func (bs *bundles) verified(k Keeper, v Object) bool {
	d := objectDigest(v.Kind, v)
	var done []*bundle
	held := false
	bs.mu.Lock()
	bs.init()
	bs.seen.Put(member{v.Kind, v.Hash}, d, 100)
	for _, b := range bs.byMember[v.Hash] {
		i := b.index[v.Hash]
		if b.kind != v.Kind || b.digests[i] != d {
			continue
		}
		held = true
		if !b.ok[i] {
			b.ok[i] = true
			b.left--
		}
		if b.left == 0 {
			done = append(done, b)
		}
	}
	for _, b := range done {
		bs.drop(b)
	}
	bs.mu.Unlock()
	for _, b := range done {
		k.Keep(b.key, b.encode)
	}
	return held
}

// flush ends every pending bundle: its verified members are kept by k.
func (bs *bundles) flush(k Keeper) { bs.shed(k, func() bool { return bs.order.Len() > 0 }) }

// shed ends the oldest pending bundles while more (asked with bs.mu
// held) is true, and has k keep their verified members.
func (bs *bundles) shed(k Keeper, more func() bool) {
	var out []*bundle
	bs.mu.Lock()
	for more() {
		b := bs.order.Front().Value.(*bundle)
		bs.drop(b)
		out = append(out, b)
	}
	bs.mu.Unlock()
	for _, b := range out {
		b.keepVerified(k)
	}
}

// drop ends pending bundle b (bs.mu held).
func (bs *bundles) drop(b *bundle) {
	bs.order.Remove(b.elem)
	bs.size -= b.size
	for h := range b.index {
		l := slices.DeleteFunc(bs.byMember[h], func(x *bundle) bool { return x == b })
		if len(l) == 0 {
			delete(bs.byMember, h)
		} else {
			bs.byMember[h] = l
		}
	}
}

// keepVerified has k keep, one by one, the members of ended bundle b that
// were verified.
func (b *bundle) keepVerified(k Keeper) {
	for i, m := range b.members {
		if !b.ok[i] {
			continue
		}
		switch b.kind {
		case Chunk:
			k.Keep(Key(Chunk, m.Hash), func() []byte { return EncodeChunk(m.Hash, m.Frame) })
		case Listing:
			k.Keep(Key(Listing, m.Hash), func() []byte { return EncodeListing(m.Hash, m.Record) })
		}
	}
}

// objectDigest is the digest of m's bytes, a chunk's frame or a
// listing's record.
func objectDigest(kind Kind, m Object) digest {
	s := sha256.New()
	if kind == Listing {
		s.Write(m.Record)
	} else {
		f := m.Frame
		var b []byte
		b = append(b, byte(f.Codec))
		b = binary.AppendUvarint(b, uint64(f.Size))
		b = binary.AppendUvarint(b, uint64(f.Depth))
		b = append(b, f.Dict[:]...)
		b = binary.AppendUvarint(b, uint64(len(f.Refs)))
		for _, r := range f.Refs {
			b = append(b, r[:]...)
		}
		s.Write(b)
		s.Write(f.Data)
	}
	var d digest
	s.Sum(d[:0])
	return d
}

// sameFrame reports whether a and b are the same stored frame.
func sameFrame(a, b store.Frame) bool {
	return a.Codec == b.Codec && a.Size == b.Size && a.Depth == b.Depth && a.Dict == b.Dict &&
		slices.Equal(a.Refs, b.Refs) && bytes.Equal(a.Data, b.Data)
}
