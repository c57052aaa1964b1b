package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// TestPrefetchedCorruptionReachesOnlyItsReader: opening a file has its
// small siblings decoded ahead, and a sequential read has its next chunks
// decoded ahead. A damaged chunk met that way fails the read that needs it,
// with ErrCorrupt, and no other read; no wrong byte is returned.
func TestPrefetchedCorruptionReachesOnlyItsReader(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{"big.bin": noise(900<<10, 3)}
	for i := range 20 {
		files[fmt.Sprintf("d/f%02d", i)] = noise(3000+i, uint64(10+i))
	}
	writeTree(t, src, files, nil)
	s := newStore(t)
	ingestDir(t, s, "t@1", src)
	ctx := context.Background()
	f, err := s.File(ctx, hash.Sum(files["big.bin"]))
	if err != nil || len(f.List.Chunks) < 4 {
		t.Fatalf("big.bin: %v chunks, %v", f, err)
	}

	for _, bad := range []hash.Hash{hash.Sum(files["d/f05"]), f.List.Chunks[3].Hash} {
		o, err := store.NewObjects(&faultySource{Source: s, flipChunk: bad}, 8<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(o.Close)
		v, err := backend.OpenRoot(ctx, o, store.Ref{Name: "t", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		fsys := v.FS()
		// Every sibling but the damaged one reads exactly, though the
		// first open had them (the damaged one included) prefetched.
		for i := range 20 {
			p := fmt.Sprintf("d/f%02d", i)
			got, err := fsys.ReadFile(p)
			switch {
			case hash.Sum(files[p]) == bad:
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("%s (damaged): err %v, want ErrCorrupt", p, err)
				}
			case err != nil || !bytes.Equal(got, files[p]):
				t.Fatalf("%s: %d bytes, %v", p, len(got), err)
			}
		}
		// A sequential reader of big.bin gets exact bytes up to the
		// damaged chunk (prefetched while it read the chunks before), then
		// ErrCorrupt.
		n, err := v.Walk(ctx, "big.bin")
		if err != nil {
			t.Fatal(err)
		}
		r, err := v.Open(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, err = io.CopyBuffer(&got, struct{ io.Reader }{r}, make([]byte, 32<<10))
		if bad == f.List.Chunks[3].Hash {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("big.bin read past a damaged chunk: err %v", err)
			}
			if end := f.List.Start(3); int64(got.Len()) > end || !bytes.Equal(got.Bytes(), files["big.bin"][:got.Len()]) {
				t.Fatalf("big.bin: %d bytes before the error (the damaged chunk starts at %d), or wrong bytes", got.Len(), end)
			}
		} else if err != nil || !bytes.Equal(got.Bytes(), files["big.bin"]) {
			t.Fatalf("big.bin: %d bytes, %v", got.Len(), err)
		}
	}
}

// TestManyColdReadersAcrossDeltaChains: sixteen readers at once over every
// version of a delta store, with a chunk cache far smaller than the data,
// so that prefetches, chain loads and evictions interleave; every byte is
// exact.
func TestManyColdReadersAcrossDeltaChains(t *testing.T) {
	vs := versions(6)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestVersions(t, s, vs, ingest.Options{MaxDepth: 4})
	s.Close()
	s, err := store.Open(path, store.Options{ChunkCache: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := (w * 5) % len(vs)
			fsys := openRoot(t, s, fmt.Sprintf("d@%d", v+1)).FS()
			for p, want := range vs[v] {
				got, err := fsys.ReadFile(p)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("reader %d: d@%d/%s: %d bytes, %v; want %d bytes", w, v+1, p, len(got), err, len(want))
				}
			}
		}()
	}
	wg.Wait()
}

// TestOpenPrefetchesNextSmallFiles: opening a file has the small files
// after it in its directory decoded in the background, up to the prefetch
// bounds, before anything reads them.
func TestOpenPrefetchesNextSmallFiles(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("f%02d", i)] = noise(2000+i, uint64(100+i))
	}
	writeTree(t, src, files, nil)
	s := newStore(t)
	ingestDir(t, s, "t@1", src)
	ctx := context.Background()
	fsrc := &faultySource{Source: s}
	o, err := store.NewObjects(fsrc, 8<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	v, err := backend.OpenRoot(ctx, o, store.Ref{Name: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.FS().ReadFile("f00"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fsrc.frames.Load() < 17 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything past the bound would show by now
	if n := fsrc.frames.Load(); n != 17 {
		t.Fatalf("%d frames fetched after opening f00: want f00 and the 16 files after it", n)
	}
}
