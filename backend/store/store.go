// Package store keeps SprayDryFS content in one SQLite file: chunks, files,
// directories, roots and dictionaries. Reads go through a pool of read
// connections and bounded caches; writes go through a Writer that batches
// them into transactions.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound: no such root, or an object a listing refers to is missing.
	ErrNotFound = errors.New("not found")
	// ErrExists: a root with that name and version is already stored.
	ErrExists = errors.New("already exists")
	// ErrCorrupt: stored bytes do not match their hash or cannot be decoded.
	ErrCorrupt = chunk.ErrCorrupt
	// ErrNotStore: the file is not a SprayDryFS store.
	ErrNotStore = errors.New("not a SprayDryFS store")
)

// Options tune Open.
type Options struct {
	// Create makes a new store when the file does not exist.
	Create bool
	// ReadOnly opens without a write connection.
	ReadOnly bool
	// ChunkCache and MetaCache bound the decompressed-chunk cache and the
	// decoded directory/chunk-list cache, in bytes. Zero picks a default.
	ChunkCache int64
	MetaCache  int64
	// Params sets the chunker of a new store; zero uses chunk.DefaultParams.
	Params chunk.Params
}

// Default cache sizes: enough to keep a few hundred chunks and the listings
// of a large tree, small enough for a long-lived mount.
const (
	DefaultChunkCache = 64 << 20
	DefaultMetaCache  = 64 << 20
)

// Store is an open SQLite store: a Source, and through the Objects it
// embeds (over itself) the decoded, verified and cached objects its
// writers and maintenance read. It is safe for concurrent use.
type Store struct {
	*Objects
	path   string
	pool   *connPool
	wmu    sync.Mutex
	wconn  *sqlite.Conn // nil when read-only
	params chunk.Params
	schema int // the schema version read, for a read-only open

	closeOnce sync.Once
	closeErr  error
}

const sqliteMagic = "SQLite format 3\x00"

// Open opens the store at path.
func Open(path string, opt Options) (*Store, error) {
	if err := checkFile(path, opt.Create); err != nil {
		return nil, err
	}
	s := &Store{path: path}
	uri, err := fileURI(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if !opt.ReadOnly {
		if err := checkWritable(path); err != nil {
			return nil, err
		}
		c, err := sqlite.OpenConn(uri, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenURI)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		s.wconn = c
		if err := s.setup(opt); err != nil {
			c.Close()
			return nil, err
		}
	}
	ruri, err := readURI(uri, path)
	if err != nil {
		s.closeWriter()
		return nil, err
	}
	n := 2*runtime.GOMAXPROCS(0) + 4
	pool, err := newConnPool(n, func() (*sqlite.Conn, error) { return openRead(ruri) })
	if err != nil {
		s.closeWriter()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.pool = pool
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	if s.Objects, err = NewObjects(s, opt.ChunkCache, opt.MetaCache); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkFile gives clear errors for a missing store or a file that is not
// SQLite, before SQLite would create or misreport it.
func checkFile(path string, create bool) error {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		return fmt.Errorf("store %s is not a regular file", path) // opening a FIFO would block
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if create {
			return nil
		}
		return fmt.Errorf("store %s does not exist (ingest creates it)", path)
	}
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return fmt.Errorf("store %s is a directory", path)
	}
	head := make([]byte, len(sqliteMagic))
	n, _ := io.ReadFull(f, head)
	if n == 0 && create {
		return nil // an empty file becomes a new store
	}
	if !bytes.Equal(head[:n], []byte(sqliteMagic)) {
		return fmt.Errorf("%s: %w (not an SQLite database)", path, ErrNotStore)
	}
	return nil
}

// checkWritable explains why an existing store cannot be opened for
// writing (read-only media, permissions) before SQLite would misreport it.
func checkWritable(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("store %s cannot be written: %w", path, err)
	}
	return f.Close()
}

// fileURI names the store file as an SQLite URI, so that query options
// can be added and no part of the path is read as one.
func fileURI(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // file:///C:/…
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}

// readURI returns the URI read connections open: read-only, in whatever
// journal mode the store is (a copy made with VACUUM INTO is in rollback
// mode, which read-only connections cannot change). A store in WAL mode
// on read-only media cannot be read that way, as SQLite cannot create its
// WAL index there: when it cannot open the store at all, the file is
// opened immutable instead (no locks, no WAL index). Only read-only media
// or permissions get there, so nothing should change the file meanwhile;
// if something does, every chunk is still verified against its hash.
func readURI(uri, path string) (string, error) {
	ro := uri + "?mode=ro"
	c, err := openRead(ro)
	if err == nil {
		err = sqlitex.ExecuteTransient(c, `SELECT count(*) FROM sqlite_schema`, nil)
		c.Close()
	}
	switch {
	case err == nil:
		return ro, nil
	case sqlite.ErrCode(err) != sqlite.ResultCantOpen:
	case hasWAL(path):
		// An immutable store's write-ahead log is ignored: refuse rather
		// than serve the store without the transactions it holds.
		return "", fmt.Errorf("open store %s: its write-ahead log %s-wal cannot be read here; checkpoint it where it can be written (sqlite3 %s 'PRAGMA wal_checkpoint(TRUNCATE)')", path, path, path)
	default:
		return ro + "&immutable=1", nil
	}
	return "", fmt.Errorf("open store %s: %w", path, err)
}

// hasWAL reports whether a store has a write-ahead log that holds
// transactions.
func hasWAL(path string) bool {
	st, err := os.Stat(path + "-wal")
	return err == nil && st.Size() > 0
}

// openRead opens a read connection. No mmap: mapped store pages would
// count in every reader's RSS (a long-lived mount read 800 MB that way). A
// 2 MiB page cache per connection keeps memory bounded: the kernel caches
// the file once for all of them, while each connection's cache (8 MiB
// before, over 4 + 2 × cores connections) held copies of the same pages,
// about 40 MB of a mount's RSS, better spent as the collector's headroom.
func openRead(uri string) (*sqlite.Conn, error) {
	c, err := sqlite.OpenConn(uri, sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return nil, err
	}
	if err := pragmas(c, "busy_timeout=10000", "mmap_size=0", "cache_size=-2048"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// pragmas runs each PRAGMA on its own: some may not run inside a transaction.
func pragmas(c *sqlite.Conn, ps ...string) error {
	for _, p := range ps {
		if err := sqlitex.ExecuteTransient(c, "PRAGMA "+p, nil); err != nil {
			return fmt.Errorf("PRAGMA %s: %w", p, err)
		}
	}
	return nil
}

// setup configures the write connection and migrates the schema.
func (s *Store) setup(opt Options) error {
	c := s.wconn
	// 64 KiB pages: measured on two gomod versions, the file is 7% smaller
	// than with 4 KiB pages (small chunk blobs pack better, and SQLite keeps
	// overflow pages full). page_size only applies before the first write,
	// which is why the connection is opened without the WAL flag. So does
	// auto_vacuum: garbage collection gives freed pages back to the file
	// system with incremental vacuum (gc.go).
	if err := pragmas(c, "busy_timeout=10000", "page_size=65536", "auto_vacuum=INCREMENTAL", "journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "mmap_size=268435456"); err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	empty, err := identify(c, s.path)
	if err != nil {
		return err
	}
	v, err := userVersion(c)
	if err != nil {
		return err
	}
	if empty && v != 0 {
		return fmt.Errorf("%s: %w (an empty database with user_version %d)", s.path, ErrNotStore, v)
	}
	if v > schemaVersion {
		return fmt.Errorf("store %s has schema version %d; this spraydryfs understands up to %d: upgrade spraydryfs", s.path, v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		if err := s.migrate(v, opt); err != nil {
			return fmt.Errorf("migrate store %s to schema %d: %w", s.path, v+1, err)
		}
	}
	return nil
}

func (s *Store) migrate(from int, opt Options) (err error) {
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return err
	}
	defer end(&err)
	if err = sqlitex.ExecuteScript(c, migrations[from], nil); err != nil {
		return err
	}
	if from == 0 {
		p := opt.Params
		if p == (chunk.Params{}) {
			p = chunk.DefaultParams()
		}
		if _, err = chunk.NewChunker(p); err != nil {
			return err
		}
		err = sqlitex.Execute(c, `INSERT INTO meta(key, value) VALUES ('format', 'spraydryfs'), ('chunker', ?), ('hash', 'sha256')`,
			&sqlitex.ExecOptions{Args: []any{p.String()}})
		if err != nil {
			return err
		}
	}
	return sqlitex.ExecuteTransient(c, fmt.Sprintf("PRAGMA user_version=%d", from+1), nil)
}

// identify tells a SprayDryFS store, of any schema version, from other
// SQLite databases before the schema version is trusted: a store's meta
// table names its format. empty reports a database without tables.
func identify(c *sqlite.Conn, path string) (empty bool, err error) {
	var tables, meta int
	err = sqlitex.ExecuteTransient(c, `SELECT count(*), coalesce(sum(type = 'table' AND name = 'meta'), 0) FROM sqlite_schema`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { tables, meta = st.ColumnInt(0), st.ColumnInt(1); return nil }})
	if err != nil {
		return false, fmt.Errorf("open store %s: %w", path, err)
	}
	if tables == 0 {
		return true, nil
	}
	format := ""
	if meta == 1 {
		err = sqlitex.ExecuteTransient(c, `SELECT value FROM meta WHERE key = 'format'`, &sqlitex.ExecOptions{
			ResultFunc: func(st *sqlite.Stmt) error { format = st.ColumnText(0); return nil }})
		if err != nil {
			return false, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	if format != "spraydryfs" {
		return false, fmt.Errorf("%s: %w (an SQLite database with other tables)", path, ErrNotStore)
	}
	return false, nil
}

func userVersion(c *sqlite.Conn) (int, error) {
	var v int
	err := sqlitex.ExecuteTransient(c, `PRAGMA user_version`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { v = st.ColumnInt(0); return nil }})
	return v, err
}

// Outdated reports whether the store was opened read-only at a schema
// whose reads a writable open's migration would make faster (have is its
// schema, want this build's).
func (s *Store) Outdated() (have, want int, outdated bool) {
	return s.schema, schemaVersion, s.wconn == nil && s.schema < fastReadVersion
}

// load reads the store's metadata through a read connection.
func (s *Store) load() error {
	c, err := s.pool.take(context.Background())
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	defer s.pool.put(c)
	empty, err := identify(c, s.path)
	if err != nil {
		return err
	}
	if empty {
		return fmt.Errorf("%s: %w (empty database)", s.path, ErrNotStore)
	}
	v, err := userVersion(c)
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	switch {
	case v > schemaVersion:
		return fmt.Errorf("store %s has schema version %d; this spraydryfs understands up to %d: upgrade spraydryfs", s.path, v, schemaVersion)
	case v < minReadVersion:
		return fmt.Errorf("store %s has schema version %d; open it writable once to migrate it", s.path, v)
	}
	s.schema = v
	meta := map[string]string{}
	err = sqlitex.Execute(c, `SELECT key, value FROM meta`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { meta[st.ColumnText(0)] = st.ColumnText(1); return nil }})
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	if meta["hash"] != "sha256" {
		return fmt.Errorf("store %s uses hash %q, which this build does not know", s.path, meta["hash"])
	}
	s.params, err = chunk.ParseParams(meta["chunker"])
	if err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	return nil
}

// Path returns the store's file name.
func (s *Store) Path() string { return s.path }

// Space implements Spacer: the store file and its write-ahead log, and
// the room on their disk.
func (s *Store) Space() (used, avail int64, err error) {
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(s.path + suffix); err == nil {
			used += fi.Size()
		}
	}
	avail, err = diskFree(filepath.Dir(s.path))
	if err != nil {
		return used, 0, fmt.Errorf("free space of %s: %w", filepath.Dir(s.path), err)
	}
	return used, avail, nil
}

// Params returns the chunker parameters every writer of this store uses.
func (s *Store) Params() chunk.Params { return s.params }

func (s *Store) closeWriter() {
	if s.wconn != nil {
		s.wconn.Close()
		s.wconn = nil
	}
}

// Close releases the store. Outstanding reads must have finished. Calls
// after the first do nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.Objects != nil {
			s.Objects.Close() // its prefetch workers read through the pool
		}
		if s.pool != nil {
			s.closeErr = s.pool.close()
		}
		s.closeWriter()
	})
	return s.closeErr
}

// withRead runs f on a pooled read connection. A failure while ctx is
// done is reported as ctx's error, so callers see cancellation, not an
// SQLite interrupt.
func (s *Store) withRead(ctx context.Context, f func(*sqlite.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.pool.take(ctx)
	if err == nil {
		defer s.pool.put(c)
		err = f(c)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// errNoRow is returned by queryRow when the query yields no row.
var errNoRow = errors.New("no row")

// queryRow prepares (cached per connection) and steps a one-row query,
// passing the row to f while it is valid.
func queryRow(c *sqlite.Conn, query string, bind func(*sqlite.Stmt), f func(*sqlite.Stmt) error) error {
	st, err := c.Prepare(query)
	if err != nil {
		return err
	}
	defer st.Reset()
	bind(st)
	ok, err := st.Step()
	if err != nil {
		return err
	}
	if !ok {
		return errNoRow
	}
	return f(st)
}
