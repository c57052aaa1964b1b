package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Repacking closes the holes deletions leave in the tables keyed by hash.
// Their rows arrive and go in random key order, and SQLite merges a page
// with its neighbours only once it is two thirds empty, so after garbage
// collection deleted half the rows their pages are about half full: on
// the gomod corpus after removing 5 of 10 versions, listings, chunk
// metadata and chunk lists took 105 pages (6.6 MiB) holding 3.3 MiB.
// Incremental vacuum gives back only whole free pages; VACUUM rewrites
// the whole store and needs exclusive access. Repack rewrites one table.

// RepackTables are the tables Repack rebuilds, in the order gc does: those
// keyed by hash, and the reuse index (keyed by name and path), whose rows
// rm and gc delete.
var RepackTables = []string{"dirs", "chunks", "files", "ingest_index"}

// repackCopy is how Repack fills the copy of each of RepackTables: the
// columns copied and the key order. chunks is keyed by its primary key,
// so it is read in key order as it is. The others are rowid tables with
// a unique key (schema 4): their rows are copied in key order under new
// rowids, so that the rows and the key's index both fill their pages;
// nothing refers to those rowids.
var repackCopy = map[string]struct{ cols, order string }{
	"chunks":       {"*", ""},
	"dirs":         {"hash, data", "hash"},
	"files":        {"hash, size, chunks", "hash"},
	"ingest_index": {"name, gen, path, data", "name, gen, path"},
}

// ErrNoPageStats: this build of SQLite cannot count a table's pages (it
// lacks the dbstat table).
var ErrNoPageStats = errors.New("page statistics not available")

// TableUse is how a table's pages, with its indexes', are used.
type TableUse struct {
	Table string
	Pages int64 // all its pages: interior, leaf and overflow
	// Leaves are its leaf pages, and LeafUsed the bytes of them that hold
	// cells and page headers.
	Leaves, LeafUsed int64
	PageSize         int64
	packed           int64 // see Packed
}

// Packed estimates the leaf pages the table needs once repacked: rows
// copied in key order fill each B-tree's leaves (the table's and each
// index's) to packedFill.
func (u TableUse) Packed() int64 { return u.packed }

// packedFill is the percentage of a leaf page that rows copied in key
// order fill (measured on the gomod corpus: 94-95% for listings and
// chunk metadata; a leaf holds whole rows).
const packedFill = 94

// TableUse measures the pages of table and its indexes, reading them all
// (a few MiB for the metadata of the gomod corpus) on a read connection.
// It returns ErrNoPageStats where SQLite lacks the dbstat table.
func (s *Store) TableUse(ctx context.Context, table string) (TableUse, error) {
	u := TableUse{Table: table}
	err := s.withRead(ctx, func(c *sqlite.Conn) (err error) {
		defer sqlitex.Transaction(c)(&err)
		if err := queryRow(c, `PRAGMA page_size`, func(*sqlite.Stmt) {}, func(st *sqlite.Stmt) error { u.PageSize = st.ColumnInt64(0); return nil }); err != nil {
			return err
		}
		var names []string
		err = sqlitex.Execute(c, `SELECT name FROM sqlite_schema WHERE tbl_name = ? AND type IN ('table', 'index') AND rootpage > 0`, &sqlitex.ExecOptions{
			Args:       []any{table},
			ResultFunc: func(st *sqlite.Stmt) error { names = append(names, st.ColumnText(0)); return nil },
		})
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return fmt.Errorf("no table %s", table)
		}
		for _, n := range names {
			// A constraint on name keeps dbstat from reading the other
			// B-trees (chunk data above all).
			err := sqlitex.Execute(c, `SELECT pagetype = 'leaf', count(*), sum(pgsize - unused) FROM dbstat WHERE name = ? GROUP BY 1`, &sqlitex.ExecOptions{
				Args: []any{n},
				ResultFunc: func(st *sqlite.Stmt) error {
					u.Pages += st.ColumnInt64(1)
					if st.ColumnBool(0) {
						used := st.ColumnInt64(2)
						u.Leaves += st.ColumnInt64(1)
						u.LeafUsed += used
						u.packed += max(1, (used*100/packedFill+u.PageSize-1)/u.PageSize)
					}
					return nil
				}})
			if err != nil && strings.Contains(err.Error(), "no such table: dbstat") {
				return ErrNoPageStats
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("pages of %s: %w", table, err)
	}
	return u, nil
}

// Repack rebuilds table (one of RepackTables) in one write transaction:
// a new table of the same definition is filled from it in key order (see
// repackCopy), so that its pages fill up; the old one is dropped with its
// indexes and triggers, the new one renamed, and those indexes and
// triggers re-created from the old definitions, as the schema held them.
// Rows never change (rowids may, but nothing refers to them), so readers
// (whose snapshot keeps the old table until it ends), leases and
// concurrent writers (who wait for the lock) are unaffected; a killed
// run leaves the table as it was. The old table's pages are left free
// for Shrink. It returns how long it held the write lock.
func (s *Store) Repack(ctx context.Context, table string) (held time.Duration, err error) {
	if s.wconn == nil {
		return 0, errors.New("store opened read-only")
	}
	how, ok := repackCopy[table]
	if !ok {
		return 0, fmt.Errorf("repack %s: not a table repack rebuilds", table)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return 0, fmt.Errorf("repack %s: %w", table, err)
	}
	start := time.Now()
	defer func() {
		end(&err)
		held = time.Since(start)
		if err != nil {
			err = fmt.Errorf("repack %s: %w", table, err)
		}
	}()
	var create string
	var others []string // its indexes and triggers
	err = sqlitex.Execute(c, `SELECT type, sql FROM sqlite_schema WHERE tbl_name = ? AND sql IS NOT NULL`, &sqlitex.ExecOptions{
		Args: []any{table},
		ResultFunc: func(st *sqlite.Stmt) error {
			if st.ColumnText(0) == "table" {
				create = st.ColumnText(1)
			} else {
				others = append(others, st.ColumnText(1))
			}
			return nil
		},
	})
	if err != nil {
		return 0, err
	}
	tmp := table + "_repack"
	def, err := renamedTable(create, table, tmp)
	if err != nil {
		return 0, err
	}
	for _, q := range []string{
		def,
		copyRows(tmp, table, how.cols, how.order),
		fmt.Sprintf(`DROP TABLE %q`, table),
		fmt.Sprintf(`ALTER TABLE %q RENAME TO %q`, tmp, table),
	} {
		if err := sqlitex.ExecuteTransient(c, q, nil); err != nil {
			return 0, fmt.Errorf("%s: %w", firstWords(q), err)
		}
	}
	for _, q := range others {
		if err := sqlitex.ExecuteTransient(c, q, nil); err != nil {
			return 0, fmt.Errorf("%s: %w", firstWords(q), err)
		}
	}
	return 0, nil
}

// copyRows returns the statement that copies cols of table's rows into
// tmp, in order if it is not empty.
func copyRows(tmp, table, cols, order string) string {
	if cols == "*" {
		return fmt.Sprintf(`INSERT OR FAIL INTO %q SELECT * FROM %q`, tmp, table)
	}
	return fmt.Sprintf(`INSERT OR FAIL INTO %q(%s) SELECT %s FROM %q ORDER BY %s`, tmp, cols, cols, table, order)
}

// renamedTable returns the CREATE TABLE statement create of table with
// its name replaced by name. The schema holds the statement as written,
// the name quoted after a rename.
func renamedTable(create, table, name string) (string, error) {
	i := strings.IndexByte(create, '(')
	if i < 0 {
		return "", fmt.Errorf("unexpected definition of %s: %q", table, create)
	}
	switch strings.TrimSpace(create[:i]) {
	case "CREATE TABLE " + table, fmt.Sprintf("CREATE TABLE %q", table):
	default:
		return "", fmt.Errorf("unexpected definition of %s: %q", table, create)
	}
	return fmt.Sprintf("CREATE TABLE %q", name) + create[i:], nil
}

// firstWords names a statement in an error: its first three words.
func firstWords(q string) string {
	w := strings.Fields(q)
	return strings.Join(w[:min(3, len(w))], " ")
}
