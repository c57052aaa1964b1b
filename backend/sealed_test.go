package backend_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// TestChunkListsAreSealed: ingest writes listings that name each
// multi-chunk file's stored chunk list by its hash, keeps them through
// reuse and through composing an older (version 1) listing, and a stored
// list that is not the one named (a valid, sealed list of the same total
// size) makes the file EIO on open and a problem for check, where before
// it would have been read.
func TestChunkListsAreSealed(t *testing.T) {
	ctx := context.Background()
	big, small := noise(1<<20, 7), []byte("small")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"big": big, "small": small}, nil)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	ingestDir(t, s, "a@1", src)
	r1, err := s.Root(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Dir(ctx, r1.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := d.Lookup("big")
	es, _ := d.Lookup("small")
	rec, err := s.ChunkList(ctx, eb.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if d.Unsealed || eb.List != hash.Sum(rec.List) || !es.List.IsZero() {
		t.Fatalf("listing: unsealed %v, big's list %s (stored %s), small's %s", d.Unsealed, eb.List, hash.Sum(rec.List), es.List)
	}

	// Unchanged files are reused, list hash and all: the same listing.
	ingestDir(t, s, "a@2", src)
	if r2, err := s.Root(ctx, "a", "2"); err != nil || r2.Top.Hash != r1.Top.Hash {
		t.Fatalf("a@2's top %s, a@1's %s (%v)", r2.Top.Hash, r1.Top.Hash, err)
	}

	// A version 1 listing of the same files (as an older store holds),
	// composed with another source: the merged listing names the list.
	old := *d
	old.Unsealed, old.Entries = true, append([]tree.Entry(nil), d.Entries...)
	for i := range old.Entries {
		old.Entries[i].List = hash.Zero
	}
	enc, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	top := r1.Top
	top.Hash = hash.Sum(enc)
	if err := w.PutDir(top.Hash, enc, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(store.Root{Name: "old", Version: "1", Top: top, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	writeTree(t, other, map[string][]byte{"other": []byte("other")}, nil)
	ref, _ := store.ParseRef("old@1", true)
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: "merged", Version: "1", Sources: []ingest.Source{{Ref: &ref}, {Dir: other}}}); err != nil {
		t.Fatal(err)
	}
	rm, err := s.Root(ctx, "merged", "1")
	if err != nil {
		t.Fatal(err)
	}
	dm, err := s.Dir(ctx, rm.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := dm.Lookup("big"); dm.Unsealed || e.List != eb.List {
		t.Fatalf("merged listing: unsealed %v, big's list %s, want %s", dm.Unsealed, e.List, eb.List)
	}
	for _, id := range []string{"a@1", "old@1", "merged@1"} {
		if got, err := openRoot(t, s, id).FS().ReadFile("big"); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s/big: %d bytes, %v", id, len(got), err)
		}
	}

	// Forge the stored list: its first chunk twice, then the rest shortened
	// to keep the total. Sealed and of the right size, but not the list
	// the listings name.
	l, err := tree.DecodeChunkList(rec.List, int64(len(big)))
	if err != nil || len(l.Chunks) < 3 {
		t.Fatalf("big has %v chunks: %v", l, err)
	}
	forged := append([]tree.ChunkRef{l.Chunks[0]}, l.Chunks[:len(l.Chunks)-1]...)
	forged[len(forged)-1].Size += l.Chunks[len(l.Chunks)-1].Size - l.Chunks[0].Size
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.Execute(c, `UPDATE files SET chunks = ? WHERE hash = ?`, &sqlitex.ExecOptions{Args: []any{tree.EncodeChunkList(forged), eb.Hash[:]}})
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	s2 := storeAt(t, path) // caches hold none of the old list
	for _, id := range []string{"a@1", "merged@1"} {
		f, err := openRoot(t, s2, id).FS().Open("big")
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, store.ErrCorrupt) || backend.Errno(err) != syscall.EIO || !strings.Contains(err.Error(), "its directory says") {
			t.Errorf("%s/big opens: %v, want EIO for a list its listing does not name", id, err)
		}
	}
	// The version 1 listing cannot tell: its file opens on the list's seal.
	if f, err := openRoot(t, s2, "old@1").FS().Open("big"); err != nil {
		t.Errorf("old@1/big: %v", err)
	} else {
		f.Close()
	}
	rep, err := s2.Check(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, p := range rep.Problems {
		if p.Kind == "directory" && strings.Contains(p.Err.Error(), `"big"`) {
			named++
		}
	}
	if named != 2 { // a@1 (and a@2) share one listing; merged@1 has its own
		t.Errorf("check named %d listings for big, want 2: %v", named, rep.Problems)
	}
}
