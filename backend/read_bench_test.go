package backend_test

// Read-path benchmarks: a store is built once per run of BenchmarkStoreRead
// by ingesting a generated tree (64 MiB of source-like text over files of
// mixed sizes, plus one 64 MiB file), then read back through the Reader and
// the io/fs view with a warm and a cold chunk cache.
//
//	go test -run '^$' -bench StoreRead -benchtime 2s ./backend/
//
// "Warm" stores get a chunk cache larger than the data, so after the first
// pass every chunk is served decompressed from memory. "Cold" stores get a
// 1 MiB chunk cache: a few chunks (enough for the chunks one read spans),
// far below the data, so every pass misses on every chunk and pays SQLite +
// zstd + SHA-256 once per chunk. SQLite pages stay in the OS page cache in
// both cases. Each case checks its bytes against the generated content
// before it is timed, and once more after.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

const (
	rbSmallTotal = 64 << 20  // bytes over the small files
	rbLargeSize  = 64 << 20  // the one large file
	rbSeqRead    = 128 << 10 // sequential read size
	rbRandRead   = 4 << 10   // random read size
	rbWarmCache  = 512 << 20 // holds every chunk of the tree
	rbColdCache  = 1 << 20   // holds a few chunks only
	rbLargeName  = "large/blob.txt"
)

// rbTree is the generated content: path -> bytes, and the small files' paths
// in order.
type rbTree struct {
	files map[string][]byte
	small []string
	large []byte
	total int64 // bytes of the small files
}

var (
	rbTreeOnce sync.Once
	rbTreeData *rbTree
)

// rbWords is the vocabulary of the generated source text.
var rbWords = []string{
	"func", "return", "if", "err", "nil", "for", "range", "var", "const", "type", "struct", "interface",
	"ctx", "context.Context", "string", "int64", "[]byte", "map[string]int", "bool", "error", "fmt.Errorf",
	"len", "append", "make", "defer", "go", "chan", "select", "case", "default", "switch", "package",
	"import", "klog.V(4).Info", "metav1.ObjectMeta", "v1.Pod", "apiserver", "client", "informer", "cache",
	"handler", "request", "response", "status", "spec", "namespace", "label", "selector", "volume",
	"container", "node", "scheduler", "controller", "reconcile", "queue", "key", "value", "item", "list",
	"watch", "update", "delete", "create", "patch", "resource", "version", "object", "name", "options",
	"config", "manager", "server", "endpoint", "service", "deployment", "replica", "runtime", "plugin",
	"framework", "util", "wait", "timeout", "retry", "backoff", "sync.Mutex", "atomic.Int64", "lock",
	"Unlock", "t.Fatalf", "expected", "got", "want", "test", "assert", "require", "mock", "fake",
}

var rbPunct = []string{" ", " ", " ", " ", ", ", ".", "(", ") ", " := ", " = ", " == ", " != ", "{", "}", "[", "]", "; ", " && ", " || "}

// rbText returns n bytes of deterministic, compressible, Go-like text that
// does not repeat at chunk scale.
func rbText(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, 0, n+256)
	for len(b) < n {
		depth := r.IntN(4)
		for range depth {
			b = append(b, '\t')
		}
		if r.IntN(8) == 0 {
			b = append(b, "// "...)
		}
		for w := 3 + r.IntN(9); w > 0; w-- {
			b = append(b, rbWords[r.IntN(len(rbWords))]...)
			if r.IntN(5) == 0 {
				b = fmt.Appendf(b, "%d", r.IntN(10000))
			}
			b = append(b, rbPunct[r.IntN(len(rbPunct))]...)
		}
		b = append(b, '\n')
	}
	return b[:n]
}

// rbGenerate builds the tree once per process: small files with
// log-uniform sizes from 200 B to 256 KiB, and the large file.
func rbGenerate() *rbTree {
	rbTreeOnce.Do(func() {
		t := &rbTree{files: map[string][]byte{}}
		r := rand.New(rand.NewPCG(42, 42))
		for i := 0; t.total < rbSmallTotal; i++ {
			size := int(200 * math.Pow(262144.0/200, r.Float64()))
			size = min(size, int(rbSmallTotal-t.total))
			p := fmt.Sprintf("src/pkg%02d/sub%d/file%04d.go", i%48, (i/48)%4, i)
			t.files[p] = rbText(size, uint64(i)+1)
			t.small = append(t.small, p)
			t.total += int64(size)
		}
		sort.Strings(t.small)
		t.large = rbText(rbLargeSize, 1<<40)
		t.files[rbLargeName] = t.large
		rbTreeData = t
	})
	return rbTreeData
}

// rbFixture is an ingested store opened twice read-only: warm and cold.
type rbFixture struct {
	tree       *rbTree
	warm, cold *backend.View
}

func rbSetup(b *testing.B) *rbFixture {
	b.Helper()
	t := rbGenerate()
	ctx := context.Background()
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	for p, data := range t.files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	dbPath := filepath.Join(dir, "bench.sdfs")
	s, err := store.Open(dbPath, store.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	res, err := ingest.Run(ctx, s, ingest.Options{Name: "bench", Version: "v1", Sources: []ingest.Source{{Dir: src}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(dbPath)
	b.Logf("ingested %d files, %d bytes in %v; store %d bytes", res.Files, res.Bytes, res.Elapsed.Round(1e6), st.Size())
	f := &rbFixture{tree: t}
	f.warm = rbOpen(b, dbPath, rbWarmCache)
	f.cold = rbOpen(b, dbPath, rbColdCache)
	return f
}

func rbOpen(b *testing.B, dbPath string, chunkCache int64) *backend.View {
	b.Helper()
	s, err := store.Open(dbPath, store.Options{ReadOnly: true, ChunkCache: chunkCache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	v, err := backend.OpenRoot(context.Background(), s.Objects, store.Ref{Name: "bench", Version: "v1"})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func rbReader(b *testing.B, v *backend.View, p string) *backend.Reader {
	b.Helper()
	ctx := context.Background()
	n, err := v.Walk(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	r, err := v.Open(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// rbReadSeq reads the whole of r with ReadAt calls of len(buf) bytes; if
// want is not nil, it checks every read against it.
func rbReadSeq(r *backend.Reader, buf, want []byte) error {
	size := r.Size()
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := r.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return fmt.Errorf("ReadAt(%d): %w", off, err)
		}
		if end := min(off+int64(len(buf)), size); n != int(end-off) {
			return fmt.Errorf("ReadAt(%d): %d bytes, want %d", off, n, end-off)
		}
		if want != nil && !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			return fmt.Errorf("ReadAt(%d): bytes differ from those ingested", off)
		}
	}
	return nil
}

func rbSeq(b *testing.B, v *backend.View, t *rbTree) {
	r := rbReader(b, v, rbLargeName)
	if r.Size() != int64(len(t.large)) {
		b.Fatalf("size %d, want %d", r.Size(), len(t.large))
	}
	buf := make([]byte, rbSeqRead)
	if err := rbReadSeq(r, buf, t.large); err != nil { // checks, and warms a warm cache
		b.Fatal(err)
	}
	b.SetBytes(r.Size())
	b.ResetTimer()
	for b.Loop() {
		if err := rbReadSeq(r, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := rbReadSeq(r, buf, t.large); err != nil {
		b.Fatal(err)
	}
}

func rbSmallFiles(b *testing.B, v *backend.View, t *rbTree) {
	fsys := v.FS()
	check := func() {
		for _, p := range t.small {
			got, err := fsys.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, t.files[p]) {
				b.Fatalf("%s: %d bytes read differ from the %d ingested", p, len(got), len(t.files[p]))
			}
		}
	}
	check()
	b.SetBytes(t.total)
	b.ResetTimer()
	for b.Loop() {
		for _, p := range t.small {
			if _, err := fsys.ReadFile(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(t.small)), "ns/file")
	check()
}

func rbRandom(b *testing.B, v *backend.View, t *rbTree) {
	r := rbReader(b, v, rbLargeName)
	rng := rand.New(rand.NewPCG(7, 7))
	offs := make([]int64, 1<<14)
	for i := range offs {
		offs[i] = rng.Int64N(r.Size() - rbRandRead)
	}
	buf := make([]byte, rbRandRead)
	check := func() {
		for _, off := range offs[:1024] {
			if n, err := r.ReadAt(buf, off); err != nil || n != len(buf) {
				b.Fatalf("ReadAt(%d): %d, %v", off, n, err)
			}
			if !bytes.Equal(buf, t.large[off:off+rbRandRead]) {
				b.Fatalf("ReadAt(%d): bytes differ from those ingested", off)
			}
		}
	}
	check()
	if err := rbReadSeq(r, make([]byte, rbSeqRead), nil); err != nil { // warm a warm cache fully
		b.Fatal(err)
	}
	b.SetBytes(rbRandRead)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := r.ReadAt(buf, offs[i&(len(offs)-1)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	check()
}

// BenchmarkStoreRead measures the read path over one ingested store:
//
//	Seq128K{Warm,Cold}       the 64 MiB file, sequential 128 KiB ReadAt
//	SmallFilesFS{Warm,Cold}  every small file through View.FS().ReadFile
//	Random4K{Warm,Cold}      4 KiB ReadAt at random offsets of the 64 MiB file
func BenchmarkStoreRead(b *testing.B) {
	f := rbSetup(b)
	for _, c := range []struct {
		name string
		run  func(*testing.B, *backend.View, *rbTree)
	}{
		{"Seq128K", rbSeq},
		{"SmallFilesFS", rbSmallFiles},
		{"Random4K", rbRandom},
	} {
		for _, cache := range []struct {
			name string
			v    *backend.View
		}{{"Warm", f.warm}, {"Cold", f.cold}} {
			b.Run(c.name+cache.name, func(b *testing.B) { c.run(b, cache.v, f.tree) })
		}
	}
}
