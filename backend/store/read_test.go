package store

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// TestFrameReadsBlobs: frames small and large (past SQLite's overflow
// pages and the allocator's 16 KiB slots) come back byte-exact through
// the blob reader, and a chunk whose data row is gone is corrupt, not
// missing.
func TestFrameReadsBlobs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	want := map[hash.Hash][]byte{}
	for _, n := range []int{1, 100, 4096, 16 << 10, 70 << 10, 256 << 10} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		h := hash.Sum(b)
		want[h] = b
		if err := w.PutChunk(h, n, Dried{Codec: chunk.Raw, Data: bytes.Clone(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var victim hash.Hash
	for h, b := range want {
		f, err := s.Frame(ctx, h)
		if err != nil || !bytes.Equal(f.Data, b) || f.Size != len(b) {
			t.Fatalf("frame of %d bytes: %d bytes back, %v", len(b), len(f.Data), err)
		}
		victim = h
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.Execute(c, `DELETE FROM chunk_data WHERE id = (SELECT data_id FROM chunks WHERE hash = ?)`, &sqlitex.ExecOptions{Args: []any{victim[:]}})
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Frame(ctx, victim); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("frame without its data: %v, want a corruption error", err)
	}
}
