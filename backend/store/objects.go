package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/lru"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Objects decodes, verifies and caches the objects of a Source: decoded
// chunks, listings and chunk lists, in byte-bounded LRU caches. Every
// chunk and listing is checked against its address before it is cached or
// returned. It is safe for concurrent use.
type Objects struct {
	src Source
	hyd *chunk.Hydrator // chunks without a dictionary

	hyds *lru.Cache[hash.Hash, *chunk.Hydrator] // by dictionary hash, loaded on first use

	chunks *lru.Cache[hash.Hash, []byte]
	dirs   *lru.Cache[hash.Hash, *tree.Dir]
	files  *lru.Cache[hash.Hash, *File]

	pf    prefetcher
	stats objStats
}

// File is a stored file: its content address, size and chunk list.
type File struct {
	Hash hash.Hash
	Size int64
	List *tree.ChunkList
	// ListHash is the hash of the encoded chunk list List was decoded
	// from; zero for a file read as one chunk.
	ListHash hash.Hash
}

// Listed is what a verified listing says of a regular file.
type Listed struct {
	Hash hash.Hash
	Size int64
	// List is the hash of the file's encoded chunk list, zero for a file
	// stored as one chunk; it is known only when Sealed.
	List   hash.Hash
	Sealed bool
}

// ListedEntry returns what listing d says of its file entry e.
func ListedEntry(d *tree.Dir, e *tree.Entry) Listed {
	return Listed{Hash: e.Hash, Size: e.Size, List: e.List, Sealed: !d.Unsealed}
}

// fits reports whether f is the file l describes. A file read as one
// chunk fits whatever its listing says of a list: reading that chunk
// verifies it against the file's address, which is the whole content.
func (l Listed) fits(f *File) error {
	switch {
	case f.Size != l.Size:
		return fmt.Errorf("%w: file %s has %d bytes, its directory says %d", ErrCorrupt, l.Hash, f.Size, l.Size)
	case !l.Sealed || f.ListHash == l.List || f.ListHash.IsZero() && len(f.List.Chunks) == 1:
		return nil
	case l.List.IsZero():
		return fmt.Errorf("%w: file %s has a chunk list, its directory says it is one chunk", ErrCorrupt, l.Hash)
	}
	return fmt.Errorf("%w: file %s has chunk list %s, its directory says %s", ErrCorrupt, l.Hash, f.ListHash, l.List)
}

// MaxChainDepth bounds the reference chains Objects follows: a deeper
// recorded depth is reported as corruption. Ingest keeps chains far shorter.
const MaxChainDepth = 64

// NewObjects returns the decoding layer over src, with chunkCache bytes of
// decoded chunks and metaCache bytes of listings and chunk lists (zero
// picks the defaults).
func NewObjects(src Source, chunkCache, metaCache int64) (*Objects, error) {
	hyd, err := chunk.NewHydrator(nil)
	if err != nil {
		return nil, err
	}
	if chunkCache <= 0 {
		chunkCache = DefaultChunkCache
	}
	if metaCache <= 0 {
		metaCache = DefaultMetaCache
	}
	return &Objects{src: src, hyd: hyd, hyds: lru.New[hash.Hash, *chunk.Hydrator](dictCache),
		chunks: lru.New[hash.Hash, []byte](chunkCache),
		dirs:   lru.New[hash.Hash, *tree.Dir](metaCache / 2),
		files:  lru.New[hash.Hash, *File](metaCache / 2)}, nil
}

// Source returns the source the objects come from.
func (o *Objects) Source() Source { return o.src }

// Roots lists every root by name, then oldest version first.
func (o *Objects) Roots(ctx context.Context) ([]Root, error) { return o.src.Roots(ctx) }

// Root returns NAME@VERSION; version "latest" is the name's newest.
func (o *Objects) Root(ctx context.Context, name, version string) (Root, error) {
	return o.src.Root(ctx, name, version)
}

// Newest returns the most recently created version of name.
func (o *Objects) Newest(ctx context.Context, name string) (Root, error) {
	return o.src.Newest(ctx, name)
}

// Chunk returns the content of chunk h, verified against h. The slice is
// shared through the cache and must not be modified.
func (o *Objects) Chunk(ctx context.Context, h hash.Hash) ([]byte, error) {
	o.stats.chunks.Add(1)
	return o.chunks.Load(ctx, h, func() ([]byte, int64, error) {
		o.stats.chunkMisses.Add(1)
		start := time.Now()
		b, err := o.readChunk(ctx, h, MaxChainDepth)
		o.stats.decoded(time.Since(start))
		return b, chunkCost(b), err
	})
}

func chunkCost(b []byte) int64 { return int64(len(b)) + 64 }

// missing turns a source's ErrNotFound for an object that another object
// names into corruption.
func missing(err error, what string, h hash.Hash) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %s %s is missing", ErrCorrupt, what, h)
	}
	return fmt.Errorf("read %s %s: %w", what, h, err)
}

// readChunk reads, decodes and verifies chunk h, whose reference chain may
// be at most budget long. Every step down a chain lowers the budget, so a
// damaged store with a cycle of references ends in an error.
func (o *Objects) readChunk(ctx context.Context, h hash.Hash, budget int) ([]byte, error) {
	f, err := o.src.Frame(ctx, h)
	if err != nil {
		return nil, missing(err, "chunk", h)
	}
	b, err := o.hydrate(ctx, h, f, budget)
	if o.retry(ctx, err) {
		return o.readChunk(Refetch(ctx), h, budget)
	}
	if k, ok := o.src.(Keeper); ok && err == nil {
		k.KeepFrame(h, f)
	}
	return b, err
}

// hydrate decodes frame f of chunk h and verifies it.
func (o *Objects) hydrate(ctx context.Context, h hash.Hash, f Frame, budget int) ([]byte, error) {
	if !f.Codec.HasRef() {
		if len(f.Refs) > 0 || f.Depth != 0 {
			return nil, fmt.Errorf("%w: chunk %s: codec %d with a reference chain", ErrCorrupt, h, f.Codec)
		}
		y, err := o.hydrator(ctx, f.Dict)
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w", h, err)
		}
		return y.Hydrate(h, f.Codec, f.Size, f.Data)
	}
	if len(f.Refs) == 0 || f.Depth < 1 || f.Depth > budget {
		return nil, fmt.Errorf("%w: chunk %s: reference chain of depth %d (at most %d here)", ErrCorrupt, h, f.Depth, budget)
	}
	var ref []byte
	for _, r := range f.Refs {
		b, err := o.refChunk(ctx, r, f.Depth-1)
		if err != nil {
			return nil, refError{fmt.Errorf("chunk %s: reference: %w", h, err)}
		}
		if len(f.Refs) == 1 {
			ref = b
		} else {
			ref = append(ref, b...)
		}
	}
	return chunk.HydrateDelta(h, f.Size, f.Data, ref)
}

// refChunk returns a reference's content from the cache or reads it. It
// does not join loads in flight: a damaged store whose chain loops back to
// a chunk being loaded further up the same chain would wait on itself.
func (o *Objects) refChunk(ctx context.Context, h hash.Hash, budget int) ([]byte, error) {
	if b, ok := o.chunks.Get(h); ok {
		return b, nil
	}
	b, err := o.readChunk(ctx, h, budget)
	if err == nil {
		o.chunks.Put(h, b, chunkCost(b))
	}
	return b, err
}

// dictCache bounds the bytes of dictionaries kept loaded; a store has a
// few (one per training).
const dictCache = 64 << 20

// hydrator returns the decoder for chunks dried with dictionary d (zero:
// none), loading and verifying the dictionary once: a load waits for no
// other dictionary's (a remote fetch may take seconds).
func (o *Objects) hydrator(ctx context.Context, d hash.Hash) (*chunk.Hydrator, error) {
	if d.IsZero() {
		return o.hyd, nil
	}
	return o.hyds.Load(ctx, d, func() (*chunk.Hydrator, int64, error) {
		data, err := o.src.Dict(ctx, d)
		if err != nil {
			return nil, 0, missing(err, "dictionary", d)
		}
		if hash.Sum(data) != d && o.retry(ctx, ErrCorrupt) {
			if data, err = o.src.Dict(Refetch(ctx), d); err != nil {
				return nil, 0, missing(err, "dictionary", d)
			}
		}
		if hash.Sum(data) != d {
			return nil, 0, fmt.Errorf("%w: dictionary %s does not match its hash", ErrCorrupt, d)
		}
		y, err := chunk.NewHydrator(data)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: dictionary %s: %v", ErrCorrupt, d, err)
		}
		if k, ok := o.src.(Keeper); ok {
			k.KeepDict(d, data)
		}
		return y, int64(len(data)), nil
	})
}

// File returns the stored file with content address h.
func (o *Objects) File(ctx context.Context, h hash.Hash) (*File, error) {
	o.stats.files.Add(1)
	return o.files.Load(ctx, h, func() (*File, int64, error) {
		o.stats.fileMisses.Add(1)
		f, err := o.readFile(ctx, h)
		if err != nil {
			return nil, 0, err
		}
		return f, f.List.MemSize(), nil
	})
}

// ListedFile is File for a caller that knows the file from its verified
// listing: its size and, in a sealed listing, its chunk list's hash, so
// that a list served out of order (each chunk verifies, the bytes land in
// the wrong places) is refused before any read. A record that does not fit
// (a one-chunk file's size comes from its chunk's header, unverified until
// the chunk is read) is dropped from the cache and read once more from the
// origin before the file counts as corrupt.
func (o *Objects) ListedFile(ctx context.Context, l Listed) (*File, error) {
	if l.Sealed && !l.List.IsZero() {
		ctx = ListedMulti(ctx)
	}
	f, err := o.File(ctx, l.Hash)
	if err != nil {
		return nil, err
	}
	if err = l.fits(f); err == nil {
		return f, nil
	}
	o.files.Remove(l.Hash)
	if !o.retry(ctx, err) {
		return nil, err
	}
	if f, err = o.File(Refetch(ctx), l.Hash); err != nil {
		return nil, err
	}
	if err = l.fits(f); err != nil {
		o.files.Remove(l.Hash)
		return nil, err
	}
	return f, nil
}

func (o *Objects) readFile(ctx context.Context, h hash.Hash) (*File, error) {
	// A decoded chunk of that address is the file's whole content (the
	// same hash, the same bytes): no chunk list to ask for. A remote
	// source would otherwise fetch the chunk again to probe for one.
	if b, ok := o.chunks.Get(h); ok {
		return &File{Hash: h, Size: int64(len(b)), List: tree.OneChunk(h, int64(len(b)))}, nil
	}
	rec, err := o.src.ChunkList(ctx, h)
	if err != nil {
		return nil, missing(err, "file", h)
	}
	f, err := decodeFile(h, rec)
	if o.retry(ctx, err) {
		return o.readFile(Refetch(ctx), h)
	}
	if k, ok := o.src.(Keeper); ok && err == nil {
		k.KeepFile(h, rec)
	}
	return f, err
}

// decodeFile decodes a file record.
func decodeFile(h hash.Hash, rec FileRecord) (*File, error) {
	f := &File{Hash: h, Size: rec.Size}
	if rec.List == nil {
		f.List = tree.OneChunk(h, f.Size)
		return f, nil
	}
	var err error
	if f.List, err = tree.DecodeChunkList(rec.List, f.Size); err != nil {
		return nil, fmt.Errorf("%w: file %s: %v", ErrCorrupt, h, err)
	}
	f.ListHash = hash.Sum(rec.List)
	// A one-chunk file's address is its chunk's address.
	if len(f.List.Chunks) == 1 && f.List.Chunks[0].Hash != h {
		return nil, fmt.Errorf("%w: file %s: chunk list names %s", ErrCorrupt, h, f.List.Chunks[0].Hash)
	}
	return f, nil
}

// Opening tells a Packer source that file, an entry of listing dir, is
// being opened, if dir's listing is in the cache. It does so even when
// the file's content is cached (a twin of a file read before): the pack
// serves the files after it, which the view prefetches next.
func (o *Objects) Opening(ctx context.Context, dir, file hash.Hash) {
	p, ok := o.src.(Packer)
	if !ok {
		return
	}
	if d, ok := o.dirs.Get(dir); ok {
		p.Opening(ctx, dir, d, file)
	}
}

// CachedDir returns listing h if it is in the cache, without loading it.
func (o *Objects) CachedDir(h hash.Hash) (*tree.Dir, bool) { return o.dirs.Get(h) }

// Dir returns the decoded directory listing with address h, verified
// against h.
func (o *Objects) Dir(ctx context.Context, h hash.Hash) (*tree.Dir, error) {
	o.stats.dirs.Add(1)
	d, err := o.dirs.Load(ctx, h, func() (*tree.Dir, int64, error) {
		o.stats.dirMisses.Add(1)
		d, err := o.readDir(ctx, h, MaxChainDepth)
		if err != nil {
			return nil, 0, err
		}
		return d, d.MemSize(), nil
	})
	if w, ok := o.src.(DirWatcher); ok && err == nil {
		w.UsedDir(ctx, h)
	}
	return d, err
}

// readDir reads and decodes listing h, whose base chain may be at most
// budget long.
func (o *Objects) readDir(ctx context.Context, h hash.Hash, budget int) (*tree.Dir, error) {
	blob, err := o.src.Listing(ctx, h)
	if err != nil {
		return nil, missing(err, "directory", h)
	}
	d, err := o.decodeListing(ctx, h, blob, budget)
	if o.retry(ctx, err) {
		return o.readDir(Refetch(ctx), h, budget)
	}
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", h, err)
	}
	if k, ok := o.src.(Keeper); ok {
		k.KeepListing(h, blob)
	}
	return d, nil
}

// decodeListing unpacks, verifies and decodes a listing record.
func (o *Objects) decodeListing(ctx context.Context, h hash.Hash, blob []byte, budget int) (*tree.Dir, error) {
	r, err := parseDirRecord(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	var enc []byte
	switch r.codec {
	case chunk.Raw:
		enc = r.payload
	case chunk.Zstd:
		if enc, err = dirDecoder.DecodeAll(r.payload, nil); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	case chunk.Delta:
		if r.depth > budget {
			return nil, fmt.Errorf("%w: base chain of depth %d (at most %d here)", ErrCorrupt, r.depth, budget)
		}
		base, err := o.baseDir(ctx, r.base, r.depth-1)
		if err != nil {
			return nil, refError{fmt.Errorf("base: %w", err)}
		}
		baseEnc, err := base.Encode()
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", r.base, err)
		}
		if enc, err = chunk.DecodeDelta(r.payload, baseEnc); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	if hash.Sum(enc) != h {
		return nil, fmt.Errorf("%w: listing does not match its hash", ErrCorrupt)
	}
	d, err := tree.DecodeDir(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return d, nil
}

// baseDir returns a base listing from the cache or reads it, without
// joining loads in flight (see refChunk).
func (o *Objects) baseDir(ctx context.Context, h hash.Hash, budget int) (*tree.Dir, error) {
	if d, ok := o.dirs.Get(h); ok {
		return d, nil
	}
	d, err := o.readDir(ctx, h, budget)
	if err == nil {
		o.dirs.Put(h, d, d.MemSize())
	}
	return d, err
}

// Space returns the bytes the source occupies and the bytes free for it
// on its disk, where it is on a local disk.
func (o *Objects) Space() (used, avail int64, ok bool) {
	if s, is := o.src.(Spacer); is {
		if used, avail, err := s.Space(); err == nil {
			return used, avail, true
		}
	}
	return 0, 0, false
}
