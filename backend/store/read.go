package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
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
	Dict   int64
	Stored int
}

// Chunk returns the content of chunk h, verified against h. The slice is
// shared through the cache and must not be modified.
func (s *Store) Chunk(ctx context.Context, h hash.Hash) ([]byte, error) {
	return s.chunks.Load(h, func() ([]byte, int64, error) {
		b, err := s.readChunk(ctx, h)
		return b, int64(len(b)) + 64, err
	})
}

func (s *Store) readChunk(ctx context.Context, h hash.Hash) ([]byte, error) {
	var (
		info   ChunkInfo
		stored []byte
	)
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT c.size, c.codec, c.dict, d.data FROM chunks c JOIN chunk_data d ON d.id = c.data_id WHERE c.hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				info.Size, info.Codec, info.Dict = st.ColumnInt(0), chunk.Codec(st.ColumnInt(1)), st.ColumnInt64(2)
				stored = columnCopy(st, 3)
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("%w: chunk %s is missing", ErrCorrupt, h)
	}
	if err != nil {
		return nil, fmt.Errorf("read chunk %s: %w", h, err)
	}
	y, err := s.hydrator(ctx, info.Dict)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", h, err)
	}
	return y.Hydrate(h, info.Codec, info.Size, stored)
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
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT size, chunks FROM files WHERE hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				f.Size = st.ColumnInt64(0)
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
		d, err := s.readDir(ctx, h)
		if err != nil {
			return nil, 0, err
		}
		return d, d.MemSize(), nil
	})
}

// dirDecoder inflates compressed listings; DecodeAll is safe for concurrent use.
var dirDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))

func (s *Store) readDir(ctx context.Context, h hash.Hash) (*tree.Dir, error) {
	var blob []byte
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT data FROM dirs WHERE hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				blob = columnCopy(st, 0)
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("%w: directory %s is missing", ErrCorrupt, h)
	}
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", h, err)
	}
	d, err := decodeDirBlob(h, blob)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", h, err)
	}
	return d, nil
}

// unpackDir undoes packDir: a codec byte, then the listing raw or zstd.
func unpackDir(blob []byte) ([]byte, error) {
	if len(blob) == 0 {
		return nil, errors.New("empty directory record")
	}
	switch chunk.Codec(blob[0]) {
	case chunk.Raw:
		return blob[1:], nil
	case chunk.Zstd:
		return dirDecoder.DecodeAll(blob[1:], nil)
	}
	return nil, fmt.Errorf("unknown directory codec %d", blob[0])
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
