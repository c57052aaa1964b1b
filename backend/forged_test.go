package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// layoutFetcher serves published objects from a map; objects/chunk/ keys
// come from bad, when set there, unless the fetch is fresh (as a stale
// HTTP cache in front of a good origin would).
type layoutFetcher struct {
	good, bad map[string][]byte
	fresh     atomic.Int32
}

func (f *layoutFetcher) Fetch(_ context.Context, key string, _ int64, fresh bool) ([]byte, error) {
	if fresh {
		f.fresh.Add(1)
	} else if b, ok := f.bad[key]; ok {
		return b, nil
	}
	if b, ok := f.good[key]; ok {
		return b, nil
	}
	return nil, layout.ErrNotFound
}

// TestChunkListSizesAreChecked serves a file of two chunks (1000 and 3000
// bytes) whose chunk list gives them 2000 bytes each: the total matches
// and each chunk verifies, but reads fail as corrupt, never crash or
// return bytes of the wrong place.
func TestChunkListSizesAreChecked(t *testing.T) {
	a, b := bytes.Repeat([]byte{'a'}, 1000), bytes.Repeat([]byte{'b'}, 3000)
	h, ha, hb := hash.Sum(append(append([]byte{}, a...), b...)), hash.Sum(a), hash.Sum(b)
	f := &layoutFetcher{good: map[string][]byte{
		layout.Key(layout.Chunk, ha): layout.EncodeChunk(ha, store.Frame{Size: len(a), Codec: chunk.Raw, Data: a}),
		layout.Key(layout.Chunk, hb): layout.EncodeChunk(hb, store.Frame{Size: len(b), Codec: chunk.Raw, Data: b}),
		layout.Key(layout.ChunkList, h): layout.EncodeChunkList(h, store.FileRecord{Size: 4000,
			List: tree.EncodeChunkList([]tree.ChunkRef{{Hash: ha, Size: 2000}, {Hash: hb, Size: 2000}})}),
	}}
	o, err := store.NewObjects(layout.NewSource(f, layout.SourceOptions{}), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	file, err := o.File(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1500, 2500} {
		r := &Reader{s: o, f: file}
		_, err := r.ReadAt(make([]byte, 100), off)
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("ReadAt %d: %v, want corruption", off, err)
		}
	}
	if _, err := io.Copy(io.Discard, &Reader{s: o, f: file}); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("WriteTo: %v, want corruption", err)
	}
}

// TestOneChunkFileSizeIsRefetched: a cache serves a one-chunk file's chunk
// with its header's size off by one. The file's record (whose size is
// that header's) disagrees with the listing, so it is fetched once more
// from the origin and reads right; no fresh copy, and it is corrupt.
func TestOneChunkFileSizeIsRefetched(t *testing.T) {
	data := bytes.Repeat([]byte("spray dry rehydrate "), 100)
	h := hash.Sum(data)
	key := layout.Key(layout.Chunk, h)
	d, err := chunk.NewDryer(zstd.SpeedDefault, nil)
	if err != nil {
		t.Fatal(err)
	}
	dried, codec, _ := d.Dry(nil, data) // compressed: the size is checked only by decoding
	good := layout.EncodeChunk(h, store.Frame{Size: len(data), Codec: codec, Data: dried})
	bad := layout.EncodeChunk(h, store.Frame{Size: len(data) + 1, Codec: codec, Data: dried})
	ctx := context.Background()
	for _, origin := range []map[string][]byte{{key: good}, {key: bad}} {
		f := &layoutFetcher{good: origin, bad: map[string][]byte{key: bad}}
		o, err := store.NewObjects(layout.NewSource(f, layout.SourceOptions{Refetches: true}), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		file, err := o.ListedFile(ctx, store.Listed{Hash: h, Size: int64(len(data)), Sealed: true})
		if bytes.Equal(origin[key], good) {
			if err != nil || file.Size != int64(len(data)) || f.fresh.Load() == 0 {
				t.Fatalf("damaged in the cache only: %v, %v, %d fresh fetches", file, err, f.fresh.Load())
			}
			got, err := io.ReadAll(&Reader{s: o, f: file})
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("read: %d bytes, %v", len(got), err)
			}
			continue
		}
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("damaged at the origin too: %v, want corruption", err)
		}
		if _, err := o.ListedFile(ctx, store.Listed{Hash: h, Size: int64(len(data)), Sealed: true}); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("again: %v, want corruption (not a cached record)", err)
		}
	}
}

// TestReorderedChunkListIsRefused: a mirror serves a file of two chunks
// of equal size with its chunk list reordered and sealed again. Each
// chunk verifies and the sizes add up, so only the listing's list hash
// tells: the file is refused before any read, from a stale cache
// (refetched from the origin, which reads right) and from the origin.
// A listing of version 1 (older stores) has no list hash: its files
// still open, on the list's seal alone.
func TestReorderedChunkListIsRefused(t *testing.T) {
	a, b := bytes.Repeat([]byte{'a'}, 2000), bytes.Repeat([]byte{'b'}, 2000)
	h, ha, hb := hash.Sum(append(append([]byte{}, a...), b...)), hash.Sum(a), hash.Sum(b)
	listed := tree.EncodeChunkList([]tree.ChunkRef{{Hash: ha, Size: 2000}, {Hash: hb, Size: 2000}})
	forged := tree.EncodeChunkList([]tree.ChunkRef{{Hash: hb, Size: 2000}, {Hash: ha, Size: 2000}})
	key := layout.Key(layout.ChunkList, h)
	objects := func(list []byte) map[string][]byte {
		return map[string][]byte{
			layout.Key(layout.Chunk, ha): layout.EncodeChunk(ha, store.Frame{Size: len(a), Codec: chunk.Raw, Data: a}),
			layout.Key(layout.Chunk, hb): layout.EncodeChunk(hb, store.Frame{Size: len(b), Codec: chunk.Raw, Data: b}),
			key:                          layout.EncodeChunkList(h, store.FileRecord{Size: 4000, List: list}),
		}
	}
	l := store.Listed{Hash: h, Size: 4000, List: hash.Sum(listed), Sealed: true}
	ctx := context.Background()
	for _, origin := range [][]byte{listed, forged} {
		f := &layoutFetcher{good: objects(origin), bad: map[string][]byte{key: objects(forged)[key]}}
		o, err := store.NewObjects(layout.NewSource(f, layout.SourceOptions{Refetches: true}), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		file, err := o.ListedFile(ctx, l)
		if bytes.Equal(origin, listed) {
			if err != nil {
				t.Fatalf("forged in the cache only: %v", err)
			}
			got := make([]byte, 100)
			if _, err := (&Reader{s: o, f: file}).ReadAt(got, 2500); err != nil || !bytes.Equal(got, b[:100]) {
				t.Errorf("ReadAt 2500: %q, %v", got[:4], err)
			}
			continue
		}
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("forged at the origin: %v, want corruption", err)
		}
		if _, err := o.ListedFile(ctx, l); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("again: %v, want corruption (not a cached record)", err)
		}
		if _, err := o.ListedFile(ctx, store.Listed{Hash: h, Size: 4000, Sealed: true}); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("listed as one chunk: %v, want corruption", err)
		}
		if _, err := o.ListedFile(ctx, store.Listed{Hash: h, Size: 4000}); err != nil {
			t.Errorf("unsealed listing: %v", err)
		}
	}
}
