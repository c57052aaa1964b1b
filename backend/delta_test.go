package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// sourceText returns n bytes of deterministic source-like text.
func sourceText(r *rand.Rand, n int) []byte {
	words := strings.Fields(`func return if err != nil { } package import type struct interface string
		int64 byte context.Context fmt.Errorf for range len append make map[string]bool switch case
		default kubernetes apiVersion metadata spec status containers image labels selector`)
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(" \n\t"[r.IntN(3)])
	}
	return b.Bytes()[:n]
}

// edit changes a few lines of b, as a new release changes a source file.
func edit(r *rand.Rand, b []byte) []byte {
	out := slices.Clone(b)
	for range 1 + r.IntN(3) {
		at := r.IntN(len(out) + 1)
		switch r.IntN(3) {
		case 0: // insert
			out = slices.Insert(out, at, sourceText(r, 20+r.IntN(200))...)
		case 1: // delete
			out = slices.Delete(out, at, min(len(out), at+r.IntN(300)))
		default: // overwrite
			copy(out[at:], sourceText(r, 40))
		}
	}
	return out
}

// versions returns n successive versions of a tree: small and multi-chunk
// text files that are edited, added and removed from one version to the next.
func versions(n int) []map[string][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	cur := map[string][]byte{}
	for i := range 40 {
		size := 500 + r.IntN(8000)
		if i%10 == 0 {
			size = 300<<10 + r.IntN(200<<10) // several chunks
		}
		cur[fmt.Sprintf("pkg%d/file%02d.go", i%4, i)] = sourceText(r, size)
	}
	var out []map[string][]byte
	for v := range n {
		next := map[string][]byte{}
		for p, b := range cur {
			if r.IntN(3) == 0 {
				b = edit(r, b)
			}
			next[p] = b
		}
		next[fmt.Sprintf("pkg%d/new%02d.go", v%4, v)] = sourceText(r, 1000+r.IntN(3000))
		out = append(out, next)
		cur = next
	}
	return out
}

// ingestVersions stores each version as d@1, d@2, … with the given options.
func ingestVersions(t *testing.T, s *store.Store, vs []map[string][]byte, opt ingest.Options) {
	t.Helper()
	for i, files := range vs {
		src := filepath.Join(t.TempDir(), "src")
		writeTree(t, src, files, nil)
		// Fixed mtimes, so that the same files give the same listings.
		stamp := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Chtimes(p, stamp, stamp)
			}
			return err
		})
		o := opt
		o.Name, o.Version, o.Sources = "d", fmt.Sprint(i+1), []ingest.Source{{Dir: src}}
		if _, err := ingest.Run(context.Background(), s, o); err != nil {
			t.Fatalf("ingest d@%d: %v", i+1, err)
		}
	}
}

func storeAt(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDeltaVersionsReadBack(t *testing.T) {
	const depth = 3
	vs := versions(12)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{MaxDepth: depth})

	plain := storeAt(t, filepath.Join(t.TempDir(), "plain.sdfs"))
	ingestVersions(t, plain, vs, ingest.Options{NoDelta: true})

	ctx := context.Background()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pst, _ := plain.Stats(ctx)
	if st.Deltas == 0 || st.MaxDepth != depth {
		t.Fatalf("%d delta chunks, max depth %d: want deltas with chains of exactly %d", st.Deltas, st.MaxDepth, depth)
	}
	if pst.Deltas != 0 || pst.MaxDepth != 0 {
		t.Fatalf("NoDelta stored %d delta chunks", pst.Deltas)
	}
	if st.ChunkBytes != pst.ChunkBytes || st.ChunkStored*2 > pst.ChunkStored {
		t.Fatalf("chunks: %d raw bytes stored in %d with deltas, %d raw in %d without: want less than half", st.ChunkBytes, st.ChunkStored, pst.ChunkBytes, pst.ChunkStored)
	}
	rep, err := s.Check(ctx, true, nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}

	// A fresh open has cold caches: read every version, in random order,
	// from several goroutines at once.
	s.Close()
	s, err = store.Open(path, store.Options{ChunkCache: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(vs))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(order); i += 4 {
				v := order[i]
				fsys := openRoot(t, s, fmt.Sprintf("d@%d", v+1)).FS()
				for p, want := range vs[v] {
					got, err := fsys.ReadFile(p)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("d@%d/%s: %d bytes, %v; want %d bytes", v+1, p, len(got), err, len(want))
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestDeltaReferenceCorruption(t *testing.T) {
	vs := versions(3)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{})
	s.Close()

	// Damage the stored bytes of a chunk that other chunks depend on.
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	var ref []byte
	sqlitex.Execute(c, `SELECT hash FROM chunks WHERE deps > 0 AND depth = 0 ORDER BY deps DESC LIMIT 1`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { ref = make([]byte, st.ColumnLen(0)); st.ColumnBytes(0, ref); return nil }})
	if ref == nil {
		t.Fatal("no chunk is a reference")
	}
	if err := sqlitex.Execute(c, `UPDATE chunk_data SET data = zeroblob(length(data)) WHERE id = (SELECT data_id FROM chunks WHERE hash = ?)`,
		&sqlitex.ExecOptions{Args: []any{ref}}); err != nil {
		t.Fatal(err)
	}
	// The reference cannot be deleted while chunks depend on it.
	if err := sqlitex.Execute(c, `DELETE FROM chunks WHERE hash = ?`, &sqlitex.ExecOptions{Args: []any{ref}}); err == nil {
		t.Fatal("deleted a chunk that others depend on")
	}
	// A chunk whose reference is missing is refused.
	err = sqlitex.Execute(c, `INSERT INTO chunks(hash, size, codec, ref, depth, stored, data_id) VALUES (x'0100', 1, 2, x'01ff', 1, 1, 1)`, nil)
	if err == nil {
		t.Fatal("stored a chunk with a missing reference")
	}
	c.Close()

	s = storeAt(t, path)
	ctx := context.Background()
	rep, err := s.Check(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string]bool{}
	for _, p := range rep.Problems {
		if p.Kind == "chunk" {
			broken[p.Name] = true
		}
	}
	if len(broken) < 2 {
		t.Fatalf("check found %v: want the reference and its dependants", rep.Problems)
	}
	// Every file is either byte-exact or a corruption error.
	failed := 0
	for v, files := range vs {
		fsys := openRoot(t, s, fmt.Sprintf("d@%d", v+1)).FS()
		for p, want := range files {
			got, err := fsys.ReadFile(p)
			switch {
			case errors.Is(err, store.ErrCorrupt):
				failed++
			case err != nil || !bytes.Equal(got, want):
				t.Fatalf("d@%d/%s: %d bytes, %v", v+1, p, len(got), err)
			}
		}
	}
	if failed < 2 {
		t.Fatalf("%d files failed: want the reference's file and its dependants' files", failed)
	}
}

// contentSet lists a store's content addresses: chunks, files, listings
// and root tops.
func contentSet(t *testing.T, path string) string {
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	for _, q := range []string{`SELECT hex(hash) FROM chunks ORDER BY 1`, `SELECT hex(hash) FROM files ORDER BY 1`,
		`SELECT hex(hash) FROM dirs ORDER BY 1`, `SELECT name || '@' || version || hex(top) FROM roots ORDER BY 1`} {
		err := sqlitex.Execute(c, q, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
			b.WriteString(st.ColumnText(0) + "\n")
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestDeltaDeterministic(t *testing.T) {
	vs := versions(4)
	var sets []string
	// The second run uses more workers than the store has pooled read
	// connections: each holds a lookup connection of its own besides.
	for _, workers := range []int{0, 32} {
		path := filepath.Join(t.TempDir(), "s.sdfs")
		s := storeAt(t, path)
		ingestVersions(t, s, vs, ingest.Options{Workers: workers})
		s.Close()
		sets = append(sets, contentSet(t, path))
	}
	if sets[0] != sets[1] {
		t.Fatal("the same versions stored twice (with 1 and 32 workers) give different content addresses")
	}
	if n := strings.Count(sets[0], "\n"); n < 100 {
		t.Fatalf("only %d addresses", n)
	}
}
