package usage_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/usage"
	"github.com/spraydryfs/spraydryfs/backend/walk"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// TestReferenceChainsCountForTheirDependants stores a file, then a version
// with a few bytes changed, whose new chunks are deltas against the old
// ones: those old chunks are not in the new version's tree but it needs
// them, so they count as shared, not as the old version's unique bytes.
func TestReferenceChainsCountForTheirDependants(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := t.TempDir()
	data := make([]byte, 700<<10)
	rand.NewChaCha8([32]byte{3}).Read(data)
	var roots []store.Root
	for i, v := range []string{"1", "2"} {
		if i == 1 {
			copy(data[350<<10:], "changed in version 2")
		}
		if err := os.WriteFile(filepath.Join(src, "f"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ingest.Run(ctx, s, ingest.Options{Name: "a", Version: v, Sources: []ingest.Source{{Dir: src}}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.Root(ctx, "a", v)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, r)
	}
	// What the trees hold, and the references of version 2's chunks.
	in := [2]map[hash.Hash]bool{{}, {}}
	for i, r := range roots {
		hs, err := walk.Chunks(ctx, s.Objects, []store.Root{r})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			in[i][h] = true
		}
	}
	var onlyOld, refs int64
	for h := range in[0] {
		if in[1][h] {
			continue
		}
		info, err := s.ChunkInfo(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		onlyOld += int64(info.Stored)
	}
	for h := range in[1] {
		info, err := s.ChunkInfo(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Ref.IsZero() && !in[1][info.Ref] {
			ref, err := s.ChunkInfo(ctx, info.Ref)
			if err != nil || ref.Depth != 0 {
				t.Fatalf("reference %s: %+v, %v (want a plain chunk of version 1)", info.Ref, ref, err)
			}
			refs += int64(ref.Stored)
		}
	}
	if refs == 0 {
		t.Fatal("version 2 has no delta chunks against version 1's")
	}
	// Version 1 alone holds its top listing (one entry: stored raw, not
	// a delta base) and its file's chunk list.
	top, err := s.Listing(ctx, roots[0].Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	top2, err := s.Listing(ctx, roots[1].Top.Hash)
	if err != nil || top2[0] == 2 { // chunk.Delta
		t.Fatalf("version 2's listing is a delta (%v): the test assumes it is not", err)
	}
	d, err := s.Dir(ctx, roots[0].Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.ChunkList(ctx, d.Entries[0].Hash)
	if err != nil || list.List == nil {
		t.Fatalf("version 1's file has no chunk list: %v", err)
	}

	rep, err := usage.Compute(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := onlyOld - refs + int64(len(top)) + int64(len(list.List))
	if got := rep.Roots[0].Unique; got != want {
		t.Errorf("version 1 unique %d, want %d: %d in its tree alone, less %d of references version 2 needs, plus listing and chunk list",
			got, want, onlyOld, refs)
	}
	if rep.Roots[0].Shared < refs || rep.Unreferenced != 0 || rep.Needed != rep.Total {
		t.Errorf("report %+v", rep)
	}
}
