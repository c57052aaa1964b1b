package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Dict is a trained zstd dictionary.
type Dict struct {
	ID      int64
	Name    string
	Version string
	Params  string // how it was trained (JSON)
	Stats   string // measured on held-out samples (JSON)
	Hash    hash.Hash
	Size    int
	Created time.Time
	Data    []byte // only from DictData
}

// Ref returns "name@version".
func (d Dict) Ref() string { return d.Name + "@" + d.Version }

// ErrInUse: a dictionary that chunks still need cannot be removed.
var ErrInUse = errors.New("in use")

const dictCols = `id, name, version, params, stats, hash, length(data), created`

func scanDict(st *sqlite.Stmt) Dict {
	h, _ := hash.FromBytes(columnCopy(st, 5))
	return Dict{ID: st.ColumnInt64(0), Name: st.ColumnText(1), Version: st.ColumnText(2), Params: st.ColumnText(3),
		Stats: st.ColumnText(4), Hash: h, Size: st.ColumnInt(6), Created: time.Unix(0, st.ColumnInt64(7))}
}

// Dicts lists the dictionaries, oldest first, without their bytes.
func (s *Store) Dicts(ctx context.Context) ([]Dict, error) {
	var out []Dict
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return sqlitex.Execute(c, `SELECT `+dictCols+` FROM dicts ORDER BY id`, &sqlitex.ExecOptions{
			ResultFunc: func(st *sqlite.Stmt) error { out = append(out, scanDict(st)); return nil }})
	})
	if err != nil {
		return nil, fmt.Errorf("list dictionaries: %w", err)
	}
	return out, nil
}

// DictByName returns dictionary NAME@VERSION with its bytes, verified.
func (s *Store) DictByName(ctx context.Context, name, version string) (*Dict, error) {
	var d *Dict
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT `+dictCols+`, data FROM dicts WHERE name = ? AND version = ?`,
			func(st *sqlite.Stmt) { st.BindText(1, name); st.BindText(2, version) },
			func(st *sqlite.Stmt) error {
				x := scanDict(st)
				x.Data = columnCopy(st, 8)
				d = &x
				return nil
			})
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("dictionary %s@%s: %w", name, version, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dictionary %s@%s: %w", name, version, err)
	}
	if hash.Sum(d.Data) != d.Hash {
		return nil, fmt.Errorf("%w: dictionary %s does not match its hash", ErrCorrupt, d.Ref())
	}
	return d, nil
}

// Dict implements Source: the bytes of the dictionary with hash h.
func (s *Store) Dict(ctx context.Context, h hash.Hash) ([]byte, error) {
	var data []byte
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT data FROM dicts WHERE hash = ? LIMIT 1`,
			func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) },
			func(st *sqlite.Stmt) error { data = columnCopy(st, 0); return nil })
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("dictionary %s: %w", h, ErrNotFound)
	}
	return data, err
}

// hydratorByID returns the decoder for chunks dried with dictionary id (0
// = none).
func (s *Store) hydratorByID(ctx context.Context, id int64) (*chunk.Hydrator, error) {
	if id == 0 {
		return s.hyd, nil
	}
	var h hash.Hash
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT hash FROM dicts WHERE id = ?`, func(st *sqlite.Stmt) { st.BindInt64(1, id) },
			func(st *sqlite.Stmt) error { h = columnHash(st, 0); return nil })
	})
	if errors.Is(err, errNoRow) {
		return nil, fmt.Errorf("%w: dictionary %d is missing", ErrCorrupt, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read dictionary %d: %w", id, err)
	}
	return s.hydrator(ctx, h)
}

// AddDict stores a dictionary; it fails with ErrExists if its name and
// version are taken.
func (s *Store) AddDict(ctx context.Context, d Dict) (int64, error) {
	if s.wconn == nil {
		return 0, errors.New("store opened read-only")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := sqlitex.Execute(s.wconn, `INSERT INTO dicts(name, version, params, stats, hash, data, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		&sqlitex.ExecOptions{Args: []any{d.Name, d.Version, d.Params, d.Stats, d.Hash[:], d.Data, d.Created.UnixNano()}})
	if sqlite.ErrCode(err) == sqlite.ResultConstraintUnique {
		return 0, fmt.Errorf("dictionary %s: %w", d.Ref(), ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("store dictionary %s: %w", d.Ref(), err)
	}
	return s.wconn.LastInsertRowID(), nil
}

// DictUsers counts the chunks dried with dictionary id.
func (s *Store) DictUsers(ctx context.Context, id int64) (int64, error) {
	var n int64
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT count(*) FROM chunks WHERE dict = ? AND dict != 0`, func(st *sqlite.Stmt) { st.BindInt64(1, id) },
			func(st *sqlite.Stmt) error { n = st.ColumnInt64(0); return nil })
	})
	return n, err
}

// RemoveDict deletes an unused dictionary; ErrInUse if a chunk needs it.
// The check and the delete are one transaction, so no chunk can start
// using it in between.
func (s *Store) RemoveDict(ctx context.Context, d Dict) (err error) {
	if s.wconn == nil {
		return errors.New("store opened read-only")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	end, err := sqlitex.ImmediateTransaction(s.wconn)
	if err != nil {
		return err
	}
	defer end(&err)
	var users int64
	err = sqlitex.Execute(s.wconn, `SELECT count(*) FROM chunks WHERE dict = ? AND dict != 0`, &sqlitex.ExecOptions{Args: []any{d.ID},
		ResultFunc: func(st *sqlite.Stmt) error { users = st.ColumnInt64(0); return nil }})
	if err != nil {
		return err
	}
	if users > 0 {
		return fmt.Errorf("dictionary %s: %w by %d chunks (re-dry them first: recompress --dict none, or --dict with another)", d.Ref(), ErrInUse, users)
	}
	if err = sqlitex.Execute(s.wconn, `DELETE FROM meta WHERE key = 'default_dict' AND value = ?`, &sqlitex.ExecOptions{Args: []any{strconv.FormatInt(d.ID, 10)}}); err != nil {
		return err
	}
	return sqlitex.Execute(s.wconn, `DELETE FROM dicts WHERE id = ?`, &sqlitex.ExecOptions{Args: []any{d.ID}})
}

// SetDefaultDict makes ingest use dictionary id when none is given; 0
// clears the default.
func (s *Store) SetDefaultDict(ctx context.Context, id int64) error {
	if s.wconn == nil {
		return errors.New("store opened read-only")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if id == 0 {
		return sqlitex.Execute(s.wconn, `DELETE FROM meta WHERE key = 'default_dict'`, nil)
	}
	return sqlitex.Execute(s.wconn, `INSERT OR REPLACE INTO meta(key, value) VALUES ('default_dict', ?)`, &sqlitex.ExecOptions{Args: []any{strconv.FormatInt(id, 10)}})
}

// DefaultDict returns the store's default dictionary with its bytes, or
// nil if there is none.
func (s *Store) DefaultDict(ctx context.Context) (*Dict, error) {
	var idText string
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT value FROM meta WHERE key = 'default_dict'`, func(*sqlite.Stmt) {},
			func(st *sqlite.Stmt) error { idText = st.ColumnText(0); return nil })
	})
	if errors.Is(err, errNoRow) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id, _ := strconv.ParseInt(idText, 10, 64)
	ds, err := s.Dicts(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.ID == id {
			return s.DictByName(ctx, d.Name, d.Version)
		}
	}
	return nil, fmt.Errorf("%w: default dictionary %d is missing", ErrCorrupt, id)
}
