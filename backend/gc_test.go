package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/gc"
	"github.com/spraydryfs/spraydryfs/backend/retain"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// removeVersions removes d@from … d@to.
func removeVersions(t *testing.T, s *store.Store, from, to int) {
	t.Helper()
	var refs []store.Ref
	for v := from; v <= to; v++ {
		refs = append(refs, store.Ref{Name: "d", Version: fmt.Sprint(v)})
	}
	if _, err := s.RemoveRoots(context.Background(), retain.Versions(refs)); err != nil {
		t.Fatal(err)
	}
}

func checkClean(t *testing.T, s *store.Store) {
	t.Helper()
	rep, err := s.Check(context.Background(), true, nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check --read-data: %v %v", err, rep.Problems)
	}
}

func readVersions(t *testing.T, s *store.Store, vs []map[string][]byte, from int) {
	t.Helper()
	for i := from; i <= len(vs); i++ {
		fsys := openRoot(t, s, fmt.Sprintf("d@%d", i)).FS()
		for p, want := range vs[i-1] {
			if got, err := fsys.ReadFile(p); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("d@%d/%s: %d bytes, %v; want %d bytes", i, p, len(got), err, len(want))
			}
		}
	}
}

// closedSize closes a store (which checkpoints its log into the file)
// and returns the file's size.
func closedSize(t *testing.T, s *store.Store) int64 {
	t.Helper()
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func reopen(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestGCRemoveHalf removes the 5 oldest of 10 versions and collects: the
// store passes check --read-data, the other 5 read byte-exact, and it is
// at most 1.05x a fresh store of those 5 (re-drying their chunks that were
// deltas against removed ones); a dry run predicts what is freed, and a
// second collection finds nothing to do.
func TestGCRemoveHalf(t *testing.T) {
	ctx := context.Background()
	vs := versions(10)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	fresh := storeAt(t, filepath.Join(t.TempDir(), "fresh.sdfs"))
	ingestVersions(t, fresh, vs[5:], ingest.Options{})
	frep, err := gc.Collect(ctx, fresh, gc.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := closedSize(t, fresh)
	before := closedSize(t, s)
	s = reopen(t, path)
	removeVersions(t, s, 1, 5)

	dry, err := gc.Collect(ctx, s, gc.Options{DryRun: true})
	stored := dry.Stored - dry.DeadBytes
	if err != nil {
		t.Fatal(err)
	}
	rep, err := gc.Collect(ctx, s, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if dry.DeadBytes != rep.DeadBytes || rep.FreedBytes != rep.DeadBytes || rep.Redried == 0 || rep.Kept != 0 {
		t.Errorf("dry run would free %d, gc found %d dead and freed %d; re-dried %d, kept %d", dry.DeadBytes, rep.DeadBytes, rep.FreedBytes, rep.Redried, rep.Kept)
	}
	checkClean(t, s)
	readVersions(t, s, vs, 6)
	after := closedSize(t, s)
	s = reopen(t, path)
	stored += rep.RedryAt - rep.RedryBefore
	t.Logf("store file %d -> %d bytes, fresh store of the 5 versions %d (%.3fx); objects %d, fresh %d (%.3fx); %+v",
		before, after, want, float64(after)/float64(want), stored, frep.Stored, float64(stored)/float64(frep.Stored), rep)
	// The file is whole 64 KiB pages, a partly filled one or more per
	// table and index, and this store is a few dozen: allow two.
	if float64(stored) > 1.05*float64(frep.Stored) || float64(after) > 1.05*float64(want)+2*65536 {
		t.Errorf("objects %d bytes, file %d: want at most 1.05x a fresh store of the 5 versions (%d, %d)", stored, after, frep.Stored, want)
	}
	again, err := gc.Collect(ctx, s, gc.Options{})
	if err != nil || again.Freed != 0 || again.Redried != 0 {
		t.Errorf("second gc: %+v, %v; want nothing to do", again, err)
	}
}

// TestGCWithConcurrentIngest runs collections while ingests store trees
// whose chunks are those of removed roots (so their claims find dead
// chunks stored): each ingest commits a root that passes check
// --read-data and reads back byte-exact, and what no root needs is freed
// once the ingests are done.
func TestGCWithConcurrentIngest(t *testing.T) {
	ctx := context.Background()
	vs := versions(8)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	removeVersions(t, s, 1, 6)
	other := reopen(t, path) // another process's handle, as far as SQLite is concerned

	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 6 && err == nil; i++ {
			src := filepath.Join(t.TempDir(), "src")
			writeTree(t, src, vs[i], nil)
			_, err = ingest.Run(ctx, other, ingest.Options{Name: "e", Version: fmt.Sprint(i + 1), Sources: []ingest.Source{{Dir: src}}})
		}
		done <- err
	}()
	var waited time.Duration
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("concurrent ingest: %v", err)
			}
			running = false
		default:
		}
		rep, err := gc.Collect(ctx, s, gc.Options{})
		if err != nil {
			t.Fatalf("gc: %v", err)
		}
		waited += rep.Waited
	}
	t.Logf("gc waited %v for ingests in all", waited)
	checkClean(t, s)
	for i := 0; i < 6; i++ {
		fsys := openRoot(t, s, fmt.Sprintf("e@%d", i+1)).FS()
		for p, want := range vs[i] {
			if got, err := fsys.ReadFile(p); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("e@%d/%s: %d bytes, %v", i+1, p, len(got), err)
			}
		}
	}
	readVersions(t, s, vs, 7)
	if rep, err := gc.Collect(ctx, s, gc.Options{DryRun: true}); err != nil || rep.DeadBytes != 0 {
		t.Errorf("after the last gc: %+v, %v; want nothing unneeded", rep, err)
	}
}

// TestGCStaleLease: leases left by killed ingests (their process gone, its
// pid reused, or the machine rebooted) do not hold garbage collection up,
// and are dropped.
func TestGCStaleLease(t *testing.T) {
	ctx := context.Background()
	vs := versions(3)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	removeVersions(t, s, 1, 1)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id:", err)
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	// A process that ended, one with a reused pid (this one, started at
	// another time), and one from before a reboot.
	err = sqlitex.Execute(c, `INSERT INTO leases(kind, pid, pstart, boot, started) VALUES ('ingest', ?1, 1, ?3, 0), ('ingest', ?2, 1, ?3, 0), ('ingest', ?2, 1, 'x', 0)`,
		&sqlitex.ExecOptions{Args: []any{dead.Process.Pid, os.Getpid(), strings.TrimSpace(string(boot))}})
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	run, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rep, err := gc.Collect(run, s, gc.Options{})
	if err != nil || rep.Waited != 0 || rep.Freed == 0 {
		t.Fatalf("gc with stale leases: %+v, %v; want no wait", rep, err)
	}
	c, err = sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var left int64
	sqlitex.Execute(c, `SELECT count(*) FROM leases`, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error { left = st.ColumnInt64(0); return nil }})
	if left != 0 {
		t.Errorf("%d leases left after gc, want none", left)
	}
	checkClean(t, s)
}

// TestGCRemovedRootIsStale: a view of one root that was removed and then
// collected answers ESTALE (never EIO, never corruption) for what it can
// no longer read: lookups below nodes it held, listings, opens and reads
// of files opened before; other roots' views read on.
func TestGCRemovedRootIsStale(t *testing.T) {
	ctx := context.Background()
	vs := versions(3)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	// The serving process: its own handle with caches too small to hold
	// anything, so every read goes to the store.
	srv, err := store.Open(path, store.Options{ReadOnly: true, ChunkCache: 1, MetaCache: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	v := openRoot(t, srv, "d@1")
	// Two files that d@2 changed (so d@1's versions are only d@1's).
	var big, small string
	for p, b := range vs[0] {
		if bytes.Equal(b, vs[1][p]) || bytes.Equal(b, vs[2][p]) {
			continue
		}
		if big == "" {
			big = p
		} else if small == "" {
			small = p
		}
	}
	if big == "" || small == "" {
		t.Fatal("no two files of d@1 that later versions changed")
	}
	bn, err := v.Walk(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	open, err := v.Open(ctx, bn)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := v.Walk(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := v.Walk(ctx, filepath.Dir(small))
	if err != nil {
		t.Fatal(err)
	}
	removeVersions(t, s, 1, 1)
	if _, err := gc.Collect(ctx, s, gc.Options{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(vs[0][big]))
	_, err = open.ReadAt(buf, 0)
	if err != nil && backend.Errno(err) != syscall.ESTALE {
		t.Errorf("read of a file opened before: %v (errno %v), want ESTALE", err, backend.Errno(err))
	}
	if err == nil && !bytes.Equal(buf, vs[0][big]) {
		t.Errorf("read of a file opened before: wrong bytes")
	}
	if _, err := v.Open(ctx, sn); backend.Errno(err) != syscall.ESTALE {
		t.Errorf("open after gc: %v (errno %v), want ESTALE", err, backend.Errno(err))
	}
	_, err = v.ReadDir(ctx, dir)
	if backend.Errno(err) != syscall.ESTALE || errors.Is(err, store.ErrCorrupt) {
		t.Errorf("readdir after gc: %v (errno %v), want ESTALE and no corruption", err, backend.Errno(err))
	}
	fsys := openRoot(t, srv, "d@3").FS()
	if got, err := fsys.ReadFile(small); err != nil || !bytes.Equal(got, vs[2][small]) {
		t.Errorf("d@3/%s after gc: %v", small, err)
	}
}
