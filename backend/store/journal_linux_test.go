package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// written is the bytes this process has passed to write system calls
// (wchar in /proc/self/io): the WAL's and any temporary file's alike.
func written(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("wchar: ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in /proc/self/io: %q", b)
	return 0
}

// TestChunkWritesNeedNoStatementJournal: a batch of delta chunks, whose
// inserts each update their reference's dependant count by trigger, is
// written with the pages it changes in the WAL and nothing else, and so is
// a sweep that deletes them (whose trigger updates the count back), with
// as many chunk lists and listings. A
// statement that could ABORT after its first write would copy each page it
// touches into a statement journal first: 64 KiB per page and statement,
// here over 16 MiB for 300 chunks.
func TestChunkWritesNeedNoStatementJournal(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.sdfs"), Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(n int, ref func(i int) hash.Hash) {
		t.Helper()
		w, err := s.NewWriter()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			data := fmt.Appendf(nil, "chunk %d of a batch, %d", i, n)
			d := Dried{Codec: chunk.Zstd, Data: data}
			if r := ref(i); !r.IsZero() {
				d = Dried{Codec: chunk.Delta, Ref: r, Depth: 1, Data: data}
			}
			if err := w.PutChunk(hash.Sum(data), len(data), d); err != nil {
				t.Fatal(err)
			}
			if n > 1 {
				if err := w.PutFile(hash.Sum(fmt.Appendf(nil, "file %d", i)), 10, data); err != nil {
					t.Fatal(err)
				}
				if err := w.PutDir(hash.Sum(fmt.Appendf(nil, "listing %d", i)), data, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	base := hash.Sum([]byte("chunk 0 of a batch, 1"))
	deps := func(want int) {
		t.Helper()
		info, err := s.ChunkInfo(t.Context(), base)
		if err != nil || info.Deps != want {
			t.Fatalf("base: %+v, %v; want %d dependants", info, err, want)
		}
	}
	put(1, func(int) hash.Hash { return hash.Zero })
	before := written(t)
	put(300, func(int) hash.Hash { return base })
	n := written(t) - before
	deps(300)
	// The WAL holds each changed page once (a few 64 KiB pages) per
	// commit; one commit here.
	t.Logf("writing 300 delta chunks, lists and listings wrote %d bytes", n)
	if n > 2<<20 {
		t.Errorf("writing 300 delta chunks, lists and listings wrote %d bytes; want under 2 MiB", n)
	}
	before = written(t)
	st, err := s.Sweep(t.Context(), func(context.Context, []Root) ([]Object, error) {
		var objs []Object
		for i := range 300 {
			objs = append(objs, Object{ObjectListing, hash.Sum(fmt.Appendf(nil, "listing %d", i))},
				Object{ObjectList, hash.Sum(fmt.Appendf(nil, "file %d", i))},
				Object{ObjectChunk, hash.Sum(fmt.Appendf(nil, "chunk %d of a batch, %d", i, 300))})
		}
		return objs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n = written(t) - before
	if st.Objects != 900 {
		t.Fatalf("swept %d objects, want 900", st.Objects)
	}
	deps(0)
	t.Logf("deleting them wrote %d bytes", n)
	if n > 2<<20 {
		t.Errorf("deleting them wrote %d bytes; want under 2 MiB", n)
	}
}
