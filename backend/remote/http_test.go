package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/push"
)

var files = map[string][]byte{
	"small.txt": []byte("hello over http"),
	"big.txt":   bytes.Repeat([]byte("many chunks of text, not all alike; "), 40000),
	"d/e.txt":   []byte("nested"),
}

// published pushes files as t@1 into a layout directory.
func published(t *testing.T, files map[string][]byte) string {
	t.Helper()
	return publishedWith(t, files, push.Options{})
}

// publishedWith is published with push options opt.
func publishedWith(t *testing.T, files map[string][]byte, opt push.Options) string {
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

// server serves a layout directory and can misbehave on purpose.
type server struct {
	dir  string
	mu   sync.Mutex
	hits map[string]int
	// damage: objects served with a flipped byte unless asked with no-cache
	// (a bad cache), or always (a bad origin).
	damage       string
	damageOrigin bool
	unavailable  int // answer 503 this many times
	hang         bool
	conns        map[string]bool
	// forbidMissing answers 403 AccessDenied for a missing file, as S3
	// does to a reader without s3:ListBucket; forbidIndex for the index.
	forbidMissing, forbidIndex bool
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	s.conns[r.RemoteAddr] = true
	unavailable := s.unavailable > 0
	if unavailable {
		s.unavailable--
	}
	s.mu.Unlock()
	if s.hang {
		<-r.Context().Done()
		return
	}
	if unavailable {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/pub/")
	if _, err := os.Stat(filepath.Join(s.dir, key)); (s.forbidMissing && err != nil) || (s.forbidIndex && key == layout.IndexKey) {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", http.StatusForbidden)
		return
	}
	if s.damage != "" && key == s.damage && (s.damageOrigin || r.Header.Get("Cache-Control") != "no-cache") {
		b, _ := os.ReadFile(filepath.Join(s.dir, key))
		b[len(b)-1] ^= 1
		w.Write(b)
		return
	}
	http.StripPrefix("/pub/", http.FileServer(http.Dir(s.dir))).ServeHTTP(w, r)
}

func start(t *testing.T) (*server, *store.Objects, *remote.HTTP) {
	return startWith(t, files, false)
}

// startWith serves files over HTTP, with the Source reading ahead if
// prefetch.
func startWith(t *testing.T, files map[string][]byte, prefetch bool) (*server, *store.Objects, *remote.HTTP) {
	return startDir(t, published(t, files), prefetch)
}

// startDir is startWith for a published layout directory.
func startDir(t *testing.T, dir string, prefetch bool) (*server, *store.Objects, *remote.HTTP) {
	srv := &server{dir: dir, hits: map[string]int{}, conns: map[string]bool{}}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	f, err := remote.NewHTTP(ts.URL+"/pub", remote.Options{Timeout: 500 * time.Millisecond, Backoff: 10 * time.Millisecond,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	src := layout.NewSource(f, layout.SourceOptions{Refetches: true, Log: slog.New(slog.DiscardHandler)})
	// Room for every chunk, so that TestReadOverHTTP can ask each object
	// to be fetched once: with 1 MiB, big.txt pushes out a small file's
	// chunk that it also uses as a reference.
	o, err := store.NewObjects(src, 8<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if prefetch {
		src.Prefetch(o)
	}
	return srv, o, f
}

func view(t *testing.T, o *store.Objects) *backend.View {
	v, err := backend.OpenRoot(context.Background(), o, store.Ref{Name: "t", Version: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadOverHTTP(t *testing.T) {
	srv, o, _ := start(t)
	v := view(t, o)
	for p, want := range files {
		got, err := v.FS().ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", p, len(got), err)
		}
	}
	for p, n := range srv.hits {
		if strings.Contains(p, "/objects/") && n != 1 {
			t.Errorf("%s fetched %d times", p, n)
		}
	}
	// big.txt's sealed listing names its chunk list: no probe for the
	// file as one chunk first.
	if n := srv.count("/pub/" + chunkKey(t, files["big.txt"])); n != 0 {
		t.Errorf("multi-chunk big.txt probed %d times as one chunk", n)
	}
	// Prefetching has up to layout's 16 requests in flight besides the
	// reader's own; beyond that, connections are reused.
	requests := 0
	for _, n := range srv.hits {
		requests += n
	}
	if len(srv.conns) > 17 || len(srv.conns)*2 > requests {
		t.Errorf("%d connections for %d requests of one reader: want them reused", len(srv.conns), requests)
	}
}

func chunkKey(t *testing.T, content []byte) string {
	return layout.Key(layout.Chunk, hash.Sum(content))
}

// TestDamagedCacheIsRefetched: a chunk, a listing or a chunk list
// damaged on the way is fetched once more with no-cache, and the right
// bytes come back.
func TestDamagedCacheIsRefetched(t *testing.T) {
	for _, kind := range []layout.Kind{layout.Chunk, layout.Listing, layout.ChunkList} {
		// Without packs and trees, whose copies would serve the objects.
		srv, o, _ := startDir(t, publishedWith(t, files, push.Options{NoPacks: true}), false)
		root, err := o.Root(context.Background(), "t", "1")
		if err != nil {
			t.Fatal(err)
		}
		key := map[layout.Kind]string{
			layout.Chunk:     chunkKey(t, files["small.txt"]),
			layout.Listing:   layout.Key(layout.Listing, root.Top.Hash),
			layout.ChunkList: layout.Key(layout.ChunkList, hash.Sum(files["big.txt"])),
		}[kind]
		srv.damage = key
		v := view(t, o)
		for p, want := range files {
			if got, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s damaged: %s: %d bytes, %v", key, p, len(got), err)
			}
		}
		if n := srv.hits["/pub/"+key]; n != 2 {
			t.Errorf("damaged %s fetched %d times, want 2", key, n)
		}
	}
}

// TestDamagedOriginFails: an object damaged at the origin fails with
// ErrCorrupt after one refetch; nothing wrong is returned.
func TestDamagedOriginFails(t *testing.T) {
	srv, o, _ := startDir(t, publishedWith(t, files, push.Options{NoPacks: true}), false) // no pack's copy
	srv.damage, srv.damageOrigin = chunkKey(t, files["small.txt"]), true
	v := view(t, o)
	if got, err := v.FS().ReadFile("small.txt"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("read: %q, %v; want ErrCorrupt", got, err)
	}
	if n := srv.hits["/pub/"+srv.damage]; n != 2 {
		t.Errorf("damaged object fetched %d times, want 2", n)
	}
	if _, err := v.FS().ReadFile("d/e.txt"); err != nil {
		t.Errorf("healthy file: %v", err)
	}
}

// TestRetriesAndTimeouts: server errors are retried with backoff; a
// server that never answers fails the read within the timeout; a missing
// object is not retried.
func TestRetriesAndTimeouts(t *testing.T) {
	srv, o, f := start(t)
	srv.unavailable = 2
	if _, err := o.Roots(context.Background()); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	if _, err := f.Fetch(context.Background(), "objects/chunk/00/"+strings.Repeat("0", 62), 100, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if n := srv.hits["/pub/objects/chunk/00/"+strings.Repeat("0", 62)]; n != 1 {
		t.Errorf("missing object asked %d times", n)
	}
	v := view(t, o)
	srv.hang = true
	start := time.Now()
	_, err := v.FS().ReadFile("big.txt")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read from a hung server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hung server failed the read after %v", d)
	}
}

// TestForbiddenIsMissing: a bucket read without s3:ListBucket answers 403
// AccessDenied, not 404, for a key that is not there. For an object that
// is a missing object, not retried: a root published without its tree
// object (asked for at its first listing) reads. A 403 for the index is
// an error that says 403.
func TestForbiddenIsMissing(t *testing.T) {
	srv, o, f := startDir(t, publishedWith(t, files, push.Options{NoPacks: true}), false)
	srv.forbidMissing = true
	v := view(t, o)
	for p, want := range files {
		if got, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", p, len(got), err)
		}
	}
	root, err := o.Root(context.Background(), "t", "1")
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.hits["/pub/"+layout.Key(layout.Tree, root.Top.Hash)]; n != 1 {
		t.Errorf("the missing tree asked %d times, want 1", n)
	}
	missing := "objects/chunk/00/" + strings.Repeat("0", 62)
	if _, err := f.Fetch(context.Background(), missing, 100, false); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "403") {
		t.Errorf("object answered 403: %v, want ErrNotFound naming 403", err)
	}

	srv, o, _ = start(t)
	srv.forbidIndex = true
	_, err = o.Roots(context.Background())
	if err == nil || errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "403 Forbidden") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("index answered 403: %v, want an error naming 403", err)
	}
	t.Logf("index answered 403: %v", err)
	if n := srv.hits["/pub/"+layout.IndexKey]; n != 1 {
		t.Errorf("index answered 403 asked %d times", n)
	}
}

// TestFailsFastWhileDown: once a request has failed every attempt, the
// next ones are tried once until the remote answers again, and then get
// their retries back.
func TestFailsFastWhileDown(t *testing.T) {
	ctx := context.Background()
	srv, _, f := start(t)
	key := layout.IndexKey
	path := "/pub/" + key
	fetch := func(want bool) int {
		t.Helper()
		before := srv.count(path)
		_, err := f.Fetch(ctx, key, 1<<20, false)
		if (err == nil) != want {
			t.Fatalf("fetch: %v, want success %v", err, want)
		}
		return srv.count(path) - before
	}
	srv.mu.Lock()
	srv.unavailable = 1000
	srv.mu.Unlock()
	if n := fetch(false); n != 3 {
		t.Errorf("first failing fetch asked %d times, want 3 (every attempt)", n)
	}
	if n := fetch(false); n != 1 {
		t.Errorf("fetch while the remote is down asked %d times, want 1", n)
	}
	srv.mu.Lock()
	srv.unavailable = 0
	srv.mu.Unlock()
	if n := fetch(true); n != 1 {
		t.Errorf("fetch once the remote answers asked %d times, want 1", n)
	}
	srv.mu.Lock()
	srv.unavailable = 1000
	srv.mu.Unlock()
	if n := fetch(false); n != 3 {
		t.Errorf("failing fetch after the remote answered asked %d times, want 3 again", n)
	}
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// countPrefix is how many requests asked for paths beginning with prefix.
func (s *server) countPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// manyFiles is a directory of 30 small files and a subdirectory.
func manyFiles() map[string][]byte {
	many := map[string][]byte{}
	for i := range 30 {
		many[fmt.Sprintf("d/f%02d", i)] = []byte(fmt.Sprintf("small file %d", i))
	}
	many["d/sub/x"], many["d/sub/z"], many["e/y"] = []byte("x"), []byte("z"), []byte("y")
	return many
}

// walk returns the node at p.
func walk(t *testing.T, v *backend.View, p string) *backend.Node {
	t.Helper()
	n, err := v.Walk(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPackOverHTTP: opening a directory's first file fetches its pack,
// once, and its other files then ask the server for nothing; the packs
// of its subdirectories are fetched ahead.
func TestPackOverHTTP(t *testing.T) {
	many := manyFiles()
	srv, o, _ := startWith(t, many, true)
	v := view(t, o)
	d, sub := walk(t, v, "d"), walk(t, v, "d/sub")
	for i := range 30 {
		p := fmt.Sprintf("d/f%02d", i)
		if b, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(b, many[p]) {
			t.Fatalf("%s: %q, %v", p, b, err)
		}
		if n := srv.count("/pub/" + chunkKey(t, many[p])); n != 0 {
			t.Errorf("%s's chunk fetched %d times", p, n)
		}
	}
	if n := srv.count("/pub/" + layout.Key(layout.Pack, d.Hash)); n != 1 {
		t.Errorf("d's pack fetched %d times", n)
	}
	subPack := "/pub/" + layout.Key(layout.Pack, sub.Hash)
	for deadline := time.Now().Add(5 * time.Second); srv.count(subPack) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("d/sub's pack was not fetched ahead")
		}
	}
	for _, p := range []string{"d/sub/x", "d/sub/z"} {
		if b, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(b, many[p]) {
			t.Fatalf("%s: %q, %v", p, b, err)
		}
		if n := srv.count("/pub/" + chunkKey(t, many[p])); n != 0 {
			t.Errorf("%s's chunk fetched %d times", p, n)
		}
	}
	if n := srv.count(subPack); n != 1 {
		t.Errorf("d/sub's pack fetched %d times", n)
	}
}

// TestTreeOverHTTP: a walk of a root published with its tree object
// fetches that object once and no listing on its own; a tree damaged on
// the way still gives the right listings: the member that fails its
// address is fetched alone from the origin.
func TestTreeOverHTTP(t *testing.T) {
	deep := map[string][]byte{"a/b/c/x": []byte("x"), "a/b/y": []byte("y"), "d/e/f/g/z": []byte("z"), "top": []byte("t")}
	for _, damaged := range []bool{false, true} {
		srv, o, _ := startWith(t, deep, true)
		v := view(t, o)
		root, err := o.Root(context.Background(), "t", "1")
		if err != nil {
			t.Fatal(err)
		}
		treeKey := layout.Key(layout.Tree, root.Top.Hash)
		if damaged {
			srv.damage = treeKey
		}
		dirs := 0
		err = fs.WalkDir(v.FS(), ".", func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				dirs++
				return nil
			}
			if b, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(b, deep[p]) {
				t.Errorf("%s: %q, %v", p, b, err)
			}
			return nil
		})
		if err != nil || dirs != 8 {
			t.Fatalf("walk (damaged %v): %d directories, %v", damaged, dirs, err)
		}
		if n := srv.count("/pub/" + treeKey); n != 1 {
			t.Errorf("tree fetched %d times (damaged %v)", n, damaged)
		}
		if n := srv.countPrefix("/pub/objects/dir/"); n != map[bool]int{false: 0, true: 1}[damaged] {
			t.Errorf("%d listings fetched on their own (damaged %v)", n, damaged)
		}
	}
}

// TestPackHoldsMultiChunkFiles: a directory's pack holds the chunks of
// its multi-chunk files and of its one-chunk files over PackFileMax too,
// after its small files: reading them makes no request for a chunk, and
// one for the big file's chunk list.
func TestPackHoldsMultiChunkFiles(t *testing.T) {
	var big bytes.Buffer
	for i := range 40000 {
		fmt.Fprintf(&big, "line %d of a file of several chunks\n", i*7919%100003)
	}
	one := bytes.Repeat([]byte("one chunk over PackFileMax. "), (layout.PackFileMax+4096)/28)
	files := map[string][]byte{"d/a": []byte("small"), "d/big": big.Bytes(), "d/one": one}
	srv, o, _ := startWith(t, files, true)
	v := view(t, o)
	for _, p := range []string{"d/a", "d/big", "d/one"} {
		if b, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(b, files[p]) {
			t.Fatalf("%s: %d bytes, %v", p, len(b), err)
		}
	}
	f, err := o.File(context.Background(), hash.Sum(files["d/big"]))
	if err != nil || len(f.List.Chunks) < 3 {
		t.Fatalf("d/big: want several chunks: %v", err)
	}
	if n := srv.countPrefix("/pub/objects/chunk/"); n != 0 {
		t.Errorf("%d chunks fetched on their own", n)
	}
	if n := srv.countPrefix("/pub/objects/pack/"); n != 1 {
		t.Errorf("%d packs fetched, want d's", n)
	}
	if n := srv.countPrefix("/pub/objects/list/"); n != 1 {
		t.Errorf("%d chunk lists fetched, want d/big's", n)
	}
	if f, err := o.File(context.Background(), hash.Sum(one)); err != nil || len(f.List.Chunks) != 1 {
		t.Errorf("d/one: want one chunk: %v", err)
	}
}

// TestPrefetchAsksForListsAtOnce: a multi-chunk file prefetched after an
// opened one (a layout without packs) has its chunk list asked for at
// once, as its listing says it has one: no probe for it as one chunk.
func TestPrefetchAsksForListsAtOnce(t *testing.T) {
	var b bytes.Buffer
	for i := range 6000 {
		fmt.Fprintf(&b, "line %d of a file of a few chunks\n", i*7919%100003)
	}
	files := map[string][]byte{"d/a": []byte("small"), "d/b": b.Bytes()}
	srv, o, _ := startDir(t, publishedWith(t, files, push.Options{NoPacks: true}), false)
	v := view(t, o)
	if got, err := v.FS().ReadFile("d/a"); err != nil || !bytes.Equal(got, files["d/a"]) {
		t.Fatalf("d/a: %q, %v", got, err)
	}
	list := "/pub/" + layout.Key(layout.ChunkList, hash.Sum(files["d/b"]))
	for deadline := time.Now().Add(5 * time.Second); srv.count(list) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("d/b was not prefetched")
		}
	}
	if n := srv.count("/pub/" + chunkKey(t, files["d/b"])); n != 0 {
		t.Errorf("d/b probed %d times as one chunk", n)
	}
	if got, err := v.FS().ReadFile("d/b"); err != nil || !bytes.Equal(got, files["d/b"]) {
		t.Fatalf("d/b: %d bytes, %v", len(got), err)
	}
}

// TestPrefetch: listing a directory fetches its subdirectories' listings
// in the background, and opening a file fetches the next files of its
// directory (a layout without packs); reading them then asks the server
// for nothing more.
func TestPrefetch(t *testing.T) {
	many := manyFiles()
	srv, o, _ := startDir(t, publishedWith(t, many, push.Options{NoPacks: true}), true)
	v := view(t, o)
	ctx := context.Background()
	d, sub := walk(t, v, "d"), walk(t, v, "d/sub")
	subKey := "/pub/" + layout.Key(layout.Listing, sub.Hash)
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not prefetched", what)
			}
		}
	}
	eventually("d/sub's listing", func() bool { return srv.count(subKey) == 1 })
	if _, err := v.ReadDir(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := v.FS().ReadFile("d/f00"); err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return "/pub/" + chunkKey(t, many[fmt.Sprintf("d/f%02d", i)]) }
	eventually("d/f01…f16", func() bool {
		for i := 1; i <= 16; i++ {
			if srv.count(key(i)) == 0 {
				return false
			}
		}
		return true
	})
	for i := 1; i <= 16; i++ {
		if b, err := v.FS().ReadFile(fmt.Sprintf("d/f%02d", i)); err != nil || !bytes.Equal(b, many[fmt.Sprintf("d/f%02d", i)]) {
			t.Fatalf("d/f%02d: %q, %v", i, b, err)
		}
		if n := srv.count(key(i)); n != 1 {
			t.Errorf("d/f%02d fetched %d times", i, n)
		}
	}
	if srv.count(subKey) != 1 {
		t.Errorf("d/sub's listing fetched %d times", srv.count(subKey))
	}
}

// TestPrefetchEveryLevel: a walk down a chain of directories finds every
// level read ahead of it, whether the level above was fetched or read
// ahead itself, and no listing is fetched twice.
func TestPrefetchEveryLevel(t *testing.T) {
	files := map[string][]byte{"a/b/c/d/e/f/x": []byte("deep")}
	srv, o, _ := startDir(t, publishedWith(t, files, push.Options{NoPacks: true}), true) // no tree
	v := view(t, o)
	ctx := context.Background()
	path := ""
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		path = strings.TrimPrefix(path+"/"+name, "/")
		n, err := v.Walk(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		key := "/pub/" + layout.Key(layout.Listing, n.Hash)
		for deadline := time.Now().Add(5 * time.Second); srv.count(key) == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s's listing was not read ahead", path)
			}
		}
		if _, err := v.ReadDir(ctx, n); err != nil {
			t.Fatal(err)
		}
		if c := srv.count(key); c != 1 {
			t.Errorf("%s's listing fetched %d times", path, c)
		}
	}
}

// TestIndexKeptWhileDown: once the index is known, a remote that stops
// answering leaves the roots as they were.
func TestIndexKeptWhileDown(t *testing.T) {
	srv, _, f := start(t)
	src := layout.NewSource(f, layout.SourceOptions{IndexTTL: time.Nanosecond, Log: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	if _, err := src.Roots(ctx); err != nil {
		t.Fatal(err)
	}
	srv.unavailable = 1000
	if roots, err := src.Roots(ctx); err != nil || len(roots) != 1 {
		t.Fatalf("roots with the remote down: %v, %v", roots, err)
	}
}

// waitFor waits up to 5 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// TestPackOfTwinFile: opening a file whose content is decoded already (a
// twin of one read in another directory) still fetches its directory's
// pack, for the files after it.
func TestPackOfTwinFile(t *testing.T) {
	files := map[string][]byte{"a/x": []byte("twin"), "b/x": []byte("twin"), "b/y": []byte("only in b")}
	srv, o, _ := startWith(t, files, true)
	v := view(t, o)
	if b, err := v.FS().ReadFile("a/x"); err != nil || string(b) != "twin" {
		t.Fatalf("a/x: %q, %v", b, err)
	}
	bDir := walk(t, v, "b")
	f, err := v.FS().Open("b/x")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n := srv.count("/pub/" + layout.Key(layout.Pack, bDir.Hash)); n != 1 {
		t.Errorf("opening b/x fetched b's pack %d times, want 1", n)
	}
	if b, err := v.FS().ReadFile("b/y"); err != nil || !bytes.Equal(b, files["b/y"]) {
		t.Fatalf("b/y: %q, %v", b, err)
	}
	if n := srv.count("/pub/" + chunkKey(t, files["b/y"])); n != 0 {
		t.Errorf("b/y's chunk fetched %d times on its own", n)
	}
}

// TestPacksAheadOfAWalk: once a file has been read, a listing used has
// its subdirectories' packs fetched ahead, though it has no file of its
// own; every one of many is, none dropped. Listings used before any file
// is read (ls -lR, find) fetch no pack.
func TestPacksAheadOfAWalk(t *testing.T) {
	files := map[string][]byte{"first": []byte("read first")}
	for i := range 40 {
		files[fmt.Sprintf("p/q%02d/f", i)] = fmt.Appendf(nil, "file %d", i)
	}
	srv, o, _ := startWith(t, files, true)
	v := view(t, o)
	if _, err := v.ReadDir(context.Background(), walk(t, v, "p")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := srv.countPrefix("/pub/objects/pack/"); n != 0 {
		t.Errorf("listing p before any read fetched %d packs", n)
	}
	if b, err := v.FS().ReadFile("first"); err != nil || string(b) != "read first" {
		t.Fatalf("first: %q, %v", b, err)
	}
	o.Dir(context.Background(), walk(t, v, "p").Hash) // as the walk's next readdir
	waitFor(t, "the 40 packs below p", func() bool { return srv.countPrefix("/pub/objects/pack/") >= 41 })
	for i := range 40 {
		q := walk(t, v, fmt.Sprintf("p/q%02d", i))
		if n := srv.count("/pub/" + layout.Key(layout.Pack, q.Hash)); n != 1 {
			t.Errorf("p/q%02d's pack fetched %d times", i, n)
		}
	}
}
