package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// faultySource passes a store through the Source seam, counting frames
// and damaging the objects it is told to: what a remote or a cache could
// hand back.
type faultySource struct {
	store.Source
	frames    atomic.Int64
	flipChunk hash.Hash // its frame's bytes come back altered
	noListing hash.Hash // reported missing
}

func (f *faultySource) Frame(ctx context.Context, h hash.Hash) (store.Frame, error) {
	f.frames.Add(1)
	fr, err := f.Source.Frame(ctx, h)
	if err == nil && h == f.flipChunk {
		fr.Data = bytes.Clone(fr.Data)
		fr.Data[len(fr.Data)/2] ^= 1
	}
	return fr, err
}

func (f *faultySource) Listing(ctx context.Context, h hash.Hash) ([]byte, error) {
	if h == f.noListing {
		return nil, fmt.Errorf("listing %s: %w", h, store.ErrNotFound)
	}
	return f.Source.Listing(ctx, h)
}

// TestViewOverAnySource serves a root through Objects over a Source that
// is not the SQLite store: the tree is the same, and what the source
// damages is caught above the seam.
func TestViewOverAnySource(t *testing.T) {
	src := t.TempDir()
	files := sampleFiles()
	writeTree(t, src, files, nil)
	s := newStore(t)
	ingestDir(t, s, "t@1", src)
	ctx := context.Background()

	open := func(fsrc *faultySource) *backend.View {
		o, err := store.NewObjects(fsrc, 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		v, err := backend.OpenRoot(ctx, o, store.Ref{Name: "t", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	clean := &faultySource{Source: s}
	v := open(clean)
	var want []string
	for p := range files {
		want = append(want, p)
	}
	if err := fstest.TestFS(v.FS(), want...); err != nil {
		t.Fatal(err)
	}
	if clean.frames.Load() == 0 {
		t.Fatal("no frame came through the seam")
	}

	// A damaged frame: that file fails with ErrCorrupt, the others read.
	big, err := v.Walk(ctx, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.File(ctx, big.Hash)
	if err != nil {
		t.Fatal(err)
	}
	bad := &faultySource{Source: s, flipChunk: f.List.Chunks[1].Hash}
	v = open(bad)
	if _, err := v.FS().ReadFile("big.bin"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("damaged frame: err %v, want ErrCorrupt", err)
	}
	if got, err := v.FS().ReadFile("a/b/c.txt"); err != nil || !bytes.Equal(got, files["a/b/c.txt"]) {
		t.Fatalf("healthy file next to a damaged one: %d bytes, %v", len(got), err)
	}

	// A listing the source has lost: corruption where it is named, not
	// "no such file".
	a, err := v.Walk(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	v = open(&faultySource{Source: s, noListing: a.Hash})
	if _, err := v.FS().ReadDir("a"); !errors.Is(err, store.ErrCorrupt) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing listing: err %v, want ErrCorrupt", err)
	}
	if _, err := v.FS().ReadFile("small.txt"); err != nil {
		t.Fatalf("file beside the missing listing: %v", err)
	}
}
