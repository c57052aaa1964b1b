package cache_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/cache"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/push"
)

// tree is what the tests publish as t@1: small files, nested directories
// and a file of many chunks.
func tree() map[string][]byte {
	files := map[string][]byte{"big.txt": bytes.Repeat([]byte("many chunks of text, not all alike; "), 40000)}
	for i := range 30 {
		files[fmt.Sprintf("d%d/f%02d.txt", i%4, i)] = fmt.Appendf(nil, "file %d: %s", i, strings.Repeat("words ", i*13))
	}
	return files
}

// published ingests files as t@1 and pushes them into a layout directory.
func published(t testing.TB, files map[string][]byte) string {
	t.Helper()
	return publishedWith(t, files, push.Options{})
}

// publishedWith is published with push options opt.
func publishedWith(t testing.TB, files map[string][]byte, opt push.Options) string {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	for p, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		os.WriteFile(filepath.Join(src, p), b, 0o644)
	}
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: "t", Version: "1", Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	roots, _ := s.Roots(ctx)
	dir := t.TempDir()
	if _, err := push.Run(ctx, s.Objects, layout.NewDir(dir), roots, opt); err != nil {
		t.Fatal(err)
	}
	return dir
}

// origin is a remote over a layout directory that counts what it is asked
// for and can be down or serve damaged objects.
type origin struct {
	dir string
	d   *layout.Dir
	mu  sync.Mutex
	// plain and fresh count fetches per key, without and with fresh.
	plain, fresh map[string]int
	down         bool
	damaged      map[string]bool // flipped unless fetched fresh
	damagedAll   map[string]bool // flipped always
}

func newOrigin(dir string) *origin {
	return &origin{dir: dir, d: layout.NewDir(dir), plain: map[string]int{}, fresh: map[string]int{},
		damaged: map[string]bool{}, damagedAll: map[string]bool{}}
}

func (o *origin) Fetch(ctx context.Context, key string, limit int64, fresh bool) ([]byte, error) {
	o.mu.Lock()
	if fresh {
		o.fresh[key]++
	} else {
		o.plain[key]++
	}
	down, flip := o.down, o.damagedAll[key] || (o.damaged[key] && !fresh)
	o.mu.Unlock()
	if down {
		return nil, fmt.Errorf("GET %s: connection refused", key)
	}
	b, err := o.d.Fetch(ctx, key, limit, fresh)
	if err == nil && flip {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 1
	}
	return b, err
}

// objectFetches counts the fetches of objects (not the index).
func (o *origin) objectFetches() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for k, v := range o.plain {
		if k != layout.IndexKey {
			n += v
		}
	}
	for k, v := range o.fresh {
		if k != layout.IndexKey {
			n += v
		}
	}
	return n
}

// freshCount is how many times key was fetched fresh (background reads
// may still be fetching: read it under the lock).
func (o *origin) freshCount(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fresh[key]
}

func (o *origin) set(f func()) {
	o.mu.Lock()
	f()
	o.mu.Unlock()
}

// reader is one reading process: a cache over dir in front of the origin,
// and the Objects over it.
type reader struct {
	c   *cache.Cache
	r   *cache.Remote
	o   *store.Objects
	log *bytes.Buffer
}

func newReader(t testing.TB, dir string, size int64, or *origin) *reader {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	c, err := cache.Open(dir, cache.Options{Size: size, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := c.Wrap(or, "http://origin.test/pub/")
	src := layout.NewSource(r, layout.SourceOptions{Refetches: true, Log: log})
	o, err := store.NewObjects(src, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return &reader{c: c, r: r, o: o, log: &logs}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// readAll reads every file of t@1 through o and compares it with files.
func readAll(t testing.TB, o *store.Objects, files map[string][]byte) {
	t.Helper()
	v, err := backend.OpenRoot(context.Background(), o, store.Ref{Name: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		got, err := v.FS().ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", p, len(got), err)
		}
	}
}

// cachedFiles lists the object files in the cache directory.
func cachedFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			b, _ := os.ReadFile(p)
			m[filepath.ToSlash(rel)] = b
		}
		return err
	})
	return m
}

// TestWarmCacheWhileDown: a read through an empty cache keeps every object
// it fetched, byte for byte as published; a second reader over the same
// directory reads everything without asking the origin, and with the
// origin down still has its roots (from the kept index, with a warning)
// and every file. The remote's directory in the cache is a layout too.
func TestWarmCacheWhileDown(t *testing.T) {
	files := tree()
	pub := published(t, files)
	or := newOrigin(pub)
	dir := t.TempDir()
	first := newReader(t, dir, 0, or)
	readAll(t, first.o, files)
	first.c.Flush()
	fetched := or.objectFetches()
	cached := cachedFiles(t, dir)
	if len(cached) == 0 {
		t.Fatal("nothing cached")
	}
	for k, b := range cached {
		if want, err := os.ReadFile(filepath.Join(pub, k)); err != nil || !bytes.Equal(b, want) {
			t.Errorf("cached %s differs from the published object (%v)", k, err)
		}
	}
	st := first.c.Stats()
	if st.Kept != int64(len(cached)) || st.Misses == 0 || st.Objects != int64(len(cached)) {
		t.Errorf("first reader's stats %+v, %d objects on disk", st, len(cached))
	}
	first.c.Close()

	second := newReader(t, dir, 0, or)
	readAll(t, second.o, files)
	if n := or.objectFetches(); n != fetched {
		t.Errorf("a warm reader fetched %d objects from the origin", n-fetched)
	}
	if st := second.c.Stats(); st.Misses != 0 || st.Hits == 0 {
		t.Errorf("warm reader's stats %+v", st)
	}

	or.set(func() { or.down = true })
	third := newReader(t, dir, 0, or)
	roots, err := third.o.Roots(context.Background())
	if err != nil || len(roots) != 1 || roots[0].ID() != "t@1" {
		t.Fatalf("roots with the origin down: %v, %v", roots, err)
	}
	readAll(t, third.o, files)
	if !strings.Contains(third.log.String(), "roots index kept in the cache") {
		t.Errorf("no warning about the kept index:\n%s", third.log)
	}
	if n := or.objectFetches(); n != fetched {
		t.Errorf("the reader asked the downed origin for %d objects", n-fetched)
	}

	remotes, _ := filepath.Glob(filepath.Join(dir, "remotes", "*"))
	if len(remotes) != 1 || !layout.IsDir(remotes[0]) {
		t.Fatalf("remote directories %v: not one layout", remotes)
	}
	o, _ := store.NewObjects(layout.NewSource(layout.NewDir(remotes[0]), layout.SourceOptions{}), 1<<20, 1<<20)
	readAll(t, o, files)
}

// chunkKey returns the key of the chunk object of a one-chunk file.
func chunkKey(b []byte) string { return layout.Key(layout.Chunk, hash.Sum(b)) }

// TestUnverifiedNeverCached: an object that a cache on the way damaged
// is refetched fresh and only the verified copy is kept; one the origin
// damaged fails and is not kept. (Without packs, which would serve the
// damaged objects' files; a damaged pack member is push's test.)
func TestUnverifiedNeverCached(t *testing.T) {
	files := tree()
	pub := publishedWith(t, files, push.Options{NoPacks: true})
	victim, bad := chunkKey(files["d1/f01.txt"]), chunkKey(files["d2/f02.txt"])
	read := func(damage func(or *origin), name string) (*origin, string, error) {
		or := newOrigin(pub)
		damage(or)
		dir := t.TempDir()
		r := newReader(t, dir, 0, or)
		v, err := backend.OpenRoot(context.Background(), r.o, store.Ref{Name: "t", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.FS().ReadFile(name)
		r.c.Flush()
		if err == nil && !bytes.Equal(got, files[name]) {
			t.Fatalf("%s: wrong bytes", name)
		}
		return or, dir, err
	}

	or, dir, err := read(func(or *origin) { or.damaged[victim] = true }, "d1/f01.txt")
	if err != nil {
		t.Fatalf("a file damaged on the way: %v", err)
	}
	want, _ := os.ReadFile(filepath.Join(pub, victim))
	if got := cachedFiles(t, dir)[victim]; !bytes.Equal(got, want) {
		t.Errorf("the refetched object is not cached as published")
	}
	// (A file read ahead of a neighbour may meet the damage too.)
	if or.freshCount(victim) < 1 {
		t.Errorf("no fresh fetch of the damaged object")
	}

	or, dir, err = read(func(or *origin) { or.damagedAll[bad] = true }, "d2/f02.txt")
	if err == nil {
		t.Fatal("a file damaged at the origin read")
	}
	if _, ok := cachedFiles(t, dir)[bad]; ok {
		t.Errorf("an object that failed verification was cached")
	}
	if or.freshCount(bad) < 1 {
		t.Errorf("no fresh fetch of the damaged object")
	}
}

// TestCorruptCachedCopy: a cached object damaged on disk fails
// verification, is removed and fetched fresh, and the good copy replaces
// it; a truncated one likewise. The layout has no packs, so that each
// chunk is cached on its own (remote's TestCachedPackMemberDamaged damages
// a cached pack).
func TestCorruptCachedCopy(t *testing.T) {
	files := tree()
	or := newOrigin(publishedWith(t, files, push.Options{NoPacks: true}))
	dir := t.TempDir()
	r0 := newReader(t, dir, 0, or)
	readAll(t, r0.o, files)
	r0.c.Flush()
	flip, cut := chunkKey(files["d3/f03.txt"]), chunkKey(files["d0/f04.txt"])
	for _, k := range []string{flip, cut} {
		p := filepath.Join(dir, k)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if k == flip {
			b[len(b)-1] ^= 0x20
		} else {
			b = b[:len(b)/2]
		}
		os.WriteFile(p, b, 0o644)
	}
	r := newReader(t, dir, 0, or)
	readAll(t, r.o, files)
	r.c.Flush()
	cached := cachedFiles(t, dir)
	for _, k := range []string{flip, cut} {
		want, _ := os.ReadFile(filepath.Join(or.dir, k))
		if !bytes.Equal(cached[k], want) {
			t.Errorf("%s: the damaged cached copy was not replaced", k)
		}
		if or.freshCount(k) != 1 {
			t.Errorf("%s fetched fresh %d times, want 1", k, or.freshCount(k))
		}
	}
}

// object returns a made-up object key and bytes of n bytes.
func object(i, n int) (string, []byte) {
	b := bytes.Repeat([]byte{byte(i)}, n)
	return layout.Key(layout.Chunk, hash.Sum(fmt.Append(nil, i))), b
}

// diskBytes sums the object files' sizes in whole 4 KiB blocks.
func diskBytes(t testing.TB, dir string) int64 {
	var n int64
	for _, b := range cachedFiles(t, dir) {
		n += (int64(len(b)) + 4095) / 4096 * 4096
	}
	return n
}

// waitUnder waits until the cache directory holds at most max bytes.
func waitUnder(t *testing.T, dir string, max int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); diskBytes(t, dir) > max; {
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %d bytes, budget %d", diskBytes(t, dir), max)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEvictionLRU: the cache stays within its budget, and what was used
// recently stays while what was not goes.
func TestEvictionLRU(t *testing.T) {
	dir := t.TempDir()
	const budget = 64 * 4096
	r := newReader(t, dir, budget, newOrigin(t.TempDir()))
	ctx := context.Background()
	for i := range 40 {
		k, b := object(i, 3000)
		r.r.Keep(k, func() []byte { return b })
	}
	r.c.Flush()
	waitUnder(t, dir, budget)
	// Use the first ten that are left, then add many more.
	var hot []string
	for i := range 40 {
		k, _ := object(i, 3000)
		if len(hot) < 10 && r.r.Holds(k) {
			if _, err := r.r.Fetch(ctx, k, 1<<20, false); err == nil {
				hot = append(hot, k)
			}
		}
	}
	if len(hot) < 10 {
		t.Fatalf("only %d objects left of 40 in a budget of 64 blocks", len(hot))
	}
	for i := 100; i < 140; i++ { // with the hot ten, under the low-water mark
		k, b := object(i, 3000)
		r.r.Keep(k, func() []byte { return b })
		r.c.Flush()
		waitUnder(t, dir, budget)
	}
	for _, k := range hot {
		if !r.r.Holds(k) {
			t.Errorf("recently used %s was evicted", k)
		}
	}
	if st := r.c.Stats(); st.Evicted == 0 || st.Bytes > budget {
		t.Errorf("stats %+v", st)
	}
}

// TestConcurrentReaders: two caches over one directory (two processes)
// and many goroutines read while eviction keeps the directory within a
// budget smaller than the tree: every read is byte-exact.
func TestConcurrentReaders(t *testing.T) {
	files := tree()
	or := newOrigin(published(t, files))
	dir := t.TempDir()
	const budget = 48 * 4096
	var wg sync.WaitGroup
	for p := range 2 {
		r := newReader(t, dir, budget, or)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 3 {
					v, err := backend.OpenRoot(context.Background(), r.o, store.Ref{Name: "t", Version: "1"})
					if err != nil {
						t.Error(err)
						return
					}
					for name, want := range files {
						if (len(name)+g+round+p)%3 == 0 {
							continue
						}
						if got, err := v.FS().ReadFile(name); err != nil || !bytes.Equal(got, want) {
							t.Errorf("%s: %d bytes, %v", name, len(got), err)
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	waitUnder(t, dir, budget)
}

// TestKeepDoesNotWait: keeping an object returns before it is written;
// Flush waits for it, and Close writes what is queued.
func TestKeepDoesNotWait(t *testing.T) {
	dir := t.TempDir()
	r := newReader(t, dir, 1<<20, newOrigin(t.TempDir()))
	k, b := object(1, 3000)
	r.r.Keep(k, func() []byte { return b })
	r.c.Flush()
	if got := cachedFiles(t, dir)[k]; !bytes.Equal(got, b) {
		t.Fatalf("after Flush: %d bytes cached", len(got))
	}
	k2, b2 := object(2, 3000)
	r.r.Keep(k2, func() []byte { return b2 })
	r.c.Close()
	if got := cachedFiles(t, dir)[k2]; !bytes.Equal(got, b2) {
		t.Fatalf("after Close: %d bytes cached", len(got))
	}
}

// BenchmarkOpen100k measures opening a cache of 100,000 objects: the
// time to a usable cache, the background scan, and the memory its records
// take (heap growth from before the open to after the scan). It is run
// by hand: SPRAYDRYFS_BENCH_100K=1 go test -bench Open100k -benchtime 3x.
func BenchmarkOpen100k(b *testing.B) {
	if os.Getenv("SPRAYDRYFS_BENCH_100K") == "" {
		b.Skip("set SPRAYDRYFS_BENCH_100K=1 to run: it writes 100,000 files")
	}
	const n = 100_000
	dir := b.TempDir()
	for i := range n {
		k, _ := object(i, 0)
		p := filepath.Join(dir, filepath.FromSlash(k))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	b.ResetTimer()
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		c, err := cache.Open(dir, cache.Options{Log: log})
		if err != nil {
			b.Fatal(err)
		}
		opened := time.Since(start)
		for c.Stats().Objects < n {
			time.Sleep(time.Millisecond)
		}
		scanned := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(opened.Microseconds())/1000, "open-ms")
		b.ReportMetric(float64(scanned.Milliseconds()), "scan-ms")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "records-MB")
		runtime.KeepAlive(c)
		c.Close()
	}
}

// TestKeptIndexIsTrusted: with trusted keys, the roots index the cache
// keeps (served while the origin is down, and the floor below which an
// index is a rollback, across processes) is only one the reader accepted.
// An index signed by another key, or an older one served again, is
// refused by a new reader and leaves the kept copy alone.
func TestKeptIndexIsTrusted(t *testing.T) {
	ctx := context.Background()
	pub := published(t, tree())
	or := newOrigin(pub)
	unsigned, err := os.ReadFile(filepath.Join(pub, layout.IndexKey))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := layout.DecodeIndex(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	key, other := newKey(t), newKey(t)
	trust := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	serve := func(k ed25519.PrivateKey, at time.Time) []byte {
		b, err := layout.SignIndex(roots, at, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pub, layout.IndexKey), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir := t.TempDir()
	open := func() (*cache.Remote, *store.Objects) {
		c, err := cache.Open(dir, cache.Options{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := c.Wrap(or, "http://origin.test/pub/")
		o, err := store.NewObjects(layout.NewSource(r, layout.SourceOptions{Trust: trust}), 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return r, o
	}
	kept := func(r *cache.Remote, want []byte, when string) {
		t.Helper()
		if got := r.SavedIndex(); !bytes.Equal(got, want) {
			t.Errorf("%s: the cache keeps %d bytes of index, not the accepted one", when, len(got))
		}
	}

	good := serve(key, t0.Add(time.Hour))
	r, o := open()
	if rs, err := o.Roots(ctx); err != nil || len(rs) != 1 {
		t.Fatalf("trusted index: %v, %v", rs, err)
	}
	kept(r, good, "after a trusted index")

	serve(other, t0.Add(2*time.Hour))
	r, o = open()
	if _, err := o.Roots(ctx); !errors.Is(err, layout.ErrUntrusted) {
		t.Errorf("index signed by another key: %v, want it refused", err)
	}
	kept(r, good, "after an index signed by another key")

	serve(key, t0) // published before the one accepted: a rollback
	r, o = open()
	if _, err := o.Roots(ctx); !errors.Is(err, layout.ErrUntrusted) || !strings.Contains(err.Error(), "older index") {
		t.Errorf("older index served again to a new reader: %v, want it refused", err)
	}
	kept(r, good, "after an older index")

	or.set(func() { or.down = true })
	_, o = open()
	if rs, err := o.Roots(ctx); err != nil || len(rs) != 1 {
		t.Errorf("origin down: %v, %v; want the kept trusted index", rs, err)
	}
	or.set(func() { or.down = false })

	newer := serve(key, t0.Add(3*time.Hour))
	r, o = open()
	if _, err := o.Roots(ctx); err != nil {
		t.Errorf("newer trusted index: %v", err)
	}
	kept(r, newer, "after a newer trusted index")
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := layout.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
