package layout

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/flight"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/lru"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Source reads a layout through a Fetcher: a store.Source, so that
// store.Objects decodes, verifies and caches it like the SQLite store.
// Objects are checked here for their header (kind, address, bounds); an
// object that fails is fetched once more with fresh set, bypassing caches,
// before the failure is reported. It is safe for concurrent use.
type Source struct {
	f   Fetcher
	opt SourceOptions

	// mu guards roots, tops, fetched, refresh, published and indexSum. It
	// is not held across the index fetch: lookups need not wait for it.
	mu      sync.Mutex
	roots   []store.Root
	tops    map[hash.Hash]bool // the roots' top listings
	fetched time.Time          // when roots were read; zero: never (an index may hold none)
	refresh *indexFetch        // the refresh of the index in flight, or nil
	// published and indexSum are those of the newest signed index read:
	// an older one (a rollback) is refused.
	published time.Time
	indexSum  [sha256.Size]byte

	// frames holds the chunks ChunkList fetched to learn that a file is
	// one chunk, for the Frame call that follows, and those of packs.
	frames *lru.Cache[hash.Hash, heldFrame]
	// recent holds the last chunk frames fetched (recentFrames bytes): a
	// chunk read as another's reference may be a file whose chunk-list
	// probe comes before Objects has the chunk decoded, and the other way
	// round.
	recent *lru.Cache[hash.Hash, store.Frame]
	pre    *prefetcher // nil unless Prefetch was called
	// packed holds the listings whose pack was asked for (a byte budget:
	// expandedMemory), fetched or found missing: each is asked for once
	// while remembered.
	packed *lru.Cache[hash.Hash, struct{}]
	// below holds the listings whose subdirectories' packs were asked for
	// (a byte budget: expandedMemory).
	below *lru.Cache[hash.Hash, struct{}]
	// listings holds the listings of tree objects (BuildTree) until they
	// are read, and treed the root tops whose tree was asked for, fetched
	// or found missing (a byte budget: expandedMemory).
	listings *lru.Cache[hash.Hash, heldListing]
	treed    *lru.Cache[hash.Hash, struct{}]
	// reading: a file was opened, so the walk reads content, not only
	// listings (ls -lR, find): a listing used has its subdirectories'
	// packs fetched ahead.
	reading atomic.Bool
	// pending are the packs and trees fetched past the Keeper, kept whole
	// once their members are verified.
	pending bundles

	// flying joins concurrent fetches of one object (delta references
	// are read by every dependant that misses the cache, and read-ahead
	// races the reader).
	flying flight.Group[fetchKey, Object]
	// loads joins concurrent loads of one pack or tree, so a reader that
	// comes while the read-ahead loads one waits for its members instead
	// of fetching them alone.
	loads flight.Group[string, bool]
}

// heldFrame is a chunk's frame as fetched, and the listing whose pack it
// came in (zero if alone).
type heldFrame struct {
	f    store.Frame
	pack hash.Hash
}

// heldListing is a listing's record as fetched in the tree of root top.
type heldListing struct {
	rec []byte
	top hash.Hash
}

type fetchKey struct {
	key   string
	fresh bool
}

// indexFetch is a refresh of the roots index, run by the caller that
// found the index stale; done closes when it ends.
type indexFetch struct {
	done     chan struct{}
	roots    []store.Root
	err      error
	canceled bool // the refreshing caller's context ended: its error is its own
}

// SourceOptions tune a Source.
type SourceOptions struct {
	// IndexTTL is how long a fetched index is used before it is fetched
	// again (default 10 s; the fetcher may revalidate it cheaply).
	IndexTTL time.Duration
	// Refetches says whether fetching again with fresh set can give other
	// bytes (true for HTTP, whose caches may hold a damaged copy).
	Refetches bool
	// Log receives refetch warnings; nil is slog.Default.
	Log *slog.Logger
	// Trust, if not empty, are the keys one of which must have signed the
	// index (see ReadIndex); an unsigned or otherwise signed index is
	// refused.
	Trust []ed25519.PublicKey
}

// frameCache bounds the frames kept between ChunkList and Frame, and
// those of packs (up to PackMax each) until their files are read.
const frameCache = 32 << 20

// recentFrames bounds Source.recent: only the gap between a fetch and
// its decode needs covering.
const recentFrames = 1 << 20

// listingCache bounds the listings kept from tree objects (up to TreeMax
// each) until they are read.
const listingCache = 8 << 20

// NewSource returns the Source over f.
func NewSource(f Fetcher, opt SourceOptions) *Source {
	if opt.IndexTTL <= 0 {
		opt.IndexTTL = 10 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Source{f: f, opt: opt, frames: lru.New[hash.Hash, heldFrame](frameCache), recent: lru.New[hash.Hash, store.Frame](recentFrames),
		packed: lru.New[hash.Hash, struct{}](expandedMemory), below: lru.New[hash.Hash, struct{}](expandedMemory), listings: lru.New[hash.Hash, heldListing](listingCache),
		treed: lru.New[hash.Hash, struct{}](expandedMemory)}
}

// Refetches implements store.Refetcher.
func (s *Source) Refetches() bool { return s.opt.Refetches }

// index returns the roots, fetching the index when the last copy is older
// than the TTL; if that fails, the last copy is kept. One refresh runs at
// a time: while it does, other callers get the last roots at once, and a
// caller with none yet waits for it until its own ctx ends, and refreshes
// itself if the refresh ended with its caller's ctx.
func (s *Source) index(ctx context.Context) ([]store.Root, error) {
	for {
		s.mu.Lock()
		if !s.fetched.IsZero() && (s.refresh != nil || time.Since(s.fetched) < s.opt.IndexTTL) {
			r := s.roots
			s.mu.Unlock()
			return r, nil
		}
		if f := s.refresh; f != nil {
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.canceled && ctx.Err() == nil {
				continue
			}
			return f.roots, f.err
		}
		f := &indexFetch{done: make(chan struct{})}
		s.refresh = f
		s.mu.Unlock()
		f.roots, f.err = s.refreshIndex(ctx)
		f.canceled = f.err != nil && ctx.Err() != nil
		s.mu.Lock()
		s.refresh = nil
		s.mu.Unlock()
		close(f.done)
		return f.roots, f.err
	}
}

// refreshIndex fetches the index, as the refresh in flight (s.refresh),
// with s.mu held except across the fetch.
func (s *Source) refreshIndex(ctx context.Context) ([]store.Root, error) {
	s.mu.Lock()
	k, keeps := s.f.(IndexKeeper)
	if keeps && s.fetched.IsZero() && s.published.IsZero() {
		// The newest index accepted before, by any process, is the floor
		// below which an index served now is a rollback.
		if saved := k.SavedIndex(); saved != nil {
			if x, err := ReadIndex(saved, s.opt.Trust); err == nil {
				s.published, s.indexSum = x.Published, sha256.Sum256(saved)
			}
		}
	}
	s.mu.Unlock()
	b, err := s.f.Fetch(ctx, IndexKey, MaxIndexSize, false)
	s.mu.Lock()
	defer s.mu.Unlock()
	var x Index
	if err == nil {
		x, err = s.readIndex(b)
	} else {
		err = fmt.Errorf("roots index: %w", err)
	}
	if err == nil && keeps {
		k.KeepIndex(b)
	}
	if err != nil {
		if s.fetched.IsZero() || ctx.Err() != nil {
			return nil, err
		}
		// Keep serving the roots last seen (published roots never change)
		// and try again after another TTL.
		s.opt.Log.Warn("cannot refresh the roots index; using the last one", "err", err)
		s.fetched = time.Now()
		return s.roots, nil
	}
	s.roots, s.fetched = x.Roots, time.Now()
	s.tops = make(map[hash.Hash]bool, len(x.Roots))
	for _, r := range x.Roots {
		s.tops[r.Top.Hash] = true
	}
	return x.Roots, nil
}

// readIndex decodes and checks index b against the trusted keys and,
// if it is signed, against the newest signed index read before: one
// published earlier, or another one published at the same time, is a
// rollback (an old index served again) and is refused. s.mu is held.
func (s *Source) readIndex(b []byte) (Index, error) {
	x, err := ReadIndex(b, s.opt.Trust)
	if err != nil || x.Published.IsZero() {
		return x, err
	}
	sum := sha256.Sum256(b)
	switch {
	case x.Published.Before(s.published):
		return Index{}, fmt.Errorf("%w: published %s, before the one read already (%s): refusing an older index served again",
			ErrUntrusted, x.Published.Format(time.RFC3339Nano), s.published.Format(time.RFC3339Nano))
	case x.Published.Equal(s.published) && sum != s.indexSum:
		return Index{}, fmt.Errorf("%w: another index published at the same time (%s) as the one read already",
			ErrUntrusted, x.Published.Format(time.RFC3339Nano))
	}
	s.published, s.indexSum = x.Published, sum
	return x, nil
}

// Roots implements store.Source.
func (s *Source) Roots(ctx context.Context) ([]store.Root, error) {
	r, err := s.index(ctx)
	return append([]store.Root(nil), r...), err
}

// Root implements store.Source.
func (s *Source) Root(ctx context.Context, name, version string) (store.Root, error) {
	if version == store.Latest {
		return s.Newest(ctx, name)
	}
	roots, err := s.index(ctx)
	if err != nil {
		return store.Root{}, err
	}
	for _, r := range roots {
		if r.Name == name && r.Version == version {
			return r, nil
		}
	}
	return store.Root{}, fmt.Errorf("root %s@%s: %w", name, version, store.ErrNotFound)
}

// Newest implements store.Source.
func (s *Source) Newest(ctx context.Context, name string) (store.Root, error) {
	roots, err := s.index(ctx)
	if err != nil {
		return store.Root{}, err
	}
	var out store.Root
	found := false
	for _, r := range roots { // sorted oldest first
		if r.Name == name {
			out, found = r, true
		}
	}
	if !found {
		return out, fmt.Errorf("root %s: %w", name, store.ErrNotFound)
	}
	return out, nil
}

// object fetches and decodes object h of kind k, joining a fetch of it in
// flight (see package flight for the callers' contexts).
func (s *Source) object(ctx context.Context, k Kind, h hash.Hash) (Object, error) {
	fresh := store.IsRefetch(ctx)
	return s.flying.Do(ctx, fetchKey{Key(k, h), fresh}, func() (Object, error) {
		// Looked up and kept inside the flight, so no caller comes between
		// one fetch landing and the next looking.
		if k == Chunk && !fresh {
			if f, ok := s.recent.Get(h); ok {
				return Object{Kind: Chunk, Hash: h, Frame: f}, nil
			}
		}
		o, err := s.fetch(ctx, k, h)
		if err == nil && k == Chunk {
			s.recent.Put(h, o.Frame, int64(len(o.Frame.Data))+128)
		}
		return o, err
	})
}

// fetch fetches and decodes object h of kind k, once more with fresh set
// if it fails its header checks.
func (s *Source) fetch(ctx context.Context, k Kind, h hash.Hash) (Object, error) {
	key := Key(k, h)
	fresh := store.IsRefetch(ctx)
	if fresh {
		s.opt.Log.Warn("object failed verification; fetching it again from the origin", "object", key, "hash", h.String())
	}
	for {
		b, err := s.f.Fetch(ctx, key, MaxObjectSize, fresh)
		if err != nil {
			return Object{}, err
		}
		o, err := Decode(b, k, h)
		if err == nil || fresh || !s.opt.Refetches {
			return o, err
		}
		s.opt.Log.Warn("object is damaged; fetching it again from the origin", "object", key, "err", err)
		fresh = true
	}
}

// Listing implements store.Source. The first listing asked for of a
// root, its top, has the root's tree object fetched (unless a local cache
// holds the top: a warm cache needs no tree), and the listings in it wait
// for the reads that follow; those it lacks are fetched one by one. A
// tree that is missing (a layout pushed without one, or an older
// version) or fails is not asked for again while remembered.
func (s *Source) Listing(ctx context.Context, h hash.Hash) ([]byte, error) {
	if !store.IsRefetch(ctx) {
		if l, ok := s.listings.Get(h); ok {
			return l.rec, nil
		}
		if s.isTop(h) {
			s.loadTree(ctx, h)
			if l, ok := s.listings.Get(h); ok {
				return l.rec, nil
			}
		}
	} else if l, ok := s.listings.Get(h); ok {
		// The tree's copy may be the damaged one, and so the cache's tree.
		s.listings.Remove(h)
		s.drop(Key(Tree, l.top))
	}
	o, err := s.object(ctx, Listing, h)
	return o.Record, err
}

// isTop reports whether listing h is the top of a root in the last index
// read.
func (s *Source) isTop(h hash.Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tops[h]
}

// loadTree fetches the tree object of listing top and keeps its listings
// for the reads that follow, unless it was asked for already. A Keeper
// holding the top alone (kept one by one) needs no tree; one that lacks
// the tree takes it once its listings are verified.
func (s *Source) loadTree(ctx context.Context, top hash.Hash) {
	k, keeps := s.f.(Keeper)
	kept := keeps && k.Holds(Key(Tree, top))
	if keeps && !kept && k.Holds(Key(Listing, top)) {
		return
	}
	s.loadBundle(ctx, Tree, top, s.treed, func(o Object) {
		if keeps && !kept { // before a reader can verify a member
			s.pending.add(k, Key(Tree, top), Listing, o.Pack, objectsSize(o.Pack), func() []byte {
				members := make([][]byte, len(o.Pack))
				for i, m := range o.Pack {
					members[i] = EncodeListing(m.Hash, m.Record)
				}
				return EncodeTree(top, members)
			})
		}
		for _, m := range o.Pack {
			s.listings.Put(m.Hash, heldListing{bytes.Clone(m.Record), top}, int64(len(m.Record))+64)
		}
	})
}

// loadBundle fetches pack or tree h of kind k once while done remembers
// it, and has fill keep its members; it reports whether it (or the call
// it joined) found one. Loads of one bundle are joined, and h goes into
// done only once fill has run (or the bundle is missing or failed), so a
// reader that comes meanwhile waits for the members instead of fetching
// them alone. A load ended by its caller's context is not remembered.
func (s *Source) loadBundle(ctx context.Context, k Kind, h hash.Hash, done *lru.Cache[hash.Hash, struct{}], fill func(Object)) bool {
	found, _ := s.loads.Do(ctx, Key(k, h), func() (bool, error) {
		if _, ok := done.Get(h); ok {
			return false, nil // loaded, or found missing, by a call before
		}
		o, err := s.object(ctx, k, h)
		if err != nil && ctx.Err() != nil {
			return false, ctx.Err() // the caller's, not the bundle's: ask again later
		}
		defer done.Put(h, struct{}{}, 64)
		if err != nil {
			if !IsNotFound(err) {
				s.opt.Log.Debug(k.String()+" not used", "listing", h.String(), "err", err)
			}
			return false, nil
		}
		fill(o)
		return true, nil
	})
	return found
}

// objectsSize is the bytes the members of a pack or tree hold.
func objectsSize(members []Object) int64 {
	n := int64(0)
	for _, m := range members {
		n += int64(len(m.Record)+len(m.Frame.Data)) + 128
	}
	return n
}

// ChunkList implements store.Source. Most files are one chunk and have no
// list object, so the chunk is asked for first and kept for the Frame
// call that follows; only a missing chunk means a list. A file its
// listing names a list for (store.ListedMulti) is not probed.
func (s *Source) ChunkList(ctx context.Context, h hash.Hash) (store.FileRecord, error) {
	if f, ok := s.frames.Get(h); ok && !store.IsRefetch(ctx) {
		return store.FileRecord{Size: int64(f.f.Size)}, nil // from a pack, or probed before
	}
	if k, ok := s.f.(Keeper); store.IsListedMulti(ctx) || ok && k.Holds(Key(ChunkList, h)) {
		// A kept list means a multi-chunk file: no probe for a chunk.
		o, err := s.object(ctx, ChunkList, h)
		return o.File, err
	}
	c, err := s.object(ctx, Chunk, h)
	if err == nil {
		s.frames.Put(h, heldFrame{f: c.Frame}, int64(len(c.Frame.Data))+128)
		return store.FileRecord{Size: int64(c.Frame.Size)}, nil
	}
	if !IsNotFound(err) {
		return store.FileRecord{}, err
	}
	o, err := s.object(ctx, ChunkList, h)
	return o.File, err
}

// Frame implements store.Source.
func (s *Source) Frame(ctx context.Context, h hash.Hash) (store.Frame, error) {
	f, held := s.frames.Get(h)
	if !store.IsRefetch(ctx) && held {
		return f.f, nil
	}
	if held && !f.pack.IsZero() {
		s.drop(Key(Pack, f.pack)) // the cache's pack may be the damaged copy
	}
	o, err := s.object(ctx, Chunk, h)
	if err == nil && store.IsRefetch(ctx) {
		// The copy ChunkList kept may be the damaged one: replace it, or a
		// later read after the chunk left Objects' cache would meet it again.
		s.frames.Put(h, heldFrame{f: o.Frame}, int64(len(o.Frame.Data))+128)
	}
	return o.Frame, err
}

// Opening implements store.Packer: the first file opened in a listing
// that has a pack has the pack fetched (from a local cache that holds it,
// or else from the remote unless the cache holds the file on its own),
// and its chunks wait for the reads that follow; the packs of its
// subdirectories are fetched in the background, as a walk reads them
// next. A pack that is missing (a layout pushed without packs, or an
// older version's listing) or fails is not asked for again while
// remembered; the files are then fetched one by one.
func (s *Source) Opening(ctx context.Context, dir hash.Hash, d *tree.Dir, file hash.Hash) {
	s.reading.Store(true)
	if _, ok := s.packed.Get(dir); ok {
		return
	}
	if !HasPack(d) {
		s.packed.Put(dir, struct{}{}, 64)
		s.packsBelow(dir, d)
		return
	}
	if k, ok := s.f.(Keeper); ok && !k.Holds(Key(Pack, dir)) && (k.Holds(Key(Chunk, file)) || k.Holds(Key(ChunkList, file))) {
		return // a one-chunk or a multi-chunk file kept on its own
	}
	if s.loadPack(ctx, dir) {
		s.packsBelow(dir, d)
	}
}

// packsBelow fetches the packs of listing d, address h, subdirectories'
// in the background, as a walk reads them next (once per listing while
// remembered).
func (s *Source) packsBelow(h hash.Hash, d *tree.Dir) {
	if s.pre == nil {
		return
	}
	if _, done := s.below.Get(h); done {
		return
	}
	s.below.Put(h, struct{}{}, 64)
	for _, e := range d.Entries {
		if e.Type != tree.TypeDir {
			continue
		}
		if _, done := s.packed.Get(e.Hash); done {
			continue
		}
		s.pre.run(func(ctx context.Context) {
			if _, done := s.packed.Get(e.Hash); done {
				return
			}
			// The listing, read ahead already or now, says if it has one.
			if sub, err := s.pre.o.Dir(ctx, e.Hash); err == nil && HasPack(sub) {
				s.loadPack(ctx, e.Hash)
			}
		})
	}
}

// loadPack fetches listing dir's pack and keeps its chunks for the reads
// that follow; it reports whether it (or the call it joined) found one.
// A Keeper that lacks the pack takes it once its chunks are verified.
func (s *Source) loadPack(ctx context.Context, dir hash.Hash) bool {
	k, keeps := s.f.(Keeper)
	kept := keeps && k.Holds(Key(Pack, dir))
	return s.loadBundle(ctx, Pack, dir, s.packed, func(o Object) {
		if keeps && !kept { // before a reader can verify a member
			s.pending.add(k, Key(Pack, dir), Chunk, o.Pack, objectsSize(o.Pack), func() []byte { return EncodePack(dir, o.Pack) })
		}
		for _, m := range o.Pack {
			f := m.Frame
			f.Data = bytes.Clone(f.Data) // not the whole pack, kept by one member
			s.frames.Put(m.Hash, heldFrame{f, dir}, int64(len(f.Data))+128)
		}
	})
}

// Dict implements store.Source.
func (s *Source) Dict(ctx context.Context, h hash.Hash) ([]byte, error) {
	o, err := s.object(ctx, Dict, h)
	return o.Data, err
}

// Keeper is implemented by fetchers that keep a local copy of verified
// objects: a cache in front of a remote (package cache). The Source
// never hands a Keeper the bytes it fetched: store.Objects tells the
// Source what it verified (store.Keeper), and the Source encodes that
// again for Keep. Decode accepts only what the encoder writes, so these
// are the fetched bytes, but only ever once they have been verified.
type Keeper interface {
	// Keep offers object key; encode returns its bytes, and is called
	// only if the keeper lacks the object.
	Keep(key string, encode func() []byte)
	// Holds reports, without a request, whether object key is kept.
	Holds(key string) bool
	// Drop removes the kept copy of object key, if any: a member of it
	// failed verification.
	Drop(key string)
}

// IndexKeeper is a Fetcher that keeps the last roots index its Source
// accepted (one that decodes, is trusted and is no rollback), to serve
// while the remote is down and to refuse an older one served later.
type IndexKeeper interface {
	// KeepIndex offers an accepted index.
	KeepIndex(b []byte)
	// SavedIndex returns the index kept, or nil.
	SavedIndex() []byte
}

// KeepFrame implements store.Keeper: a chunk that came in a pack is kept
// with it, else alone.
func (s *Source) KeepFrame(h hash.Hash, f store.Frame) {
	k, ok := s.f.(Keeper)
	if !ok {
		return
	}
	// Every pending bundle holding this copy counts it verified; but only
	// a chunk read from a pack is found there again: one fetched alone is
	// read alone, and so kept alone.
	held := s.pending.verified(k, Object{Kind: Chunk, Hash: h, Frame: f})
	if e, ok := s.frames.Get(h); ok && !e.pack.IsZero() && sameFrame(e.f, f) && (held || k.Holds(Key(Pack, e.pack))) {
		return
	}
	k.Keep(Key(Chunk, h), func() []byte { return EncodeChunk(h, f) })
}

// KeepListing implements store.Keeper: a listing that came in a tree is
// kept with it, else alone.
func (s *Source) KeepListing(h hash.Hash, rec []byte) {
	k, ok := s.f.(Keeper)
	if !ok {
		return
	}
	held := s.pending.verified(k, Object{Kind: Listing, Hash: h, Record: rec})
	if e, ok := s.listings.Get(h); ok && bytes.Equal(e.rec, rec) && (held || k.Holds(Key(Tree, e.top))) {
		return
	}
	k.Keep(Key(Listing, h), func() []byte { return EncodeListing(h, rec) })
}

// Flush hands the Keeper what is verified of the packs and trees still
// waiting for their members: call it before the Keeper closes.
func (s *Source) Flush() {
	if k, ok := s.f.(Keeper); ok {
		s.pending.flush(k)
	}
}

// drop has the Keeper drop its copy of object key.
func (s *Source) drop(key string) {
	if k, ok := s.f.(Keeper); ok {
		k.Drop(key)
	}
}

// KeepFile implements store.Keeper: a one-chunk file's record came from
// its chunk, which KeepFrame keeps.
func (s *Source) KeepFile(h hash.Hash, f store.FileRecord) {
	if k, ok := s.f.(Keeper); ok && f.List != nil {
		k.Keep(Key(ChunkList, h), func() []byte { return EncodeChunkList(h, f) })
	}
}

// KeepDict implements store.Keeper.
func (s *Source) KeepDict(h hash.Hash, data []byte) {
	if k, ok := s.f.(Keeper); ok {
		k.Keep(Key(Dict, h), func() []byte { return EncodeDict(h, data) })
	}
}
