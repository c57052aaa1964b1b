//go:build linux

package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// toSchema3 turns a store back into schema 3, where chunk lists, listings
// and the reuse index live in WITHOUT ROWID tables.
const toSchema3 = `
CREATE TABLE f3(hash BLOB PRIMARY KEY, size INTEGER NOT NULL, chunks BLOB NOT NULL) WITHOUT ROWID;
INSERT INTO f3 SELECT hash, size, chunks FROM files; DROP TABLE files; ALTER TABLE f3 RENAME TO files;
CREATE TABLE d3(hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
INSERT INTO d3 SELECT hash, data FROM dirs; DROP TABLE dirs; ALTER TABLE d3 RENAME TO dirs;
CREATE TABLE i3(name TEXT NOT NULL, gen INTEGER NOT NULL, path BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY(name, gen, path)) WITHOUT ROWID;
INSERT INTO i3 SELECT name, gen, path, data FROM ingest_index; DROP TABLE ingest_index; ALTER TABLE i3 RENAME TO ingest_index;
PRAGMA user_version = 3;
`

// bytesRead is this process's rchar: bytes it has read from files.
func bytesRead(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// lookupCost opens path read-only, looks every file up once to warm the
// page cache, then the small ones again, and returns the bytes that second
// pass read per lookup. Each lookup must return the list it was stored
// with.
func lookupCost(t *testing.T, path string, lists map[hash.Hash][]byte) int64 {
	t.Helper()
	ctx := context.Background()
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var before, n int64
	for pass := range 2 {
		if pass == 1 {
			before = bytesRead(t)
		}
		for h, want := range lists {
			if pass == 1 && len(want) > 1<<10 {
				continue
			}
			rec, err := s.ChunkList(ctx, h)
			if err != nil || !bytes.Equal(rec.List, want) {
				t.Fatalf("chunk list of %s: %d bytes, %v; want %d bytes", h, len(rec.List), err, len(want))
			}
			n += int64(pass)
		}
	}
	return (bytesRead(t) - before) / n
}

// TestSchema4KeepsLookupsSmall: a store of schema 3 kept chunk lists in a
// WITHOUT ROWID table, where SQLite reads a whole row that spills onto
// overflow pages to compare a search key with it, so one big file's chunk
// list made every lookup read much of it. Opening such a store for writing
// migrates it to rowid tables with every row intact, after which a lookup
// reads next to nothing over a warm page cache; read-only opens read
// schema 3 as it is.
func TestSchema4KeepsLookupsSmall(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	lists := map[hash.Hash][]byte{}
	add := func(n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		h := hash.Sum(b)
		lists[h] = b
		if err := w.PutFile(h, int64(n), b); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		add(256 << 10) // the chunk list of a file of about 450 MiB
	}
	for range 600 {
		add(74) // two chunks
	}
	if err := w.PutIndex("x", 1, "a/b", []byte("index")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(c, toSchema3, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()

	old := lookupCost(t, path, lists)
	s, err = Open(path, Options{}) // migrates
	if err != nil {
		t.Fatal(err)
	}
	idx, err := s.IngestIndex(ctx, "x", 1, "a/b")
	if err != nil || string(idx) != "index" {
		t.Fatalf("reuse index after the migration: %q, %v", idx, err)
	}
	s.Close()
	c, err = sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	var version, withoutRowid int
	err = sqlitex.ExecuteScript(c, `PRAGMA user_version`, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error { version = st.ColumnInt(0); return nil }})
	if err == nil {
		err = sqlitex.Execute(c, `SELECT count(*) FROM pragma_table_list WHERE wr AND name IN ('files', 'dirs', 'ingest_index')`,
			&sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error { withoutRowid = st.ColumnInt(0); return nil }})
	}
	c.Close()
	if err != nil || version != schemaVersion || withoutRowid != 0 {
		t.Fatalf("after the migration: schema %d, %d WITHOUT ROWID tables of files, dirs, ingest_index (%v)", version, withoutRowid, err)
	}
	now := lookupCost(t, path, lists)
	t.Logf("bytes read per lookup of a small chunk list: schema 3 %d, schema 4 %d", old, now)
	if old < 16<<10 {
		t.Fatalf("schema 3 read only %d bytes per lookup: the test no longer shows the overflow cost", old)
	}
	if now > 1<<10 {
		t.Fatalf("schema 4 reads %d bytes per lookup, want next to nothing over a warm page cache", now)
	}
}
