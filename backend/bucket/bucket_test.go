package bucket

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/push"
)

// fakeS3 is an in-process S3 server, path-style, without authentication:
// GET, HEAD and PUT of objects with ETags and If-Match/If-None-Match.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte // "/bucket/key"
	reqs    []*http.Request
	// fail, if set, may answer a request instead (true: answered).
	fail func(w http.ResponseWriter, r *http.Request) bool
	// noConditional answers 501 to conditional writes.
	noConditional bool
	// page is how many keys a listing answers at most (default 1000).
	page int
}

// list answers ListObjectsV2 of bucket (path /bucket), in pages.
func (f *fakeS3) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucketPath := strings.TrimSuffix(r.URL.Path, "/") + "/"
	prefix := bucketPath + q.Get("prefix")
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) && k > bucketPath+q.Get("continuation-token") {
			keys = append(keys, strings.TrimPrefix(k, bucketPath))
		}
	}
	slices.Sort(keys)
	page := f.page
	if page == 0 {
		page = 1000
	}
	truncated := len(keys) > page
	if truncated {
		keys = keys[:page]
	}
	w.Header().Set("Content-Type", "application/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><Prefix>%s</Prefix><KeyCount>%d</KeyCount><IsTruncated>%v</IsTruncated>`, q.Get("prefix"), len(keys), truncated)
	if truncated {
		fmt.Fprintf(w, "<NextContinuationToken>%s</NextContinuationToken>", keys[len(keys)-1])
	}
	for _, k := range keys {
		fmt.Fprintf(w, "<Contents><Key>%s</Key><Size>1</Size></Contents>", k)
	}
	fmt.Fprint(w, "</ListBucketResult>")
}

func etag(b []byte) string { s := md5.Sum(b); return `"` + hex.EncodeToString(s[:]) + `"` }

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s from the fake</Message></Error>", code, code)
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	fail := f.fail
	f.mu.Unlock()
	if fail != nil && fail(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, exists := f.objects[r.URL.Path]
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
		f.list(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !exists {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		w.Header().Set("ETag", etag(cur))
		if m := r.Header.Get("If-None-Match"); m != "" && m == etag(cur) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(cur)))
		if r.Method == http.MethodGet {
			w.Write(cur)
		}
	case http.MethodPut:
		im, inm := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
		if (im != "" || inm != "") && f.noConditional {
			s3Error(w, http.StatusNotImplemented, "NotImplemented")
			return
		}
		if (inm == "*" && exists) || (im != "" && (!exists || im != etag(cur))) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		f.objects[r.URL.Path] = body
		w.Header().Set("ETag", etag(body))
	default:
		s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
}

// setFail sets fail.
func (f *fakeS3) setFail(fn func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

// object returns the object at path, and put sets it.
func (f *fakeS3) object(path string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[path]
}

func (f *fakeS3) put(path string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[path] = b
}

// sent returns the requests so far and forgets them.
func (f *fakeS3) sent() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

// requests returns "METHOD PATH" of each request so far.
func (f *fakeS3) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		out = append(out, r.Method+" "+r.URL.Path)
	}
	return out
}

// env points the SDK at endpoint with test credentials, and away from this
// machine's config files and CA bundle.
func env(t *testing.T, endpoint string) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_REGION": "", "AWS_PROFILE": "", "AWS_CA_BUNDLE": "", "AWS_ENDPOINT_URL_S3": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	os.Unsetenv("AWS_ENDPOINT_URL_S3") // set but empty would still count
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFake(t *testing.T) (*fakeS3, *httptest.Server) {
	f := &fakeS3{objects: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	env(t, srv.URL)
	return f, srv
}

func open(t *testing.T, url string, opt Options) *Bucket {
	t.Helper()
	if opt.Log == nil {
		opt.Log = quiet()
	}
	if opt.Backoff == 0 {
		opt.Backoff = time.Millisecond
	}
	b, err := Open(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"s3://bucket":            {"bucket", ""},
		"s3://bucket/":           {"bucket", ""},
		"s3://my.bucket-1/a/b/":  {"my.bucket-1", "a/b/"},
		"s3://my.bucket-1//a/b/": {"", ""},
		"s3://Bucket/a":          {"", ""},
		"s3://ab/a":              {"", ""},
		"s3://bucket/a/../b":     {"", ""},
		"s3://bucket/a?x=1":      {"", ""},
		"s3://user@bucket/a":     {"", ""},
		"s3://bucket:9000/a":     {"", ""},
		"http://bucket/a":        {"", ""},
	} {
		b, p, err := parseURL(in)
		if want[0] == "" {
			if err == nil {
				t.Errorf("%s: accepted as %q %q", in, b, p)
			}
			continue
		}
		if err != nil || b != want[0] || p != want[1] {
			t.Errorf("%s: %q %q %v, want %q %q", in, b, p, err, want[0], want[1])
		}
	}
}

// TestRoundTrip: objects go under the prefix, path-style, with caching
// headers and no checksum headers (the SDK's default would add them); a
// missing key is ErrNotFound, a missing bucket a clear permanent error.
func TestRoundTrip(t *testing.T) {
	f, _ := newFake(t)
	b := open(t, "s3://bkt/pub/trees", Options{})
	ctx := context.Background()
	key := "objects/chunk/ab/abcd"
	if ok, err := b.Has(ctx, key); ok || err != nil {
		t.Fatalf("Has before Put: %v %v", ok, err)
	}
	if err := b.Put(ctx, key, []byte("frame")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Fetch(ctx, key, 100, false)
	if err != nil || string(got) != "frame" {
		t.Fatalf("Fetch: %q %v", got, err)
	}
	if _, err := b.Fetch(ctx, "objects/chunk/cd/cdef", 100, false); !layout.IsNotFound(err) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	if ok, err := b.Has(ctx, layout.IndexKey); ok || err != nil {
		t.Fatalf("Has(index): %v %v", ok, err)
	}
	// The first Has lists objects/chunk/ab/; the second is answered from
	// that listing, taken before the Put (another push might have added
	// the object: Put's If-None-Match covers it).
	want := []string{"GET /bkt", "PUT /bkt/pub/trees/" + key,
		"GET /bkt/pub/trees/" + key, "GET /bkt/pub/trees/objects/chunk/cd/cdef", "HEAD /bkt/pub/trees/index.json"}
	if got := f.requests(); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	reqs := f.sent()
	if l := reqs[0].URL.Query(); l.Get("list-type") != "2" || l.Get("prefix") != "pub/trees/objects/chunk/ab/" {
		t.Errorf("listing %v", l)
	}
	put := reqs[1]
	for h := range put.Header {
		if strings.Contains(strings.ToLower(h), "checksum") {
			t.Errorf("PUT has checksum header %s", h)
		}
	}
	if put.Header.Get("If-None-Match") != "*" || put.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("PUT headers: %v", put.Header)
	}
	if !strings.HasPrefix(put.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=test/") {
		t.Errorf("PUT not signed with the environment's key: %q", put.Header.Get("Authorization"))
	}

	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
		return true
	})
	if _, err := b.Fetch(ctx, key, 100, false); err == nil || layout.IsNotFound(err) || !strings.Contains(err.Error(), "no such bucket") {
		t.Errorf("missing bucket: %v", err)
	}
}

// TestHasFromListings: Has lists each fan-out directory once, page by
// page, and answers from it; keys outside the prefix or the directory do
// not count. A listing that fails transiently is taken again at the next
// question; a server that refuses listings gets a HEAD per object.
func TestHasFromListings(t *testing.T) {
	f, _ := newFake(t)
	f.page = 2
	for _, k := range []string{"/bkt/p/objects/dir/ab/1", "/bkt/p/objects/dir/ab/2", "/bkt/p/objects/dir/ab/3",
		"/bkt/p/objects/dir/ab/4", "/bkt/p/objects/dir/ab/5", "/bkt/p/objects/dir/cd/6", "/bkt/q/objects/dir/ab/7"} {
		f.put(k, []byte("x"))
	}
	b := open(t, "s3://bkt/p", Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 { // concurrent first questions share one listing
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, want := range map[string]bool{"1": true, "5": true, "6": false, "7": false, "8": false} {
				if ok, err := b.Has(ctx, "objects/dir/ab/"+k); ok != want || err != nil {
					t.Errorf("Has(ab/%s) = %v, %v; want %v", k, ok, err, want)
				}
			}
		}()
	}
	wg.Wait()
	if got := f.requests(); len(got) != 3 || got[0] != "GET /bkt" {
		t.Errorf("requests %q, want 3 pages of one listing", got)
	}

	f.sent()
	var fails atomic.Int32
	fails.Store(3) // every attempt of one question
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if fails.Add(-1) >= 0 {
			s3Error(w, 503, "SlowDown")
			return true
		}
		return false
	})
	if _, err := b.Has(ctx, "objects/dir/cd/6"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("listing while the server fails: %v", err)
	}
	if ok, err := b.Has(ctx, "objects/dir/cd/6"); !ok || err != nil {
		t.Errorf("listing again: %v %v", ok, err)
	}

	var logged bytes.Buffer
	b = open(t, "s3://bkt/p", Options{Options: remote.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))}})
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("list-type") != "" {
			s3Error(w, 403, "AccessDenied")
			return true
		}
		return false
	})
	f.sent()
	for k, want := range map[string]bool{"1": true, "8": false} {
		if ok, err := b.Has(ctx, "objects/dir/ab/"+k); ok != want || err != nil {
			t.Errorf("without listings, Has(ab/%s) = %v, %v", k, ok, err)
		}
	}
	if got := f.requests(); len(got) != 3 || !strings.HasPrefix(got[1], "HEAD ") || !strings.HasPrefix(got[2], "HEAD ") {
		t.Errorf("requests %q, want a refused listing, then HEADs", got)
	}
	if n := strings.Count(logged.String(), "refused to list"); n != 1 {
		t.Errorf("%d warnings:\n%s", n, logged.String())
	}
}

// TestPutExisting: an object already there is left alone (412 is fine);
// a server without conditional writes gets HEAD then PUT, and a warning.
func TestPutExisting(t *testing.T) {
	f, _ := newFake(t)
	b := open(t, "s3://bkt", Options{})
	ctx := context.Background()
	f.put("/bkt/k", []byte("old"))
	if err := b.Put(ctx, "k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if string(f.object("/bkt/k")) != "old" {
		t.Error("an existing object was overwritten")
	}

	f.mu.Lock()
	f.noConditional = true
	f.mu.Unlock()
	var logged bytes.Buffer
	b = open(t, "s3://bkt", Options{Options: remote.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))}})
	f.sent()
	if err := b.Put(ctx, "k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "k2", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if string(f.object("/bkt/k")) != "old" || string(f.object("/bkt/k2")) != "v2" {
		t.Errorf("fallback: %q %q", f.object("/bkt/k"), f.object("/bkt/k2"))
	}
	want := []string{"PUT /bkt/k", "HEAD /bkt/k", "HEAD /bkt/k2", "PUT /bkt/k2"}
	if got := f.requests(); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	if n := strings.Count(logged.String(), "does not support conditional writes"); n != 1 {
		t.Errorf("%d warnings:\n%s", n, logged.String())
	}
}

// TestRetries: 5xx and 429 are tried again, up to Attempts; a server down
// or hanging is ErrUnavailable, quickly; 403 is not retried.
func TestRetries(t *testing.T) {
	f, srv := newFake(t)
	f.put("/bkt/k", []byte("data"))
	ctx := context.Background()
	var fails atomic.Int32
	fails.Store(2)
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if n := fails.Add(-1); n >= 0 {
			s3Error(w, []int{503, 429}[n%2], "SlowDown")
			return true
		}
		return false
	})
	b := open(t, "s3://bkt", Options{})
	if got, err := b.Fetch(ctx, "k", 10, false); err != nil || string(got) != "data" {
		t.Fatalf("after two failures: %q %v", got, err)
	}
	if n := len(f.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	f.sent()
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool { s3Error(w, 500, "InternalError"); return true })
	_, err := b.Fetch(ctx, "k", 10, false)
	if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "500 InternalError") {
		t.Errorf("500: %v", err)
	}
	if _, err := b.Has(ctx, "objects/chunk/ab/k"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Has on 500: %v", err)
	}
	// The first call tries three times; the server then counts as down
	// (remote.Outage), and the next call tries once.
	if n := len(f.requests()); n != 4 {
		t.Errorf("%d requests, want 3 and then 1", n)
	}

	f.sent()
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool { s3Error(w, 403, "AccessDenied"); return true })
	if _, err := b.Fetch(ctx, "k", 10, false); err == nil || errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "403 AccessDenied") {
		t.Errorf("403: %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("403 tried %d times", n)
	}

	block := make(chan struct{})
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool { <-block; return true })
	b = open(t, "s3://bkt", Options{Options: remote.Options{Timeout: 100 * time.Millisecond, Attempts: 2}})
	start := time.Now()
	_, err = b.Fetch(ctx, "k", 10, false)
	close(block)
	if !errors.Is(err, remote.ErrUnavailable) || time.Since(start) > 5*time.Second {
		t.Errorf("hanging server: %v after %v", err, time.Since(start))
	}

	srv.Close()
	if _, err := b.Fetch(ctx, "k", 10, false); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("server down: %v", err)
	}
}

// TestFetchBounds: an object larger than the limit is refused as corrupt,
// and a body cut short is retried.
func TestFetchBounds(t *testing.T) {
	f, _ := newFake(t)
	f.put("/bkt/k", bytes.Repeat([]byte("x"), 100))
	b := open(t, "s3://bkt", Options{})
	ctx := context.Background()
	if _, err := b.Fetch(ctx, "k", 99, false); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("over the limit: %v", err)
	}
	var cut atomic.Bool
	cut.Store(true)
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if !cut.Swap(false) {
			return false
		}
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("short"))
		return true
	})
	if got, err := b.Fetch(ctx, "k", 100, false); err != nil || len(got) != 100 {
		t.Errorf("after a short body: %d bytes, %v", len(got), err)
	}
}

// TestIndexRevalidated: the index is fetched again with If-None-Match,
// and a 304 gives the copy fetched before.
func TestIndexRevalidated(t *testing.T) {
	f, _ := newFake(t)
	f.put("/bkt/p/index.json", []byte("{}"))
	b := open(t, "s3://bkt/p", Options{})
	ctx := context.Background()
	for range 2 {
		if got, err := b.Fetch(ctx, layout.IndexKey, 100, false); err != nil || string(got) != "{}" {
			t.Fatalf("index: %q %v", got, err)
		}
	}
	if inm := f.sent()[1].Header.Get("If-None-Match"); inm != etag([]byte("{}")) {
		t.Errorf("second fetch If-None-Match %q", inm)
	}
}

// TestUpdateIndexConcurrent: concurrent updates through separate clients
// all survive: If-None-Match: * creates the index, If-Match replaces it,
// and a 412 makes an update start again from the new index.
func TestUpdateIndexConcurrent(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := open(t, "s3://bkt/p", Options{IndexAttempts: 50})
			errs <- b.UpdateIndex(ctx, func(old []byte) ([]byte, error) {
				time.Sleep(5 * time.Millisecond) // widen the race
				return append(old, fmt.Sprintf("root%d\n", i)...), nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	idx := string(f.object("/bkt/p/index.json"))
	for i := range n {
		if !strings.Contains(idx, fmt.Sprintf("root%d\n", i)) {
			t.Errorf("root%d lost: %q", i, idx)
		}
	}
	writes := 0
	first := true
	for _, r := range f.sent() {
		if r.Method != http.MethodPut {
			continue
		}
		if first && r.Header.Get("If-None-Match") != "*" {
			t.Errorf("the first write has If-None-Match %q", r.Header.Get("If-None-Match"))
		}
		if !first && r.Header.Get("If-Match") == "" && r.Header.Get("If-None-Match") == "" {
			t.Error("an unconditional index write")
		}
		first = false
		writes++
	}
	t.Logf("%d index writes for %d updates", writes, n)

	// An update that fails leaves the index alone.
	b := open(t, "s3://bkt/p", Options{})
	if err := b.UpdateIndex(ctx, func([]byte) ([]byte, error) { return nil, errors.New("refused") }); err == nil || err.Error() != "refused" {
		t.Errorf("failing update: %v", err)
	}
	if string(f.object("/bkt/p/index.json")) != idx {
		t.Error("a failed update changed the index")
	}
}

// TestUpdateIndexGivesUp: an index that keeps changing fails the update
// after IndexAttempts, not forever.
func TestUpdateIndexGivesUp(t *testing.T) {
	f, _ := newFake(t)
	f.put("/bkt/index.json", []byte("x"))
	b := open(t, "s3://bkt", Options{IndexAttempts: 3})
	err := b.UpdateIndex(context.Background(), func(old []byte) ([]byte, error) {
		f.put("/bkt/index.json", append(f.object("/bkt/index.json"), 'x')) // another push, first
		return []byte("mine"), nil
	})
	if err == nil || !strings.Contains(err.Error(), "replaced by others 3 times") {
		t.Errorf("err %v", err)
	}
}

// TestCABundle: AWS_CA_BUNDLE is loaded into this client's transport (a
// custom transport can make the SDK fail with "unsupported transport"):
// an https endpoint signed by the bundle's CA is reached; without the
// bundle it is refused once, not retried.
func TestCABundle(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{"/bkt/k": []byte("tls")}}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	env(t, srv.URL)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	t.Setenv("AWS_CA_BUNDLE", ca)
	b := open(t, "s3://bkt", Options{})
	if got, err := b.Fetch(context.Background(), "k", 10, false); err != nil || string(got) != "tls" {
		t.Fatalf("with the CA bundle: %q %v", got, err)
	}
	t.Setenv("AWS_CA_BUNDLE", "")
	b = open(t, "s3://bkt", Options{})
	if _, err := b.Fetch(context.Background(), "k", 10, false); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA bundle: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", filepath.Join(t.TempDir(), "missing.pem"))
	if _, err := Open(context.Background(), "s3://bkt", Options{}); err == nil || !strings.Contains(err.Error(), "AWS configuration") {
		t.Errorf("a missing CA bundle: %v", err)
	}
}

// forbidMissing makes f answer as S3 does to a client without
// s3:ListBucket: 403 AccessDenied for a listing and for a GET of a key
// that is not there, a bare 403 for a HEAD of one. Keys for which spare
// is true get the fake's usual answers.
func forbidMissing(f *fakeS3, spare func(path string) bool) {
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("list-type") != "" {
			s3Error(w, http.StatusForbidden, "AccessDenied")
			return true
		}
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || spare(r.URL.Path) || f.object(r.URL.Path) != nil {
			return false
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusForbidden)
		} else {
			s3Error(w, http.StatusForbidden, "AccessDenied")
		}
		return true
	})
}

// TestForbiddenIsMissing: without s3:ListBucket, S3 answers 403, not 404,
// for an object that is not there. Push (HEAD per object once listings
// are refused) sends what is missing, and a multi-chunk file, whose probe
// for a chunk of its own address finds none, reads back; the 403 for an
// object is not retried. A push creates a missing index, a 403 too, but
// never replaces one it cannot read. For readers a 403 for the index, or
// one refusing the credentials, is an error naming it.
func TestForbiddenIsMissing(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	src := t.TempDir()
	big := bytes.Repeat([]byte("many chunks of text, not all alike; "), 40000)
	os.WriteFile(filepath.Join(src, "big.txt"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small.txt"), []byte("one chunk"), 0o644)
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: "t", Version: "1", Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	roots, _ := s.Roots(ctx)
	// A first push finds no index, a 403 too: it creates one.
	forbidMissing(f, func(string) bool { return false })
	b := open(t, "s3://bkt/p", Options{})
	for range 2 { // the second finds every object there
		if _, err := push.Run(ctx, s.Objects, b, roots, push.Options{}); err != nil {
			t.Fatalf("push: %v", err)
		}
	}
	if f.object("/bkt/p/"+layout.IndexKey) == nil {
		t.Fatal("no index pushed")
	}

	forbidMissing(f, func(string) bool { return false })
	b = open(t, "s3://bkt/p", Options{})
	o, err := store.NewObjects(layout.NewSource(b, layout.SourceOptions{Log: quiet()}), 8<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	v, err := backend.OpenRoot(ctx, o, store.Ref{Name: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.FS().ReadFile("big.txt"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big.txt: %d bytes, %v", len(got), err)
	}
	f.sent()
	missing := "objects/chunk/00/" + strings.Repeat("0", 62)
	if _, err := b.Fetch(ctx, missing, 100, false); !layout.IsNotFound(err) || !strings.Contains(err.Error(), "403 AccessDenied") {
		t.Errorf("GET of a missing object: %v, want ErrNotFound naming 403", err)
	}
	if ok, err := b.Has(ctx, missing); ok || err != nil {
		t.Errorf("Has(missing) = %v, %v", ok, err)
	}
	want := []string{"GET /bkt/p/" + missing, "GET /bkt", "HEAD /bkt/p/" + missing} // the listing is refused
	if got := f.requests(); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}

	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/"+layout.IndexKey) {
			s3Error(w, http.StatusForbidden, "AccessDenied")
			return true
		}
		if strings.Contains(r.URL.Path, "/objects/") {
			s3Error(w, http.StatusForbidden, "InvalidAccessKeyId")
			return true
		}
		return false
	})
	f.sent()
	_, err = b.Fetch(ctx, layout.IndexKey, 100, false)
	if err == nil || layout.IsNotFound(err) || !strings.Contains(err.Error(), "403 AccessDenied") {
		t.Errorf("GET of the index answered 403: %v, want an error naming 403", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("403 for the index tried %d times", n)
	}
	if _, err := b.Fetch(ctx, missing, 100, false); err == nil || layout.IsNotFound(err) || !strings.Contains(err.Error(), "403 InvalidAccessKeyId") {
		t.Errorf("GET of an object refusing the credentials: %v, want an error naming them", err)
	}

	// An index that is there but cannot be read is not replaced.
	before := f.object("/bkt/p/" + layout.IndexKey)
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+layout.IndexKey) {
			s3Error(w, http.StatusForbidden, "AccessDenied")
			return true
		}
		return false
	})
	b = open(t, "s3://bkt/p", Options{})
	_, err = push.Run(ctx, s.Objects, b, roots, push.Options{})
	if err == nil || !strings.Contains(err.Error(), "reading it is forbidden") {
		t.Errorf("push over an unreadable index: %v, want an error saying so", err)
	}
	if !bytes.Equal(f.object("/bkt/p/"+layout.IndexKey), before) {
		t.Error("an unreadable index was replaced")
	}
}

// TestListingOutlivesItsFirstCaller: a fan-out listing joined by a second
// question and then canceled by the first is taken again for the second,
// which gets its answer; listings are not taken for refused.
func TestListingOutlivesItsFirstCaller(t *testing.T) {
	f, _ := newFake(t)
	f.put("/bkt/p/objects/dir/ab/1", []byte("x"))
	var logged bytes.Buffer
	b := open(t, "s3://bkt/p", Options{Options: remote.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))}})
	listing := make(chan struct{}, 1)
	release := make(chan struct{})
	var lists atomic.Int32
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("list-type") != "" && lists.Add(1) == 1 {
			listing <- struct{}{}
			<-release // the first listing hangs until its caller is gone
			s3Error(w, 503, "SlowDown")
			return true
		}
		return false
	})
	defer close(release)
	first, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { _, err := b.Has(first, "objects/dir/ab/1"); res <- err }()
	<-listing
	second := make(chan error, 1)
	go func() {
		ok, err := b.Has(context.Background(), "objects/dir/ab/1")
		if err == nil && !ok {
			err = errors.New("not found")
		}
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it join
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("the canceled question: %v", err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Errorf("the joining question, never canceled: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the joining question did not return")
	}
	if strings.Contains(logged.String(), "refused to list") {
		t.Errorf("a canceled listing was taken for a refusal:\n%s", logged.String())
	}
}
