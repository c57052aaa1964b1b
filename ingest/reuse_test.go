package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// newStore creates a store in a temporary directory, closed when the test
// ends, and an empty source directory beside it; path is the store's.
func newStore(t *testing.T) (s *store.Store, path, src string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "s.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	src = filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	return s, path, src
}

// readBack returns file name of root name@version.
func readBack(t *testing.T, s *store.Store, version, name string) []byte {
	t.Helper()
	ctx := context.Background()
	r, err := s.Root(ctx, "r", version)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Dir(ctx, r.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range d.Entries {
		if e.Name == name {
			f, err := s.File(ctx, e.Hash)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			for _, c := range f.List.Chunks {
				data, err := s.Chunk(ctx, c.Hash)
				if err != nil {
					t.Fatal(err)
				}
				b.Write(data)
			}
			return b.Bytes()
		}
	}
	t.Fatalf("r@%s has no %s", version, name)
	return nil
}

// TestReuseIndexSeesRewrittenFiles: a file rewritten in place with its
// size kept and its mtime set back (as cp -p, rsync -t or touch -r do)
// has another ctime, so the next ingest reads it instead of reusing the
// old content; files left alone are reused unread.
func TestReuseIndexSeesRewrittenFiles(t *testing.T) {
	s, _, src := newStore(t)
	for i := range 10 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("version one of file %d", i)), 0o644)
	}
	ingestV := func(v string) *Result {
		res, err := Run(context.Background(), s, Options{Name: "r", Version: v, Sources: []Source{{Dir: src}}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	ingestV("1")
	if res := ingestV("2"); res.ReadFiles != 0 {
		t.Fatalf("unchanged tree: %d files read, want 0", res.ReadFiles)
	}
	p := filepath.Join(src, "f3")
	st, _ := os.Stat(p)
	time.Sleep(10 * time.Millisecond) // a later ctime, whatever its granularity
	if err := os.WriteFile(p, []byte("version TWO of file 3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(p); st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("the rewrite changed size or mtime")
	}
	res := ingestV("3")
	if got := readBack(t, s, "3", "f3"); string(got) != "version TWO of file 3" {
		t.Fatalf("r@3/f3 = %q: the old content was reused", got)
	}
	if res.ReadFiles != 1 {
		t.Errorf("%d files read, want 1 (the rewritten one)", res.ReadFiles)
	}
}
