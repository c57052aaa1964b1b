package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// bigMixed is a file of 256 KiB blocks, alternately incompressible and
// text, as a release bundle or disk image mixes them; edit changes its
// text blocks a little and inserts bytes near the start.
func bigMixed(blocks int, edit bool) []byte {
	rnd := rand.New(rand.NewChaCha8([32]byte{1}))
	var b bytes.Buffer
	if edit {
		b.WriteString("a header the second version gained\n")
	}
	for i := range blocks {
		if i%2 == 0 {
			block := make([]byte, 256<<10)
			for j := range block {
				block[j] = byte(rnd.Uint32())
			}
			b.Write(block)
			continue
		}
		for line := 0; b.Len() < (i+1)*256<<10; line++ {
			v := line
			if edit && line%50 == 0 {
				v = -line
			}
			fmt.Fprintf(&b, "func block%dLine%d() int { return %d * %d } // some code\n", i, line, v, i)
		}
	}
	return b.Bytes()
}

// storedForms ingests the two versions of bigMixed into a fresh store and
// returns how each of their chunks is stored.
func storedForms(t *testing.T) map[hash.Hash]store.ChunkInfo {
	t.Helper()
	s, _, src := newStore(t)
	forms := map[hash.Hash]store.ChunkInfo{}
	for v, edit := range []bool{false, true} {
		want := bigMixed(12, edit)
		if err := os.WriteFile(filepath.Join(src, "big.bin"), want, 0o644); err != nil {
			t.Fatal(err)
		}
		version := fmt.Sprint(v + 1)
		if _, err := Run(context.Background(), s, Options{Name: "r", Version: version, Sources: []Source{{Dir: src}}}); err != nil {
			t.Fatal(err)
		}
		if got := readBack(t, s, version, "big.bin"); !bytes.Equal(got, want) {
			t.Fatalf("r@%s/big.bin reads back %d bytes, not the %d written", version, len(got), len(want))
		}
	}
	err := s.StoredObjects(context.Background(), func(o store.StoredObject) error {
		if o.Kind == store.ObjectChunk {
			info, err := s.ChunkInfo(context.Background(), o.Hash)
			if err != nil {
				return err
			}
			forms[o.Hash] = info
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return forms
}

// TestDryingAheadStoresAsOneByOne: a big file's chunks dried in parallel
// ahead of the one being stored (against the parent version, plain, and
// against a guessed neighbour) are stored exactly as drying them one at a
// time stores them: the same codec, reference and bytes for every chunk.
func TestDryingAheadStoresAsOneByOne(t *testing.T) {
	defer func(n int) { aheadWindow = n }(aheadWindow)
	aheadWindow = 0
	want := storedForms(t)
	aheadWindow = 4
	got := storedForms(t)
	codecs := map[chunk.Codec]int{}
	for h, w := range want {
		codecs[w.Codec]++
		if g, ok := got[h]; !ok || g.Codec != w.Codec || g.Ref != w.Ref || g.Stored != w.Stored || g.Depth != w.Depth {
			t.Errorf("chunk %s: stored %+v dried ahead, %+v one by one", h, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d chunks dried ahead, %d one by one", len(got), len(want))
	}
	// The file exercises every path: deltas against the parent version,
	// against the previous chunk, and plain.
	if codecs[chunk.Delta] == 0 || codecs[chunk.Cross] == 0 || codecs[chunk.Raw] == 0 {
		t.Errorf("stored forms %v: want Delta, Cross and Raw chunks", codecs)
	}
	t.Logf("%d chunks: %v", len(want), codecs)
}

// TestDryingAheadFailsOnADamagedParent: a parent version's chunk that no
// longer matches its hash, met while drying ahead, fails the ingest with
// a corruption error naming the file, and leaves no root.
func TestDryingAheadFailsOnADamagedParent(t *testing.T) {
	s, path, src := newStore(t)
	big := filepath.Join(src, "big.bin")
	os.WriteFile(big, bigMixed(12, false), 0o644)
	if _, err := Run(context.Background(), s, Options{Name: "r", Version: "1", Sources: []Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	// Every text chunk's bytes turn into another valid frame's: each
	// decodes, to the wrong content.
	err = sqlitex.ExecuteTransient(c, `UPDATE chunk_data SET data = (SELECT d.data FROM chunk_data d JOIN chunks k ON k.data_id = d.id WHERE k.codec = 1 AND k.stored > 1000 LIMIT 1)
		WHERE id IN (SELECT data_id FROM chunks WHERE codec = 1)`, nil)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err = store.Open(path, store.Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(big, bigMixed(12, true), 0o644)
	_, err = Run(context.Background(), s, Options{Name: "r", Version: "2", Sources: []Source{{Dir: src}}})
	if !errors.Is(err, chunk.ErrCorrupt) || !strings.Contains(err.Error(), big) {
		t.Fatalf("ingest over a damaged parent: %v; want a corruption error naming %s", err, big)
	}
	if _, err := s.Root(context.Background(), "r", "2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("root r@2 after the failed ingest: %v; want not found", err)
	}
}
