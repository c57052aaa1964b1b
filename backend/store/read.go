package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"zombiezen.com/go/sqlite"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
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

// Frame implements Source: chunk h as stored.
func (s *Store) Frame(ctx context.Context, h hash.Hash) (Frame, error) {
	var f Frame
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT c.size, c.codec, c.dict, c.ref, c.depth, c.stored, k.hash, c.data_id FROM chunks c
			LEFT JOIN dicts k ON k.id = c.dict WHERE c.hash = ?`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error {
				info := ChunkInfo{Hash: h}
				if err := scanInfo(st, &info, 0); err != nil {
					return err
				}
				// The statement is still stepping, so the blob is read in
				// its snapshot: a collector's delete cannot come between.
				data, err := readBlob(c, "chunk_data", st.ColumnInt64(7))
				if err != nil {
					return fmt.Errorf("chunk %s: %w", h, err)
				}
				f = Frame{Size: info.Size, Codec: info.Codec, Depth: info.Depth, Data: data}
				if !info.Ref.IsZero() {
					f.Refs = []hash.Hash{info.Ref}
				}
				if info.Dict != 0 {
					d, err := hash.FromBytes(columnCopy(st, 6))
					if err != nil {
						return fmt.Errorf("%w: chunk %s: dictionary %d is missing", ErrCorrupt, h, info.Dict)
					}
					f.Dict = d
				}
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return f, fmt.Errorf("chunk %s: %w", h, ErrNotFound)
	}
	return f, err
}

// readBlob returns the data column of row id of table with SQLite's
// incremental blob I/O: read straight into one Go buffer of the blob's
// size. Selecting a large blob as a column costs SQLite a buffer of its
// own per row (for blobs over 16 KiB, an mmap and munmap each, and their
// page faults); measured on a store of 64 KiB chunks, reading the blob is
// 6 to 10 times faster.
func readBlob(c *sqlite.Conn, table string, id int64) ([]byte, error) {
	b, err := c.OpenBlob("main", table, "data", id, false)
	if sqlite.ErrCode(err) == sqlite.ResultError {
		// No such row: the metadata names data that is not there.
		return nil, fmt.Errorf("%w: its data (row %d) is missing", ErrCorrupt, id)
	}
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data := make([]byte, b.Size())
	if _, err := io.ReadFull(b, data); err != nil {
		return nil, err
	}
	return data, nil
}

// ChunkList implements Source: file h's size and chunk list.
func (s *Store) ChunkList(ctx context.Context, h hash.Hash) (FileRecord, error) {
	var rec FileRecord
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		var err error
		rec, err = fileRecord(c, h)
		return err
	})
	return rec, err
}

// fileRecord reads file h's record. A one-chunk file has no files row: it
// is its chunk, and its record has no list.
func fileRecord(c *sqlite.Conn, h hash.Hash) (FileRecord, error) {
	var rec FileRecord
	err := queryRow(c, `SELECT size, chunks FROM files WHERE hash = ?1 UNION ALL SELECT size, NULL FROM chunks WHERE hash = ?1 LIMIT 1`,
		func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
		func(st *sqlite.Stmt) error {
			rec.Size = st.ColumnInt64(0)
			if st.ColumnType(1) != sqlite.TypeNull {
				rec.List = columnCopy(st, 1)
			}
			return nil
		})
	if errors.Is(err, errNoRow) {
		return rec, fmt.Errorf("file %s: %w", h, ErrNotFound)
	}
	return rec, err
}

// Listing implements Source: listing h's record.
func (s *Store) Listing(ctx context.Context, h hash.Hash) ([]byte, error) {
	return s.dirBlob(ctx, h, `data`)
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
