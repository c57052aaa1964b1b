//go:build linux

package store

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// A store copied with its write-ahead log but without the WAL index (a
// copy taken while a writer had it open) cannot be read immutable: that
// would ignore the log's transactions.
func TestOpenReadOnlyMediaRefusesUnreadableWAL(t *testing.T) {
	dir, seal := readOnlyMedia(t)
	orig := filepath.Join(t.TempDir(), "s.sdfs")
	newStore(t, orig)
	c, err := sqlite.OpenConn(orig, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"PRAGMA wal_autocheckpoint=0", "INSERT INTO meta VALUES ('in-the-wal', 'x')"} {
		if err := sqlitex.ExecuteTransient(c, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	cp := filepath.Join(dir, "s.sdfs")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(orig + suffix)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s%s: %d bytes, %v", orig, suffix, len(b), err)
		}
		os.WriteFile(cp+suffix, b, 0o444)
	}
	seal()
	s, err := Open(cp, Options{ReadOnly: true})
	if err == nil {
		s.Close()
		t.Fatal("opened a store whose write-ahead log it cannot read")
	}
	if !strings.Contains(err.Error(), "s.sdfs-wal cannot be read") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error: %v", err)
	}
}

func TestOpenFIFOIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		s, err := Open(p, Options{ReadOnly: true})
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("open a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		os.WriteFile(p, nil, 0) // unblock the open
		t.Fatal("opening a FIFO as the store blocks")
	}
}
