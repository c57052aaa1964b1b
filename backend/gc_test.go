package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/chunk"
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

// compactedSize is the size of a VACUUM INTO copy of the closed store at
// path: its content in the fewest pages.
func compactedSize(t *testing.T, path string) int64 {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	copyPath := path + ".compacted"
	if err := sqlitex.ExecuteTransient(c, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{copyPath}}); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(copyPath)
	fi, err := os.Stat(copyPath)
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
	compact := compactedSize(t, path)
	s = reopen(t, path)
	stored += rep.RedryAt - rep.RedryBefore
	t.Logf("store file %d -> %d bytes (%d compacted), fresh store of the 5 versions %d (%.3fx); objects %d, fresh %d (%.3fx); %+v",
		before, after, compact, want, float64(after)/float64(want), stored, frep.Stored, float64(stored)/float64(frep.Stored), rep)
	if float64(stored) > 1.05*float64(frep.Stored) {
		t.Errorf("objects %d bytes: want at most 1.05x a fresh store of the 5 versions (%d)", stored, frep.Stored)
	}
	// The file gives the space back, as a full compaction would. It is
	// whole 64 KiB pages, and this store is two dozen: the fresh store's
	// own file varies by two pages from run to run (the order in which
	// parallel ingest inserts rows), so the file is held to the compacted
	// copy of itself. gc writes into eight b-trees (chunk bytes, chunk
	// metadata, chunk lists, listings, the reuse index and their key
	// indexes), each of which may end in a part-filled page that
	// compaction merges: 30 runs were 0 to 3 pages over.
	if rep.FreeAfter != 0 || float64(after) > 1.05*float64(compact)+3*65536 {
		t.Errorf("file %d bytes with %d free, compacted %d: want no free pages, and at most 1.05x and three pages", after, rep.FreeAfter, compact)
	}
	again, err := gc.Collect(ctx, s, gc.Options{})
	if err != nil || again.Freed != 0 || again.Redried != 0 {
		t.Errorf("second gc: %+v, %v; want nothing to do", again, err)
	}
}

// TestGCRedryWithinDepth collects with a depth bound of 1, so that most
// chunks gc re-dries have no candidate shallow enough and must be stored
// alone, though a delta was smaller (and its plain form was not computed):
// none may be left against its dead reference (kept), every chunk is
// within the bound or as ingest stored it, and the store reads back.
func TestGCRedryWithinDepth(t *testing.T) {
	ctx := context.Background()
	vs := versions(10)
	s := storeAt(t, filepath.Join(t.TempDir(), "s.sdfs"))
	ingestVersions(t, s, vs, ingest.Options{})
	removeVersions(t, s, 1, 5)
	rep, err := gc.Collect(ctx, s, gc.Options{MaxDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Redried == 0 || rep.Kept != 0 {
		t.Errorf("re-dried %d, kept %d dead references; want some re-dried and none kept", rep.Redried, rep.Kept)
	}
	checkClean(t, s)
	readVersions(t, s, vs, 6)
}

// manyFiles returns n versions of a tree of 3,000 small files in 300
// directories, each version editing every third file: listings, chunk
// lists and chunk metadata take dozens of pages.
func manyFiles(n int) []map[string][]byte {
	r := rand.New(rand.NewPCG(3, 3))
	cur := map[string][]byte{}
	for i := range 3000 {
		cur[fmt.Sprintf("m%02d/d%03d/f%04d.go", i%6, i%300, i)] = sourceText(r, 100+r.IntN(300))
	}
	var out []map[string][]byte
	for range n {
		next := map[string][]byte{}
		for p, b := range cur {
			if r.IntN(3) == 0 {
				b = edit(r, b)
			}
			next[p] = b
		}
		out = append(out, next)
		cur = next
	}
	return out
}

// TestGCRepacksTables removes most roots of a store whose metadata spans
// many pages and collects: the deletions leave the listing and chunk
// tables part empty, gc rebuilds them (store.Repack; those over
// RepackLimit are left) and gives the pages back, so the file ends within
// 1.05x of a fresh store of the remaining version (without the rebuild:
// 1.17x). The store passes check
// --read-data, its triggers still keep the reference counts, and the
// remaining versions read byte-exact.
func TestGCRepacksTables(t *testing.T) {
	if raceEnabled {
		t.Skip("sequential: 71 s under -race against 5 s without; make test runs it without -race")
	}
	ctx := context.Background()
	vs := manyFiles(4)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	fresh := storeAt(t, filepath.Join(t.TempDir(), "fresh.sdfs"))
	ingestVersions(t, fresh, vs[3:], ingest.Options{})
	want := closedSize(t, fresh)
	before := closedSize(t, s)
	s = reopen(t, path)
	removeVersions(t, s, 1, 3)
	// Tables over the limit are left (and reported); the next gc, with
	// nothing left to sweep, rebuilds them.
	small, err := gc.Collect(ctx, s, gc.Options{RepackLimit: 2 << 16})
	if err != nil {
		t.Fatal(err)
	}
	var unpacked []string
	for _, r := range small.Unpacked {
		unpacked = append(unpacked, r.Table)
	}
	// Whether dirs gains the tenth of its pages that makes a rebuild worth
	// it varies with the re-dried sizes; chunks always does.
	if len(small.Repacked) != 0 || !slices.Contains(unpacked, "chunks") {
		t.Errorf("gc with a limit of 2 pages repacked %+v and left %v: want chunks left", small.Repacked, unpacked)
	}
	rep, err := gc.Collect(ctx, s, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed != 0 || len(rep.Unpacked) != 0 {
		t.Errorf("second gc freed %d objects and left %+v unpacked: want only repacks", rep.Freed, rep.Unpacked)
	}
	var tables []string
	for _, r := range rep.Repacked {
		tables = append(tables, r.Table)
		if r.After >= r.Before || r.Held <= 0 {
			t.Errorf("repacked %+v: want fewer pages, and the time the lock was held", r)
		}
	}
	if !slices.Contains(tables, "chunks") {
		t.Errorf("repacked %v, want chunks among them", tables)
	}
	checkClean(t, s)
	readVersions(t, s, vs, 4)
	after := closedSize(t, s)
	t.Logf("store file %d -> %d bytes, fresh store of the last version %d (%.3fx); repacked %+v", before, after, want, float64(after)/float64(want), rep.Repacked)
	if float64(after) > 1.05*float64(want)+2*65536 {
		t.Errorf("store file %d bytes after gc: want at most 1.05x a fresh store of the remaining versions (%d)", after, want)
	}
	// The indexes and triggers came back with the tables: a chunk others
	// depend on cannot be deleted.
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	var schema []string
	var ref []byte
	sqlitex.Execute(c, `SELECT type || ' ' || name FROM sqlite_schema WHERE tbl_name = 'chunks' AND type != 'table' ORDER BY name`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { schema = append(schema, st.ColumnText(0)); return nil }})
	sqlitex.Execute(c, `SELECT hash FROM chunks WHERE deps > 0 LIMIT 1`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { ref = make([]byte, st.ColumnLen(0)); st.ColumnBytes(0, ref); return nil }})
	if len(schema) != 7 {
		t.Errorf("indexes and triggers of chunks after gc: %v, want chunks_by_dict and 6 triggers", schema)
	}
	if ref == nil {
		t.Fatal("no chunk is a reference after gc")
	}
	if err := sqlitex.Execute(c, `DELETE FROM chunks WHERE hash = ?`, &sqlitex.ExecOptions{Args: []any{ref}}); err == nil {
		t.Error("deleted a chunk that others depend on after the rebuild")
	}
	c.Close()
	s = reopen(t, path)
	again, err := gc.Collect(ctx, s, gc.Options{})
	if err != nil || len(again.Repacked) != 0 {
		t.Errorf("third gc: repacked %+v, %v; want nothing to rebuild", again.Repacked, err)
	}
}

// TestRepackKilled kills (SIGKILL) a process that repacks the tables and
// shrinks the store in a loop, at several moments: each time the store
// passes check --read-data with its tables, indexes and triggers whole,
// and reads byte-exact.
func TestRepackKilled(t *testing.T) {
	if path := os.Getenv("SPRAYDRYFS_TEST_REPACK"); path != "" {
		repackForever(t, path)
		return
	}
	ctx := context.Background()
	vs := versions(4)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	removeVersions(t, s, 1, 2)
	if _, err := gc.Collect(ctx, s, gc.Options{NoShrink: true}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for i, delay := range []time.Duration{0, 3 * time.Millisecond, 7 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRepackKilled$")
		cmd.Env = append(os.Environ(), "SPRAYDRYFS_TEST_REPACK="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// After the first round, so that the kill lands in a later one.
		buf := make([]byte, 4096)
		for got := ""; !strings.Contains(got, "repack round 1\n"); {
			n, err := out.Read(buf)
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("repacking process: %v after %q", err, got)
			}
			got += string(buf[:n])
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err == nil {
			t.Fatalf("kill %d: the repacking process ended by itself", i)
		}
		s := reopen(t, path)
		checkClean(t, s)
		readVersions(t, s, vs, 3)
		s.Close()
		c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		var schema []string
		sqlitex.Execute(c, `SELECT type || ' ' || name FROM sqlite_schema WHERE tbl_name IN ('dirs', 'chunks', 'files', 'ingest_index') OR name LIKE '%repack%' ORDER BY 1`, &sqlitex.ExecOptions{
			ResultFunc: func(st *sqlite.Stmt) error { schema = append(schema, st.ColumnText(0)); return nil }})
		c.Close()
		want := []string{"index chunks_by_dict", "index sqlite_autoindex_dirs_1", "index sqlite_autoindex_files_1", "index sqlite_autoindex_ingest_index_1", "table chunks", "table dirs", "table files", "table ingest_index",
			"trigger chunks_ref_add", "trigger chunks_ref_change", "trigger chunks_ref_check", "trigger chunks_ref_drop", "trigger chunks_ref_keep", "trigger chunks_ref_recheck"}
		if !slices.Equal(schema, want) {
			t.Fatalf("kill %d: schema %v, want %v", i, schema, want)
		}
	}
}

// TestReadersDuringRepack reads two versions back to back through another
// handle of the store (its own connections, caches too small to hold
// anything) while the tables are repacked and the store shrunk in a loop:
// every read is byte-exact.
func TestReadersDuringRepack(t *testing.T) {
	ctx := context.Background()
	vs := versions(4)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	removeVersions(t, s, 1, 2)
	if _, err := gc.Collect(ctx, s, gc.Options{NoShrink: true}); err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(path, store.Options{ChunkCache: 1, MetaCache: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan struct{})
	errs := make(chan error, 2)
	var reads atomic.Int64
	for w := range 2 {
		go func() {
			for {
				for i := 3; i <= 4; i++ {
					v, err := backend.OpenRoot(ctx, r.Objects, store.Ref{Name: "d", Version: fmt.Sprint(i)})
					if err != nil {
						errs <- err
						return
					}
					for p, want := range vs[i-1] {
						select {
						case <-done:
							errs <- nil
							return
						default:
						}
						if got, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(got, want) {
							errs <- fmt.Errorf("reader %d: d@%d/%s: %d bytes, %v; want %d bytes", w, i, p, len(got), err, len(want))
							return
						}
						reads.Add(1)
					}
				}
			}
		}()
	}
	rounds := 0
	for start := time.Now(); time.Since(start) < time.Second; rounds++ {
		for _, tb := range store.RepackTables {
			if _, err := s.Repack(ctx, tb); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Shrink(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d repack rounds, %d reads", rounds, reads.Load())
	if reads.Load() == 0 {
		t.Fatal("no read finished")
	}
	checkClean(t, s)
}

// repackForever repacks every table of the store at path and shrinks it,
// round after round, printing "repack round N" after each.
func repackForever(t *testing.T, path string) {
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := 1; ; round++ {
		for _, tb := range store.RepackTables {
			if _, err := s.Repack(ctx, tb); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Shrink(ctx, nil); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("repack round %d\n", round)
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

// deltaChunks returns a Rebase for every chunk stored against another:
// re-dried with no reference or candidates, each is stored alone.
func deltaChunks(t *testing.T, path string) []store.Rebase {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rs []store.Rebase
	err = sqlitex.Execute(c, `SELECT hash, ref FROM chunks WHERE ref IS NOT NULL ORDER BY depth`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error {
			var r store.Rebase
			st.ColumnBytes(0, r.Hash[:])
			st.ColumnBytes(1, r.Old[:])
			rs = append(rs, r)
			return nil
		}})
	if err != nil || len(rs) < 10 {
		t.Fatalf("%d delta chunks, %v", len(rs), err)
	}
	return rs
}

// TestRebaseChunksInBatches re-dries every delta chunk of a store in
// batches of 3, each prepared while the one before commits: all are
// stored alone, progress counts them all, and the store reads back. With
// one reference damaged, the call fails with a corruption error, however
// many batches are in flight, and writes nothing wrong.
func TestRebaseChunksInBatches(t *testing.T) {
	ctx := context.Background()
	vs := versions(4)
	// deltaStore returns a new store of vs and its delta chunks.
	deltaStore := func(name string) (*store.Store, []store.Rebase) {
		s := storeAt(t, filepath.Join(t.TempDir(), name))
		ingestVersions(t, s, vs, ingest.Options{})
		return s, deltaChunks(t, s.Path())
	}
	s, rs := deltaStore("s.sdfs")
	dry, err := store.NewDryers(chunk.Level(2))
	if err != nil {
		t.Fatal(err)
	}
	var progressed int
	done, st, err := s.RebaseChunks(ctx, rs, dry, 8, 3, func(n int) { progressed += n })
	if err != nil {
		t.Fatal(err)
	}
	if progressed != len(rs) || st.Done != int64(len(rs)) || slices.Contains(done, false) {
		t.Errorf("progress %d, done %d of %d chunks (%v)", progressed, st.Done, len(rs), done)
	}
	if left := countDeltaChunks(t, s.Path()); left != 0 {
		t.Errorf("%d chunks still stored against another", left)
	}
	checkClean(t, s)
	readVersions(t, s, vs, 1)

	// Cancelled after the first batch: the call returns, with the
	// context's error.
	s2, rs := deltaStore("cancelled.sdfs")
	cctx, cancel := context.WithCancel(ctx)
	if _, _, err := s2.RebaseChunks(cctx, rs, dry, 8, 3, func(int) { cancel() }); !errors.Is(err, context.Canceled) {
		t.Errorf("re-dry cancelled after a batch: %v; want context.Canceled", err)
	}
	checkClean(t, s2)

	// Damaged: a fresh store, one reference's bytes zeroed.
	s, rs = deltaStore("damaged.sdfs")
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.Execute(c, `UPDATE chunk_data SET data = zeroblob(length(data)) WHERE id = (SELECT data_id FROM chunks WHERE hash = ?)`,
		&sqlitex.ExecOptions{Args: []any{rs[len(rs)/2].Old[:]}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s = reopen(t, path)
	if _, _, err := s.RebaseChunks(ctx, rs, dry, 8, 3, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("re-dry over a damaged reference: %v; want a corruption error", err)
	}
	rep, err := s.Check(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Error("check after the failed re-dry finds nothing: the damage is gone")
	}
	for _, p := range rep.Problems {
		if !errors.Is(p.Err, store.ErrCorrupt) {
			t.Errorf("check after the failed re-dry: %v; want only corruption", p)
		}
	}
}

// countDeltaChunks counts the chunks stored against another.
func countDeltaChunks(t *testing.T, path string) int {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := sqlitex.ResultInt(c.Prep(`SELECT count(*) FROM chunks WHERE ref IS NOT NULL`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
