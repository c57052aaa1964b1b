package store

import (
	"context"
	"errors"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Imports copy objects from another store (a published layout) in their
// stored form: the frames, records and dictionaries are kept as they are,
// not dried again. The caller verifies each object against its address
// before it is put, and puts an object's references, delta base and
// dictionary before the object.

var hasQueries = map[ObjectKind]string{
	ObjectChunk:   `SELECT 1 FROM chunks WHERE hash = ?`,
	ObjectListing: `SELECT 1 FROM dirs WHERE hash = ?`,
	ObjectList:    `SELECT 1 FROM files WHERE hash = ?`,
	ObjectDict:    `SELECT 1 FROM dicts WHERE hash = ? LIMIT 1`,
}

// Has reports whether the store holds object h of kind k.
func (s *Store) Has(ctx context.Context, k ObjectKind, h hash.Hash) (bool, error) {
	q, ok := hasQueries[k]
	if !ok {
		return false, fmt.Errorf("has: unknown object kind %d", k)
	}
	var has bool
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		var err error
		has, err = rowExists(c, q, h)
		return err
	})
	return has, err
}

// PutFrame stores chunk h in its stored form f, whose dictionary (by
// hash) and reference must be in the store already. This schema keeps one
// reference per chunk; a frame of several is refused.
func (w *Writer) PutFrame(h hash.Hash, f Frame) error {
	if len(f.Refs) > 1 {
		return fmt.Errorf("chunk %s: %d references: this store keeps one per chunk", h, len(f.Refs))
	}
	o := op{kind: opFrame, h: h, size: int64(f.Size), codec: f.Codec, ref: f.Dict, depth: int64(f.Depth), data: f.Data}
	if len(f.Refs) == 1 {
		o.name = string(f.Refs[0][:])
	}
	return w.send(o)
}

// PackListing returns the record of a listing with canonical encoding
// enc, stored whole (raw or zstd, without a delta base).
func PackListing(enc []byte) []byte { return packDir(enc, nil) }

// PutListing stores listing h's record as it is.
func (w *Writer) PutListing(h hash.Hash, rec []byte) error {
	return w.send(op{kind: opDir, h: h, data: rec})
}

// PutDict stores a dictionary known only by its hash h, unless the store
// has it: it is named imported@<the hash's first 16 hex digits>.
func (w *Writer) PutDict(h hash.Hash, data []byte) error {
	return w.send(op{kind: opDict, h: h, data: data})
}

// applyFrame writes an opFrame: o.ref carries the dictionary hash and
// o.name the reference's bytes.
func applyFrame(c *sqlite.Conn, o op) (int64, error) {
	if has, err := rowExists(c, `SELECT 1 FROM chunks WHERE hash = ?`, o.h); err != nil || has {
		return 0, err
	}
	var dict int64
	if !o.ref.IsZero() {
		err := queryRow(c, `SELECT id FROM dicts WHERE hash = ? ORDER BY id LIMIT 1`, func(st *sqlite.Stmt) { st.BindBytes(1, o.ref[:]) },
			func(st *sqlite.Stmt) error { dict = st.ColumnInt64(0); return nil })
		if errors.Is(err, errNoRow) {
			return 0, fmt.Errorf("store chunk %s: dictionary %s is missing", o.h, o.ref)
		}
		if err != nil {
			return 0, fmt.Errorf("store chunk %s: %w", o.h, err)
		}
	}
	var ref any
	if o.name != "" {
		ref = []byte(o.name)
	}
	if err := exec(c, `INSERT INTO chunk_data(data) VALUES (?)`, o.data); err != nil {
		return 0, fmt.Errorf("store chunk %s: %w", o.h, err)
	}
	id := c.LastInsertRowID()
	if err := exec(c, `INSERT OR FAIL INTO chunks(hash, size, codec, dict, ref, depth, stored, data_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		o.h[:], o.size, int64(o.codec), dict, ref, o.depth, int64(len(o.data)), id); err != nil {
		return 0, fmt.Errorf("store chunk %s: %w", o.h, err)
	}
	return int64(len(o.data)), nil
}

// applyDict writes an opDict.
func applyDict(c *sqlite.Conn, o op) error {
	if has, err := rowExists(c, `SELECT 1 FROM dicts WHERE hash = ? LIMIT 1`, o.h); err != nil || has {
		return err
	}
	version := o.h.String()
	if i := len("sha256:"); len(version) > i+16 {
		version = version[i : i+16]
	}
	if err := exec(c, `INSERT INTO dicts(name, version, params, stats, hash, data, created) VALUES ('imported', ?, '{}', '{}', ?, ?, strftime('%s','now') * 1000000000)`,
		version, o.h[:], o.data); err != nil {
		return fmt.Errorf("store dictionary %s: %w", o.h, err)
	}
	return nil
}

// AddRoots adds roots, after everything put before, in one transaction
// of their own, skipping those the store has with the same top listing; a
// root whose NAME@VERSION the store has with other content fails the whole
// call with ErrExists. It returns the roots added. The writer stays open.
func (w *Writer) AddRoots(roots []Root) ([]Root, error) {
	var added []Root
	err := w.do(func(c *sqlite.Conn) (err error) {
		added = nil
		end, err := sqlitex.ImmediateTransaction(c)
		if err != nil {
			return fmt.Errorf("add roots: %w", err)
		}
		defer end(&err)
		for _, r := range roots {
			ok, err := addRoot(c, r)
			if err != nil {
				return err
			}
			if ok {
				added = append(added, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// addRoot inserts r unless the store has it; see AddRoots.
func addRoot(c *sqlite.Conn, r Root) (bool, error) {
	top, err := encodeTop(r.Top)
	if err != nil {
		return false, fmt.Errorf("add root %s: %w", r.ID(), err)
	}
	var have []byte
	err = queryRow(c, `SELECT top FROM roots WHERE name = ? AND version = ?`,
		func(st *sqlite.Stmt) { st.BindText(1, r.Name); st.BindText(2, r.Version) },
		func(st *sqlite.Stmt) error { have = columnCopy(st, 0); return nil })
	switch {
	case err == nil && string(have) == string(top):
		return false, nil
	case err == nil:
		return false, fmt.Errorf("root %s: %w with other content", r.ID(), ErrExists)
	case !errors.Is(err, errNoRow):
		return false, fmt.Errorf("add root %s: %w", r.ID(), err)
	}
	err = sqlitex.Execute(c, `INSERT INTO roots(`+rootCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, &sqlitex.ExecOptions{
		Args: []any{r.Name, r.Version, top, r.Created.UnixNano(), r.Source, r.Files, r.Bytes, r.Stored, r.Gen}})
	if err != nil {
		return false, fmt.Errorf("add root %s: %w", r.ID(), err)
	}
	return true, nil
}
