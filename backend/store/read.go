package store

import (
	"context"
	"errors"
	"fmt"

	"zombiezen.com/go/sqlite"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// ChunkInfo is a chunk's metadata row.
type ChunkInfo struct {
	Hash   hash.Hash
	Size   int
	Codec  chunk.Codec
	Dict   int64     // trained dictionary id, 0 for none
	Ref    hash.Hash // the reference of a Delta chunk, else zero
	Depth  int       // reference chain length: 0 without a reference
	Deps   int       // chunks whose reference it is
	Stored int
}

// MaxChainDepth bounds the reference chains a store follows: a deeper
// recorded depth is reported as corruption. Ingest keeps chains far shorter.
const MaxChainDepth = 64

// Chunk returns the content of chunk h, verified against h. The slice is
// shared through the cache and must not be modified.
func (s *Store) Chunk(ctx context.Context, h hash.Hash) ([]byte, error) {
	return s.chunks.Load(h, func() ([]byte, int64, error) {
		b, err := s.readChunk(ctx, h, MaxChainDepth)
		return b, chunkCost(b), err
	})
}

func chunkCost(b []byte) int64 { return int64(len(b)) + 64 }

// ChunkInfo returns chunk h's metadata row.
func (s *Store) ChunkInfo(ctx context.Context, h hash.Hash) (ChunkInfo, error) {
	info := ChunkInfo{Hash: h}
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT size, codec, dict, ref, depth, stored, deps FROM chunks WHERE hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error { info.Deps = st.ColumnInt(6); return scanInfo(st, &info, 0) })
	})
	if errors.Is(err, errNoRow) {
		return info, fmt.Errorf("chunk %s: %w", h, ErrNotFound)
	}
	return info, err
}

// scanInfo reads size, codec, dict, ref, depth and stored from columns i….
func scanInfo(st *sqlite.Stmt, info *ChunkInfo, i int) error {
	info.Size, info.Codec, info.Dict = st.ColumnInt(i), chunk.Codec(st.ColumnInt(i+1)), st.ColumnInt64(i+2)
	info.Depth, info.Stored = st.ColumnInt(i+4), st.ColumnInt(i+5)
	if st.ColumnType(i+3) == sqlite.TypeNull {
		return nil
	}
	ref, err := hash.FromBytes(columnCopy(st, i+3))
	if err != nil {
		return fmt.Errorf("%w: chunk %s: bad reference: %v", ErrCorrupt, info.Hash, err)
	}
	info.Ref = ref
	return nil
}

// readChunk reads, decodes and verifies chunk h, whose reference chain may
// be at most budget long. Every step down a chain lowers the budget, so a
// damaged store with a cycle of references ends in an error.
func (s *Store) readChunk(ctx context.Context, h hash.Hash, budget int) ([]byte, error) {
	info := ChunkInfo{Hash: h}
	var stored []byte
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT c.size, c.codec, c.dict, c.ref, c.depth, c.stored, d.data FROM chunks c JOIN chunk_data d ON d.id = c.data_id WHERE c.hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				stored = columnCopy(st, 6)
				return scanInfo(st, &info, 0)
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("%w: chunk %s is missing", ErrCorrupt, h)
	}
	if err != nil {
		return nil, fmt.Errorf("read chunk %s: %w", h, err)
	}
	if info.Codec.HasRef() {
		if info.Ref.IsZero() || info.Depth < 1 || info.Depth > budget {
			return nil, fmt.Errorf("%w: chunk %s: reference chain of depth %d (at most %d here)", ErrCorrupt, h, info.Depth, budget)
		}
		ref, err := s.refChunk(ctx, info.Ref, info.Depth-1)
		if err != nil {
			return nil, fmt.Errorf("chunk %s: reference: %w", h, err)
		}
		return chunk.HydrateDelta(h, info.Size, stored, ref)
	}
	y, err := s.hydrator(ctx, info.Dict)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", h, err)
	}
	return y.Hydrate(h, info.Codec, info.Size, stored)
}

// refChunk returns a reference's content from the cache or reads it. It
// does not join loads in flight: a damaged store whose chain loops back to
// a chunk being loaded further up the same chain would wait on itself.
func (s *Store) refChunk(ctx context.Context, h hash.Hash, budget int) ([]byte, error) {
	if b, ok := s.chunks.Get(h); ok {
		return b, nil
	}
	b, err := s.readChunk(ctx, h, budget)
	if err == nil {
		s.chunks.Put(h, b, chunkCost(b))
	}
	return b, err
}

// File returns the stored file with content address h.
func (s *Store) File(ctx context.Context, h hash.Hash) (*File, error) {
	return s.files.Load(h, func() (*File, int64, error) {
		f, err := s.readFile(ctx, h)
		if err != nil {
			return nil, 0, err
		}
		return f, f.List.MemSize(), nil
	})
}

func (s *Store) readFile(ctx context.Context, h hash.Hash) (*File, error) {
	f := &File{Hash: h}
	var enc []byte
	single := false
	// A one-chunk file has no files row: it is its chunk.
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT size, chunks FROM files WHERE hash = ?1 UNION ALL SELECT size, NULL FROM chunks WHERE hash = ?1 LIMIT 1`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				f.Size = st.ColumnInt64(0)
				single = st.ColumnType(1) == sqlite.TypeNull
				enc = columnCopy(st, 1)
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("%w: file %s is missing", ErrCorrupt, h)
	}
	if err != nil {
		return nil, fmt.Errorf("read file %s: %w", h, err)
	}
	if single {
		f.List = tree.OneChunk(h, f.Size)
		return f, nil
	}
	if f.List, err = tree.DecodeChunkList(enc, f.Size); err != nil {
		return nil, fmt.Errorf("%w: file %s: %v", ErrCorrupt, h, err)
	}
	// A one-chunk file's address is its chunk's address.
	if len(f.List.Chunks) == 1 && f.List.Chunks[0].Hash != h {
		return nil, fmt.Errorf("%w: file %s: chunk list names %s", ErrCorrupt, h, f.List.Chunks[0].Hash)
	}
	return f, nil
}

// Dir returns the decoded directory listing with address h, verified
// against h.
func (s *Store) Dir(ctx context.Context, h hash.Hash) (*tree.Dir, error) {
	return s.dirs.Load(h, func() (*tree.Dir, int64, error) {
		d, err := s.readDir(ctx, h, MaxChainDepth)
		if err != nil {
			return nil, 0, err
		}
		return d, d.MemSize(), nil
	})
}

// IngestIndex returns the reuse-index data ingest stored for source
// directory path of name's ingest generation gen, or nil if there is none.
func (s *Store) IngestIndex(ctx context.Context, name string, gen int64, path string) ([]byte, error) {
	var out []byte
	key := hash.Sum([]byte(path))
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT data FROM ingest_index WHERE name = ? AND gen = ? AND path = ?`,
			func(st *sqlite.Stmt) { st.BindText(1, name); st.BindInt64(2, gen); st.BindBytes(3, key[:]) },
			func(st *sqlite.Stmt) error {
				out = columnCopy(st, 0)
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, nil
	}
	return out, err
}
