package store

import (
	"context"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// ObjectKind says what a stored object is.
type ObjectKind uint8

// Kinds of stored objects. A one-chunk file has no chunk list: it is its
// chunk.
const (
	ObjectChunk   ObjectKind = iota + 1 // a chunk's stored bytes
	ObjectList                          // a file's chunk list
	ObjectListing                       // a directory listing's record
	ObjectDict                          // a trained dictionary
)

// StoredObject is one object as the store holds it: its size and the
// object its decoding needs, if any.
type StoredObject struct {
	Kind   ObjectKind
	Hash   hash.Hash
	Stored int64 // bytes of its stored record (chunk data, list, listing)
	// Ref is what it is decoded against: a delta chunk's reference chunk,
	// a delta listing's base listing; zero for none.
	Ref hash.Hash
}

// StoredObjects tells fn of every chunk, chunk list and listing in the
// store, in one read transaction, from metadata and record heads only (no
// chunk data is read).
func (s *Store) StoredObjects(ctx context.Context, fn func(StoredObject) error) error {
	return s.withRead(ctx, func(c *sqlite.Conn) (err error) {
		defer sqlitex.Transaction(c)(&err)
		scan := func(q string, kind ObjectKind, ref func(*sqlite.Stmt, hash.Hash) (hash.Hash, error)) error {
			return sqlitex.Execute(c, q, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
				o := StoredObject{Kind: kind, Hash: columnHash(st, 0), Stored: st.ColumnInt64(1)}
				if ref != nil {
					var err error
					if o.Ref, err = ref(st, o.Hash); err != nil {
						return err
					}
				}
				return fn(o)
			}})
		}
		if err := scan(`SELECT hash, stored, ref FROM chunks`, ObjectChunk, func(st *sqlite.Stmt, h hash.Hash) (hash.Hash, error) {
			if st.ColumnType(2) == sqlite.TypeNull {
				return hash.Zero, nil
			}
			r, err := hash.FromBytes(columnCopy(st, 2))
			if err != nil {
				return r, fmt.Errorf("%w: chunk %s: bad reference: %v", ErrCorrupt, h, err)
			}
			return r, nil
		}); err != nil {
			return fmt.Errorf("scan chunks: %w", err)
		}
		if err := scan(`SELECT hash, length(chunks) FROM files`, ObjectList, nil); err != nil {
			return fmt.Errorf("scan chunk lists: %w", err)
		}
		if err := scan(`SELECT hash, length(data), substr(data, 1, 48) FROM dirs`, ObjectListing, func(st *sqlite.Stmt, h hash.Hash) (hash.Hash, error) {
			r, err := parseDirRecord(columnCopy(st, 2))
			if err != nil {
				return hash.Zero, fmt.Errorf("%w: directory %s: %v", ErrCorrupt, h, err)
			}
			return r.base, nil
		}); err != nil {
			return fmt.Errorf("scan listings: %w", err)
		}
		return nil
	})
}
