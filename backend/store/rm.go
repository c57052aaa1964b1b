package store

import (
	"context"
	"errors"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// RemoveRoots removes roots in one transaction, all or none. pick is
// given every root, in the order Roots lists them (by name, then oldest
// first), as the transaction sees them, and returns those to remove; an
// error from it removes nothing. A removed root's reuse index goes too,
// unless a remaining root of its name has the same generation; an
// uncommitted ingest's index is left alone. Only root rows are deleted:
// listings, chunk lists and chunks stay until garbage collection, so
// readers holding them keep reading. It returns the roots removed.
func (s *Store) RemoveRoots(ctx context.Context, pick func([]Root) ([]Root, error)) (removed []Root, err error) {
	if s.wconn == nil {
		return nil, errors.New("store opened read-only")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return nil, fmt.Errorf("remove roots: %w", err)
	}
	defer end(&err)
	var all []Root
	err = sqlitex.Execute(c, `SELECT `+rootCols+` FROM roots ORDER BY name, created, id`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { all = append(all, scanRoot(st)); return nil }})
	if err != nil {
		return nil, fmt.Errorf("remove roots: %w", err)
	}
	if removed, err = pick(all); err != nil {
		return nil, err
	}
	for _, r := range removed {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := sqlitex.Execute(c, `DELETE FROM roots WHERE name = ? AND version = ?`, &sqlitex.ExecOptions{Args: []any{r.Name, r.Version}}); err != nil {
			return nil, fmt.Errorf("remove root %s: %w", r.ID(), err)
		}
		if c.Changes() != 1 {
			return nil, fmt.Errorf("remove root %s: %w", r.ID(), ErrNotFound)
		}
		err := sqlitex.Execute(c, `DELETE FROM ingest_index WHERE name = ?1 AND gen = ?2
			AND NOT EXISTS (SELECT 1 FROM roots WHERE name = ?1 AND gen = ?2)`, &sqlitex.ExecOptions{Args: []any{r.Name, r.Gen}})
		if err != nil {
			return nil, fmt.Errorf("remove the reuse index of %s: %w", r.ID(), err)
		}
	}
	return removed, nil
}
