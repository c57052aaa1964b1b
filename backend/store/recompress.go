package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// RecompressStats counts what Recompress did.
type RecompressStats struct {
	Chunks    int64 // chunks looked at
	Rewritten int64 // chunks stored anew, smaller
	Before    int64 // their stored bytes before
	After     int64 // and after
}

// recompressBatch is how many chunks one transaction rewrites.
const recompressBatch = 256

// Recompress re-dries chunks with dictionary d wherever that stores them
// smaller: the chunks only names (walk.Chunks finds a root's), or every
// chunk of the store if only is nil.
// With d nil it re-dries every chunk that uses a dictionary without one,
// whatever the size, so that the dictionaries can be removed.
// Each batch is one transaction that replaces a chunk's bytes and its
// codec together, so a killed run leaves every chunk readable and a second
// run continues; readers keep reading throughout. Every chunk is verified
// against its hash before it is rewritten.
func (s *Store) Recompress(ctx context.Context, d *Dict, level chunk.Level, only []hash.Hash, progress func(done, total int64)) (RecompressStats, error) {
	var st RecompressStats
	if s.wconn == nil {
		return st, fmt.Errorf("store opened read-only")
	}
	var id int64 // the dictionary chunks are re-dried with: 0 for none
	var dict []byte
	if d != nil {
		id, dict = d.ID, d.Data
	}
	dryer, err := chunk.NewDryer(level, dict)
	if err != nil {
		return st, err
	}
	filtered := only != nil
	only = slices.Clone(only)
	slices.SortFunc(only, func(a, b hash.Hash) int { return bytes.Compare(a[:], b[:]) })
	total := int64(len(only))
	if !filtered {
		err := s.withRead(ctx, func(c *sqlite.Conn) error {
			return queryRow(c, `SELECT count(*) FROM chunks`, func(*sqlite.Stmt) {}, func(q *sqlite.Stmt) error { total = q.ColumnInt64(0); return nil })
		})
		if err != nil {
			return st, err
		}
	}
	var after hash.Hash // keyset cursor: chunks are visited in hash order
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var batch []rechunk
		var err error
		if filtered {
			n := min(recompressBatch, len(only))
			batch, err = s.loadChunks(ctx, only[:n])
			only = only[n:]
		} else {
			batch, after, err = s.nextChunks(ctx, after)
		}
		if err != nil {
			return st, err
		}
		if len(batch) == 0 && len(only) == 0 {
			return st, nil
		}
		var updates []rechunk
		for _, c := range batch {
			st.Chunks++
			if c.dict == id || c.codec.HasRef() {
				continue // delta chunks stay deltas: a dictionary does not beat a reference
			}
			y, err := s.hydratorByID(ctx, c.dict)
			if err != nil {
				return st, fmt.Errorf("chunk %s: %w", c.h, err)
			}
			raw, err := y.Hydrate(c.h, c.codec, c.size, c.data)
			if err != nil {
				return st, err
			}
			out, codec, withDict := dryer.Dry(nil, raw)
			if d != nil && (!withDict || len(out) >= len(c.data)) {
				continue
			}
			st.Rewritten++
			st.Before += int64(len(c.data))
			st.After += int64(len(out))
			updates = append(updates, rechunk{h: c.h, dataID: c.dataID, codec: codec, dict: id, data: out})
		}
		if err := s.rewrite(updates); err != nil {
			return st, err
		}
		if progress != nil {
			progress(st.Chunks, total)
		}
	}
}

// rechunk is a chunk row being rewritten.
type rechunk struct {
	h      hash.Hash
	size   int
	codec  chunk.Codec
	dict   int64
	dataID int64
	data   []byte
}

const rechunkCols = `c.hash, c.size, c.codec, c.dict, c.data_id, d.data FROM chunks c JOIN chunk_data d ON d.id = c.data_id`

func scanRechunk(q *sqlite.Stmt) rechunk {
	h, _ := hash.FromBytes(columnCopy(q, 0))
	return rechunk{h: h, size: q.ColumnInt(1), codec: chunk.Codec(q.ColumnInt(2)), dict: q.ColumnInt64(3), dataID: q.ColumnInt64(4), data: columnCopy(q, 5)}
}

// nextChunks reads the next batch of chunks after cursor in hash order.
func (s *Store) nextChunks(ctx context.Context, after hash.Hash) ([]rechunk, hash.Hash, error) {
	var out []rechunk
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return sqlitex.Execute(c, `SELECT `+rechunkCols+` WHERE c.hash > ? ORDER BY c.hash LIMIT ?`, &sqlitex.ExecOptions{
			Args:       []any{after[:], recompressBatch},
			ResultFunc: func(q *sqlite.Stmt) error { out = append(out, scanRechunk(q)); return nil }})
	})
	if len(out) > 0 {
		after = out[len(out)-1].h
	}
	return out, after, err
}

// loadChunks reads the given chunks.
func (s *Store) loadChunks(ctx context.Context, hs []hash.Hash) ([]rechunk, error) {
	var out []rechunk
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		for _, h := range hs {
			err := queryRow(c, `SELECT `+rechunkCols+` WHERE c.hash = ?`, func(q *sqlite.Stmt) { q.BindBytes(1, h[:]) },
				func(q *sqlite.Stmt) error { out = append(out, scanRechunk(q)); return nil })
			if err != nil {
				return fmt.Errorf("chunk %s: %w", h, err)
			}
		}
		return nil
	})
	return out, err
}

// rewrite replaces chunks' bytes and codecs in one transaction.
func (s *Store) rewrite(updates []rechunk) (err error) {
	if len(updates) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	end, err := sqlitex.ImmediateTransaction(s.wconn)
	if err != nil {
		return err
	}
	defer end(&err)
	for _, u := range updates {
		if err = exec(s.wconn, `UPDATE chunk_data SET data = ? WHERE id = ?`, u.data, u.dataID); err != nil {
			return fmt.Errorf("rewrite chunk %s: %w", u.h, err)
		}
		if err = exec(s.wconn, `UPDATE OR FAIL chunks SET codec = ?, dict = ?, stored = ? WHERE hash = ?`, int64(u.codec), u.dict, int64(len(u.data)), u.h[:]); err != nil {
			return fmt.Errorf("rewrite chunk %s: %w", u.h, err)
		}
	}
	return nil
}

// Redried is a chunk's new stored form against a reference.
type Redried struct {
	Hash hash.Hash
	Dried
}

// Redry rewrites chunks as deltas against references, in one transaction.
// A chunk is left alone (and not counted) unless, when the transaction
// runs, it has no reference and no dependants and its new reference is
// shallower than the depth given: so no chain can loop or outgrow a bound
// whatever ran meanwhile. done[i] says whether updates[i] was applied.
func (s *Store) Redry(updates []Redried) (done []bool, err error) {
	if s.wconn == nil {
		return nil, fmt.Errorf("store opened read-only")
	}
	if len(updates) == 0 {
		return nil, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return nil, err
	}
	defer end(&err)
	done = make([]bool, len(updates))
	for i, u := range updates {
		err = exec(c, `UPDATE OR FAIL chunks SET codec = ?, dict = 0, ref = ?, depth = ?, stored = ?
			WHERE hash = ? AND ref IS NULL AND deps = 0
			AND EXISTS (SELECT 1 FROM chunks r WHERE r.hash = ? AND r.depth < ?)`,
			int64(u.Codec), u.Ref[:], int64(u.Depth), int64(len(u.Data)), u.Hash[:], u.Ref[:], int64(u.Depth))
		if err != nil {
			return nil, fmt.Errorf("re-dry chunk %s: %w", u.Hash, err)
		}
		if c.Changes() == 0 {
			continue
		}
		if err = exec(c, `UPDATE chunk_data SET data = ? WHERE id = (SELECT data_id FROM chunks WHERE hash = ?)`, u.Data, u.Hash[:]); err != nil {
			return nil, fmt.Errorf("re-dry chunk %s: %w", u.Hash, err)
		}
		done[i] = true
	}
	return done, nil
}
