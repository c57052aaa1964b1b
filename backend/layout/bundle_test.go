package layout

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// keeper records what it is asked to keep.
type keeper struct {
	mu   sync.Mutex
	kept []string
}

func (k *keeper) Keep(key string, encode func() []byte) {
	encode()
	k.mu.Lock()
	k.kept = append(k.kept, key)
	k.mu.Unlock()
}
func (k *keeper) Holds(string) bool { return false }
func (k *keeper) Drop(string)       {}

func chunks(names ...string) []Object {
	var out []Object
	for _, n := range names {
		out = append(out, Object{Kind: Chunk, Hash: hash.Sum([]byte(n)), Frame: store.Frame{Size: len(n), Data: []byte(n)}})
	}
	return out
}

// TestBundles: a bundle is kept whole once each member is verified (one
// verified before it came counts; another copy of a member does not); one
// pushed out of the budget, or flushed, has its verified members kept
// alone.
func TestBundles(t *testing.T) {
	var bs bundles
	k := &keeper{}
	a, b, c := chunks("a1", "a2"), chunks("b1", "b2"), chunks("c1", "c2", "twin")

	twin := chunks("twin")[0]
	bs.verified(k, twin) // verified before its bundle comes
	bs.add(k, "pack/a", Chunk, a, pendingBundles, func() []byte { return nil })
	bs.verified(k, a[0])
	bs.add(k, "pack/b", Chunk, b, 1, func() []byte { return nil }) // pushes a out
	if want := []string{Key(Chunk, a[0].Hash)}; !slices.Equal(k.kept, want) {
		t.Fatalf("a pushed out: kept %v, want its verified member alone %v", k.kept, want)
	}
	for _, m := range b {
		if !bs.verified(k, m) {
			t.Errorf("%s: not held by a bundle", m.Hash)
		}
	}
	if got := k.kept[len(k.kept)-1]; got != "pack/b" {
		t.Fatalf("b verified whole: last kept %s, want pack/b", got)
	}

	k.kept = nil
	bs.add(k, "pack/c", Chunk, c, 1, func() []byte { return nil })
	other := c[0]
	other.Frame.Data = []byte("c1, another copy")
	if bs.verified(k, other) {
		t.Error("another copy of c1 counts as its pack's")
	}
	bs.verified(k, c[1])
	bs.flush(k)
	want := []string{Key(Chunk, c[1].Hash), Key(Chunk, twin.Hash)}
	slices.Sort(want)
	slices.Sort(k.kept)
	if !slices.Equal(k.kept, want) {
		t.Errorf("flushed c: kept %v, want %v", k.kept, want)
	}
	if n := len(bs.byMember); n != 0 {
		t.Errorf("%d members still indexed", n)
	}
}

// remote serves objects from a map, and keeps what it is given.
type remote struct {
	keeper
	objs map[string][]byte
}

func (r *remote) Fetch(_ context.Context, key string, _ int64, _ bool) ([]byte, error) {
	if b, ok := r.objs[key]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", key, store.ErrNotFound)
}

// TestChunkFetchedAloneIsKeptAlone: a chunk that came in a pack is kept
// with the pack; the same chunk fetched alone (read where no loaded pack
// holds it) is kept alone too, though a pending pack holds it, since only
// its own listing's pack is looked in again.
func TestChunkFetchedAloneIsKeptAlone(t *testing.T) {
	x := Object{Kind: Chunk, Hash: hash.Sum([]byte("twin")), Frame: store.Frame{Codec: chunk.Raw, Size: 4, Data: []byte("twin")}}
	y := Object{Kind: Chunk, Hash: hash.Sum([]byte("only")), Frame: store.Frame{Codec: chunk.Raw, Size: 4, Data: []byte("only")}}
	dir := hash.Sum([]byte("a listing"))
	r := &remote{objs: map[string][]byte{
		Key(Pack, dir):     EncodePack(dir, []Object{x, y}),
		Key(Chunk, x.Hash): EncodeChunk(x.Hash, x.Frame),
	}}
	s := NewSource(r, SourceOptions{})
	ctx := context.Background()
	if !s.loadPack(ctx, dir) {
		t.Fatal("no pack")
	}
	f, err := s.Frame(ctx, y.Hash)
	if err != nil {
		t.Fatal(err)
	}
	s.KeepFrame(y.Hash, f) // read from the pack: kept with it
	if len(r.kept) != 0 {
		t.Fatalf("kept %v, want nothing before the pack is whole", r.kept)
	}
	s.frames.Remove(x.Hash) // as when x's listing has no pack: x is fetched alone
	if f, err = s.Frame(ctx, x.Hash); err != nil {
		t.Fatal(err)
	}
	s.KeepFrame(x.Hash, f)
	want := []string{Key(Chunk, x.Hash), Key(Pack, dir)}
	slices.Sort(r.kept)
	if !slices.Equal(r.kept, want) {
		t.Errorf("kept %v, want x alone and the pack, now whole: %v", r.kept, want)
	}
}
