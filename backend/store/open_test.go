package store

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

func newStore(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// sqlExec runs SQL on a database file outside the store's code.
func sqlExec(t *testing.T, path, query string, args ...any) {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := sqlitex.ExecuteTransient(c, query, &sqlitex.ExecOptions{Args: args}); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// wantReadable opens path read-only and lists its roots.
func wantReadable(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open read-only: %v", err)
	}
	defer s.Close()
	if _, err := s.Roots(context.Background()); err != nil {
		t.Fatalf("roots: %v", err)
	}
}

// readOnlyMedia mounts a tmpfs, which seal remounts read-only: for root,
// the only way to get files that cannot be written.
func readOnlyMedia(t *testing.T) (dir string, seal func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a read-only file system")
	}
	dir = t.TempDir()
	if out, err := osexec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { osexec.Command("umount", "-l", dir).Run() })
	return dir, func() {
		t.Helper()
		if out, err := osexec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount read-only: %v %s", err, out)
		}
	}
}

func TestOpenRollbackJournalCopy(t *testing.T) {
	dir := t.TempDir()
	orig, cp := filepath.Join(dir, "s.sdfs"), filepath.Join(dir, "c.sdfs")
	newStore(t, orig)
	sqlExec(t, orig, "VACUUM INTO ?", cp)
	wantReadable(t, cp)
}

func TestOpenOnReadOnlyMedia(t *testing.T) {
	dir, seal := readOnlyMedia(t)
	wal, rollback := filepath.Join(dir, "s.sdfs"), filepath.Join(dir, "c.sdfs")
	newStore(t, wal)
	sqlExec(t, wal, "VACUUM INTO ?", rollback)
	seal()
	wantReadable(t, wal)
	wantReadable(t, rollback)
	if _, err := Open(wal, Options{}); err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("open for writing on read-only media: %v", err)
	}
}

func TestOpenOtherDatabase(t *testing.T) {
	dir := t.TempDir()
	for name, setup := range map[string][]string{
		"rollback":     {"CREATE TABLE t(x)"},
		"wal":          {"PRAGMA journal_mode=WAL", "CREATE TABLE t(x)"},
		"user_version": {"CREATE TABLE t(x)", "PRAGMA user_version=5"},
		"meta":         {"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)", "INSERT INTO meta VALUES ('format', 'other')", "PRAGMA user_version=2"},
	} {
		p := filepath.Join(dir, name+".db")
		for _, q := range setup {
			sqlExec(t, p, q)
		}
		for _, opt := range []Options{{ReadOnly: true}, {}, {Create: true}} {
			s, err := Open(p, opt)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), "other tables") {
				t.Errorf("%s database, %+v: %v; want %v", name, opt, err, ErrNotStore)
			}
		}
	}
}
