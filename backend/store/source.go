package store

import (
	"context"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Source is the read seam between the file-system view and where objects
// live: the SQLite store, or a remote store (HTTP, S3) behind a local
// cache. A Source hands out objects as stored (compressed frames, listing
// records, chunk lists, dictionaries) and need not verify them: Objects
// decodes, verifies and caches above any Source, in one place.
//
// A missing object is reported with an error wrapping ErrNotFound; Objects
// turns that into ErrCorrupt where another object named it.
type Source interface {
	// Roots lists every root by name, then oldest version first.
	Roots(ctx context.Context) ([]Root, error)
	// Root returns NAME@VERSION; version "latest" is the name's newest.
	Root(ctx context.Context, name, version string) (Root, error)
	// Newest returns the most recently created version of name.
	Newest(ctx context.Context, name string) (Root, error)
	// Listing returns the stored record of listing h (see dirrec.go).
	Listing(ctx context.Context, h hash.Hash) ([]byte, error)
	// ChunkList returns the record of file h. A ctx marked by
	// ListedMulti says that h's verified listing names a chunk list.
	ChunkList(ctx context.Context, h hash.Hash) (FileRecord, error)
	// Frame returns chunk h as stored, with what decoding it needs.
	Frame(ctx context.Context, h hash.Hash) (Frame, error)
	// Dict returns the bytes of the trained dictionary with hash h.
	Dict(ctx context.Context, h hash.Hash) ([]byte, error)
}

// Frame is a chunk as stored: its compressed bytes and what decoding them
// needs. It is not verified; Objects checks the decoded bytes against the
// chunk's address.
type Frame struct {
	Size  int         // decoded size
	Codec chunk.Codec // how Data is compressed
	Dict  hash.Hash   // the trained dictionary, zero for none
	// Refs are the reference chunks a delta frame was compressed against,
	// concatenated in order as its raw dictionary; empty for other codecs.
	Refs  []hash.Hash
	Depth int // reference chain length: 0 without references
	Data  []byte
}

// FileRecord is a stored file: its size and encoded chunk list. A file of
// one chunk has no list (List is nil): it is that chunk, and shares its
// address.
type FileRecord struct {
	Size int64
	List []byte
}

// Spacer is implemented by sources on a local disk, for statfs.
type Spacer interface {
	// Space returns the bytes the source occupies, and the bytes free
	// for it to grow on its disk.
	Space() (used, avail int64, err error)
}

// Parallel is implemented by sources whose reads wait on something other
// than this machine's cores, such as a network: Objects runs that many
// prefetches at once instead of one per core.
type Parallel interface {
	Parallelism() int
}

// DirWatcher is implemented by sources that read ahead of tree walks:
// Objects tells it of every listing it hands out, from its cache or not,
// so that what a walk needs next is fetched while it reads this one.
type DirWatcher interface {
	// UsedDir: listing h was handed to a reader.
	UsedDir(ctx context.Context, h hash.Hash)
}

// Packer is implemented by sources that can fetch a directory's small
// files in one request (a published layout's packs): Objects tells it of
// each file being opened whose content is not in its cache.
type Packer interface {
	// Opening: file, an entry of listing dir (d, decoded), is being opened.
	Opening(ctx context.Context, dir hash.Hash, d *tree.Dir, file hash.Hash)
}

// Keeper is implemented by sources that keep what passed verification,
// such as a local cache in front of a remote: nothing that failed its
// check may enter such a cache, and only Objects checks. Objects hands a
// Keeper each object it read from it, exactly as the source gave it, once
// its check has succeeded and never otherwise. Objects read back from a
// keeper's copy are verified again like any other. The calls are
// synchronous, on the reading goroutine, and may come again for an object
// already kept.
type Keeper interface {
	// KeepFrame: chunk h's decoded bytes matched h (its references and
	// dictionary were verified on their own first).
	KeepFrame(h hash.Hash, f Frame)
	// KeepListing: listing h's decoded encoding matched h.
	KeepListing(h hash.Hash, rec []byte)
	// KeepFile: file h's chunk list has a sound seal and shape (its
	// address is the whole file's, which only reading every chunk could
	// check; each chunk is verified when read). A one-chunk file's record
	// (List nil) is its chunk's, kept by KeepFrame.
	KeepFile(h hash.Hash, f FileRecord)
	// KeepDict: dictionary h's bytes matched h.
	KeepDict(h hash.Hash, data []byte)
}
