package httplayout_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/httplayout"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/push"
)

func newStore(t *testing.T) *store.Store {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i, extra := range []string{"one", "two"} {
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "a.txt"), []byte("same in both"), 0o644)
		os.WriteFile(filepath.Join(src, "b.txt"), []byte("b in "+extra), 0o644) // the top has a pack
		os.WriteFile(filepath.Join(src, "big"), bytes.Repeat([]byte(extra+" chunks of text, "), 30000), 0o644)
		// One chunk above PackFileMax: in the top's pack, after the small files.
		os.WriteFile(filepath.Join(src, "one-chunk"), bytes.Repeat([]byte(extra), 70000), 0o644)
		// Only an empty file and a link: d has no pack.
		os.MkdirAll(filepath.Join(src, "d"), 0o755)
		os.WriteFile(filepath.Join(src, "d", extra), nil, 0o644)
		os.Symlink("../big", filepath.Join(src, "d", "link"))
		if _, err := ingest.Run(ctx, s, ingest.Options{Name: "t", Version: []string{"1", "2"}[i], Sources: []ingest.Source{{Dir: src}}}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// counter counts requests per path.
type counter struct {
	mu   sync.Mutex
	hits map[string]int
	next http.Handler
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.hits[r.URL.Path]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

// TestSameBytesAsPush: every file push writes is served with the same
// bytes, headers say immutable, and a reader over HTTP sees the roots.
func TestSameBytesAsPush(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	roots, _ := s.Roots(ctx)
	dir := t.TempDir()
	if _, err := push.Run(ctx, s.Objects, layout.NewDir(dir), roots, push.Options{}); err != nil {
		t.Fatal(err)
	}
	c := &counter{hits: map[string]int{}, next: httplayout.New(s.Objects, httplayout.Options{Log: slog.New(slog.DiscardHandler)})}
	ts := httptest.NewServer(c)
	defer ts.Close()
	n := 0
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() == "index.lock" {
			return err
		}
		key := filepath.ToSlash(p[len(dir)+1:])
		want, _ := os.ReadFile(p)
		resp, err := http.Get(ts.URL + "/" + key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Errorf("%s: %s, %d bytes, want the pushed %d bytes", key, resp.Status, len(got), len(want))
		}
		cc := resp.Header.Get("Cache-Control")
		if key == layout.IndexKey && cc != httplayout.IndexCache || key != layout.IndexKey && cc != httplayout.Immutable {
			t.Errorf("%s: Cache-Control %q", key, cc)
		}
		n++
		return nil
	})
	if n < 10 {
		t.Fatalf("only %d files compared", n)
	}
	for _, kind := range []string{"pack", "tree"} {
		if m, _ := filepath.Glob(filepath.Join(dir, "objects", kind, "*", "*")); len(m) != 1 {
			t.Errorf("%d %s objects pushed, want t@2's top's", len(m), kind)
		}
	}
	// A listing without a pack (d holds an empty file and a link) has none
	// to serve.
	r2, _ := s.Root(ctx, "t", "2")
	top, _ := s.Dir(ctx, r2.Top.Hash)
	sub, _ := top.Lookup("d")
	if resp := do(t, "GET", ts.URL+"/"+layout.Key(layout.Pack, sub.Hash)); resp.StatusCode != 404 {
		t.Errorf("pack of a listing without one: %s", resp.Status)
	}

	// A reader over HTTP.
	f, err := remote.NewHTTP(ts.URL, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := store.NewObjects(layout.NewSource(f, layout.SourceOptions{Refetches: true}), 0, 0)
	v, err := backend.OpenRoot(ctx, o, store.Ref{Name: "t", Version: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := v.FS().ReadFile("one-chunk"); err != nil || !bytes.Equal(b, bytes.Repeat([]byte("two"), 70000)) {
		t.Fatalf("one-chunk: %d bytes, %v", len(b), err)
	}
	if b, err := v.FS().ReadFile("d/two"); err != nil || len(b) != 0 {
		t.Fatalf("d/two: %d bytes, %v", len(b), err)
	}
}

func do(t *testing.T, method, url string, hdr ...string) *http.Response {
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestMethodsAndRevalidation: writes get 405, HEAD works, ETags give 304,
// the index lists only the roots asked for, unknown names are 404, and
// basic auth is asked for when set.
func TestMethodsAndRevalidation(t *testing.T) {
	s := newStore(t)
	ref, _ := store.ParseRef("t@2", false)
	ts := httptest.NewServer(httplayout.New(s.Objects, httplayout.Options{Roots: []store.Ref{ref}, Log: slog.New(slog.DiscardHandler)}))
	defer ts.Close()
	for _, m := range []string{"PUT", "DELETE", "POST", "PROPFIND"} {
		if r := do(t, m, ts.URL+"/index.json"); r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %s", m, r.Status)
		}
	}
	r := do(t, "HEAD", ts.URL+"/index.json")
	etag := r.Header.Get("ETag")
	if r.StatusCode != 200 || etag == "" || r.ContentLength <= 0 {
		t.Fatalf("HEAD index: %s %q %d", r.Status, etag, r.ContentLength)
	}
	if r := do(t, "GET", ts.URL+"/index.json", "If-None-Match", etag); r.StatusCode != 304 {
		t.Errorf("revalidated index: %s", r.Status)
	}
	root, err := s.Root(context.Background(), "t", "2")
	if err != nil {
		t.Fatal(err)
	}
	key := layout.Key(layout.Listing, root.Top.Hash)
	r = do(t, "GET", ts.URL+"/"+key)
	if r.StatusCode != 200 || r.Header.Get("ETag") != `"`+strings.ReplaceAll(key[len("objects/dir/"):], "/", "")+`"` {
		t.Fatalf("listing: %s, ETag %q", r.Status, r.Header.Get("ETag"))
	}
	if r := do(t, "GET", ts.URL+"/"+key, "If-None-Match", r.Header.Get("ETag")); r.StatusCode != 304 {
		t.Errorf("revalidated object: %s", r.Status)
	}
	for _, p := range []string{"/", "/objects/", "/" + layout.Key(layout.Chunk, root.Top.Hash), "/" + key + "x", "/../etc/passwd"} {
		if r := do(t, "GET", ts.URL+p); r.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", p, r.Status)
		}
	}

	// The fetcher revalidates the index with If-None-Match.
	f, _ := remote.NewHTTP(ts.URL, remote.Options{})
	src := layout.NewSource(f, layout.SourceOptions{IndexTTL: 1})
	for range 2 {
		roots, err := src.Roots(context.Background())
		if err != nil || len(roots) != 1 || roots[0].ID() != "t@2" {
			t.Fatalf("roots over HTTP: %v, %v", roots, err)
		}
	}
}

// TestSignedIndex: with a key, the index is signed; it keeps its bytes
// (and ETag) while the roots do not change, and is signed again, later,
// when they do; readers trusting the key read it, others refuse it.
func TestSignedIndex(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	key, _ := layout.GenerateKey()
	other, _ := layout.GenerateKey()
	pub := key.Public().(ed25519.PublicKey)
	ts := httptest.NewServer(httplayout.New(s.Objects, httplayout.Options{Sign: key, Log: slog.New(slog.DiscardHandler)}))
	defer ts.Close()
	get := func() ([]byte, string) {
		t.Helper()
		resp, err := http.Get(ts.URL + "/index.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b, resp.Header.Get("ETag")
	}
	b1, tag1 := get()
	x1, err := layout.ReadIndex(b1, []ed25519.PublicKey{pub})
	if err != nil || len(x1.Roots) != 2 {
		t.Fatalf("signed index: %d roots, %v", len(x1.Roots), err)
	}
	if b, tag := get(); !bytes.Equal(b, b1) || tag != tag1 {
		t.Error("the signed index changed while its roots did not")
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o644)
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: "t", Version: "3", Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	b2, tag2 := get()
	x2, err := layout.ReadIndex(b2, []ed25519.PublicKey{pub})
	if err != nil || len(x2.Roots) != 3 || !x2.Published.After(x1.Published) || tag2 == tag1 {
		t.Fatalf("index after a new root: %d roots, published %s after %s, %v", len(x2.Roots), x2.Published, x1.Published, err)
	}

	for _, k := range []ed25519.PrivateKey{key, other} {
		f, err := remote.NewHTTP(ts.URL, remote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		src := layout.NewSource(f, layout.SourceOptions{Refetches: true, Trust: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}})
		roots, err := src.Roots(ctx)
		if k.Equal(key) && (err != nil || len(roots) != 3) {
			t.Errorf("trusting the signing key: %d roots, %v", len(roots), err)
		}
		if !k.Equal(key) && !errors.Is(err, layout.ErrUntrusted) {
			t.Errorf("trusting another key: %v", err)
		}
	}
}
