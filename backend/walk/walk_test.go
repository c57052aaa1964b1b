package walk_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/walk"
	"github.com/spraydryfs/spraydryfs/ingest"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		// One mtime for every file, so that equal content makes equal listings.
		if err := os.Chtimes(full, time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
			t.Fatal(err)
		}
	}
}

func ingestDir(t *testing.T, s *store.Store, name, version, dir string) store.Root {
	t.Helper()
	ctx := context.Background()
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: name, Version: version, Sources: []ingest.Source{{Dir: dir}}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Root(ctx, name, version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countingSource records which listings were read through it.
type countingSource struct {
	store.Source
	mu    sync.Mutex
	reads map[hash.Hash]int
}

func (c *countingSource) Listing(ctx context.Context, h hash.Hash) ([]byte, error) {
	c.mu.Lock()
	c.reads[h]++
	c.mu.Unlock()
	return c.Source.Listing(ctx, h)
}

func TestWalkVisitsEachObjectOnce(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	noise := make([]byte, 700<<10) // several distinct chunks
	rand.NewChaCha8([32]byte{1}).Read(noise)
	big := string(noise)
	src := t.TempDir()
	write(t, src, map[string]string{"a/x": "same", "b/x": "same", "big": big, "twin1/f": "t", "twin2/f": "t"})
	r1 := ingestDir(t, s, "w", "1", src)
	write(t, src, map[string]string{"new": "only in 2"})
	r2 := ingestDir(t, s, "w", "2", src)

	dirs, files, chunks := map[hash.Hash]int{}, map[hash.Hash]int{}, map[hash.Hash]int{}
	w := walk.New(s.Objects, walk.Visitor{
		Dir:   func(h hash.Hash, _ *tree.Dir) error { dirs[h]++; return nil },
		File:  func(e *tree.Entry, _ *store.File) error { files[e.Hash]++; return nil },
		Chunk: func(c tree.ChunkRef) error { chunks[c.Hash]++; return nil },
	})
	if err := w.Roots(context.Background(), []store.Root{r1, r2, r1}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[hash.Hash]int{dirs, files, chunks} {
		for h, n := range m {
			if n != 1 {
				t.Fatalf("%s visited %d times", h, n)
			}
		}
	}
	// Two tops; a, b and twin1/twin2 share listings; the root listings differ.
	if len(dirs) != 4 {
		t.Fatalf("%d listings visited, want 4 (two tops, a=b, twin1=twin2)", len(dirs))
	}
	if len(files) != 4 { // same, big, t, only in 2
		t.Fatalf("%d files visited, want 4", len(files))
	}
	f, err := s.File(context.Background(), hash.Sum([]byte(big)))
	if err != nil || len(f.List.Chunks) < 2 {
		t.Fatalf("big file: %v, %v", f, err)
	}
	if len(chunks) != 3+len(f.List.Chunks) {
		t.Fatalf("%d chunks visited, want %d", len(chunks), 3+len(f.List.Chunks))
	}
	hs, err := walk.Chunks(context.Background(), s.Objects, []store.Root{r1})
	if err != nil || len(hs) != 2+len(f.List.Chunks) {
		t.Fatalf("walk.Chunks(r1) = %d chunks, %v", len(hs), err)
	}
}

func TestCompare(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := t.TempDir(), t.TempDir()
	shared := map[string]string{"same/deep/1": "one", "same/deep/2": "two"}
	write(t, a, shared)
	write(t, b, shared)
	write(t, a, map[string]string{"gone": "x", "mod": "old", "meta": "m", "kind": "file", "sub/changed": "1", "\xffraw": "r"})
	write(t, b, map[string]string{"added": "y", "mod": "new", "meta": "m", "sub/changed": "2", "\xffraw": "R"})
	if err := os.Symlink("target", filepath.Join(b, "kind")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "meta"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{a, b} { // directories too: only real changes show
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				err = os.Chtimes(p, time.Unix(1e9, 0), time.Unix(1e9, 0))
			}
			return err
		})
	}
	ra := ingestDir(t, s, "a", "1", a)
	rb := ingestDir(t, s, "b", "1", b)

	cs := &countingSource{Source: s, reads: map[hash.Hash]int{}}
	o, err := store.NewObjects(cs, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = walk.Compare(context.Background(), o, ra.Top.Hash, rb.Top.Hash, func(c walk.Change) error {
		kind := "modified"
		switch {
		case c.A == nil:
			kind = "added"
		case c.B == nil:
			kind = "removed"
		case c.A.Type != c.B.Type:
			kind = "type"
		case c.A.Hash == c.B.Hash:
			kind = "meta"
		}
		name := c.Dir + "/"
		if c.A != nil {
			name += c.A.Name
		} else {
			name += c.B.Name
		}
		got = append(got, fmt.Sprintf("%s %q", kind, name))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`added "/added"`, `removed "/gone"`, `type "/kind"`, `meta "/meta"`, `modified "/mod"`,
		`modified "/sub"`, `modified "sub/changed"`, `modified "/\xffraw"`}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n got %q\nwant %q", got, want)
	}
	// The identical subtree "same" was skipped by hash, never read.
	d, err := s.Dir(context.Background(), ra.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := d.Lookup("same")
	if cs.reads[e.Hash] != 0 {
		t.Fatalf("identical subtree read %d times", cs.reads[e.Hash])
	}
}

func TestComparePathsReportsEveryPath(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := t.TempDir()
	write(t, src, map[string]string{"t1/f": "old", "t2/f": "old"})
	r1 := ingestDir(t, s, "p", "1", src)
	write(t, src, map[string]string{"t1/f": "newer", "t2/f": "newer"}) // another size: not reused
	r2 := ingestDir(t, s, "p", "2", src)
	count := func(cmp func(context.Context, *store.Objects, hash.Hash, hash.Hash, func(walk.Change) error) error) []string {
		var got []string
		err := cmp(context.Background(), s.Objects, r1.Top.Hash, r2.Top.Hash, func(c walk.Change) error {
			got = append(got, c.Dir+"/"+c.A.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// t1 and t2 are one pair of listings: Compare descends into it once.
	if got := count(walk.Compare); len(got) != 3 {
		t.Errorf("Compare: %q, want /t1, t1/f, /t2", got)
	}
	if got, want := count(walk.ComparePaths), []string{"/t1", "t1/f", "/t2", "t2/f"}; !slices.Equal(got, want) {
		t.Errorf("ComparePaths: %q, want %q", got, want)
	}
}
