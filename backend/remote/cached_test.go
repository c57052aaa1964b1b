package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/cache"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// cachedReader reads the layout served at url through the local cache in
// dir, reading ahead as a mount does; end flushes the Source and closes
// the cache, as an unmount does.
func cachedReader(t *testing.T, url, dir string) (o *store.Objects, end func()) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	f, err := remote.NewHTTP(url+"/pub", remote.Options{Timeout: 500 * time.Millisecond, Backoff: 10 * time.Millisecond, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(dir, cache.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	src := layout.NewSource(c.Wrap(f, url), layout.SourceOptions{Refetches: true, Log: quiet})
	if o, err = store.NewObjects(src, 8<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	src.Prefetch(o)
	return o, func() {
		src.Flush()
		c.Close()
	}
}

// readAll reads every file of root t@latest through o and checks it.
func readAll(t *testing.T, o *store.Objects, want map[string][]byte) {
	t.Helper()
	v := view(t, o)
	n := 0
	err := fs.WalkDir(v.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		n++
		if b, err := v.FS().ReadFile(p); err != nil || !bytes.Equal(b, want[p]) {
			t.Errorf("%s: %q, %v", p, b, err)
		}
		return nil
	})
	if err != nil || n != len(want) {
		t.Fatalf("walk: %d files of %d, %v", n, len(want), err)
	}
}

// servedMany serves manyFiles, published, over HTTP; dir is for a cache.
func servedMany(t *testing.T) (many map[string][]byte, srv *server, ts *httptest.Server, dir string) {
	many = manyFiles()
	srv = &server{dir: published(t, many), hits: map[string]int{}, conns: map[string]bool{}}
	return many, srv, httptest.NewServer(srv), t.TempDir()
}

// cached reports whether the cache in dir holds object key.
func cached(dir, key string) bool {
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
	return err == nil
}

// filesUnder counts the files under the cache's objects/<kind>/.
func filesUnder(t *testing.T, dir, kind string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(dir, "objects", kind), func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// TestCacheKeepsPacksWhole: a cold walk through the local cache keeps
// each pack and the tree as one file each, not their members one by one,
// once every member is verified; a reader started on that cache with the
// remote gone reads every file.
func TestCacheKeepsPacksWhole(t *testing.T) {
	many, _, ts, dir := servedMany(t)
	o, end := cachedReader(t, ts.URL, dir)
	readAll(t, o, many)
	v := view(t, o)
	d, sub := walk(t, v, "d"), walk(t, v, "d/sub")
	root, err := o.Root(context.Background(), "t", "1")
	if err != nil {
		t.Fatal(err)
	}
	end()
	for _, key := range []string{layout.Key(layout.Pack, d.Hash), layout.Key(layout.Pack, sub.Hash), layout.Key(layout.Tree, root.Top.Hash)} {
		if !cached(dir, key) {
			t.Errorf("%s is not cached", key)
		}
	}
	for i := range 30 {
		if p := fmt.Sprintf("d/f%02d", i); cached(dir, chunkKey(t, many[p])) {
			t.Errorf("%s's chunk is cached on its own too", p)
		}
	}
	if n := filesUnder(t, dir, "dir"); n != 0 {
		t.Errorf("%d listings cached on their own", n)
	}
	ts.Close()
	o, end = cachedReader(t, ts.URL, dir)
	defer end()
	readAll(t, o, many)
}

// TestCachedPackMemberDamaged: a member of a cached pack that fails
// verification is fetched alone from the origin, the right bytes come
// back, and the damaged pack leaves the cache.
func TestCachedPackMemberDamaged(t *testing.T) {
	many, srv, ts, dir := servedMany(t)
	defer ts.Close()
	o, end := cachedReader(t, ts.URL, dir)
	readAll(t, o, many)
	d := walk(t, view(t, o), "d")
	end()

	packKey := layout.Key(layout.Pack, d.Hash)
	p := filepath.Join(dir, filepath.FromSlash(packKey))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := layout.Decode(b, layout.Pack, d.Hash)
	if err != nil {
		t.Fatal(err)
	}
	victim := hash.Sum(many["d/f05"])
	damaged := false
	for i, m := range pk.Pack {
		if m.Hash == victim {
			data := bytes.Clone(m.Frame.Data)
			data[len(data)-1] ^= 1
			pk.Pack[i].Frame.Data = data
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("d/f05 is not in d's pack")
	}
	if err := os.WriteFile(p, layout.EncodePack(d.Hash, pk.Pack), 0o644); err != nil {
		t.Fatal(err)
	}

	before := srv.count("/pub/" + chunkKey(t, many["d/f05"]))
	o, end = cachedReader(t, ts.URL, dir)
	readAll(t, o, many)
	end()
	// Once, or twice when the read-ahead met the damaged copy too.
	if n := srv.count("/pub/"+chunkKey(t, many["d/f05"])) - before; n < 1 || n > 2 {
		t.Errorf("the damaged member was fetched %d times from the origin, want 1 or 2", n)
	}
	if cached(dir, packKey) {
		t.Error("the damaged pack is still cached")
	}
	if !cached(dir, chunkKey(t, many["d/f05"])) {
		t.Error("the member fetched again is not cached")
	}
}

// TestCachePartlyReadPack: a reader that reads one file of a directory
// has that file's chunk cached on its own, not the pack it did not
// verify whole; the file then reads with the remote gone.
func TestCachePartlyReadPack(t *testing.T) {
	many, _, ts, dir := servedMany(t)
	o, end := cachedReader(t, ts.URL, dir)
	v := view(t, o)
	if b, err := v.FS().ReadFile("d/f00"); err != nil || !bytes.Equal(b, many["d/f00"]) {
		t.Fatalf("d/f00: %q, %v", b, err)
	}
	d := walk(t, v, "d")
	end()
	if cached(dir, layout.Key(layout.Pack, d.Hash)) {
		t.Error("a pack read in part is cached")
	}
	if !cached(dir, chunkKey(t, many["d/f00"])) {
		t.Error("the file read is not cached")
	}
	ts.Close()
	o, end = cachedReader(t, ts.URL, dir)
	defer end()
	if b, err := view(t, o).FS().ReadFile("d/f00"); err != nil || !bytes.Equal(b, many["d/f00"]) {
		t.Fatalf("d/f00 with the remote gone: %q, %v", b, err)
	}
}
