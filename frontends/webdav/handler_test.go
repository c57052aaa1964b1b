//go:build linux

package webdav

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
)

// syncLog is a log buffer safe for the server's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testServer is a handler on a store made from files (path → content;
// a path ending in "/" is an empty directory, "->target" makes a symlink),
// ingested as t@1 and served as that root.
type testServer struct {
	path string
	s    *store.Store
	v    *backend.View
	h    *Handler
	log  *syncLog
}

func newTestServer(t *testing.T, files map[string]string) *testServer {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for p, content := range files {
		full := filepath.Join(src, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "s.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Run(context.Background(), s, ingest.Options{Name: "t", Version: "1", Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return &testServer{path: path, log: &syncLog{}}
}

// start opens the store and makes the handler; call it after damaging
// the store, so that no cache holds the damaged objects.
func (ts *testServer) start(t *testing.T, opt Options) {
	t.Helper()
	s, err := store.Open(ts.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	v, err := backend.OpenRoot(context.Background(), s.Objects, store.Ref{Name: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	opt.Log = slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.s, ts.v, ts.h = s, v, New(v, opt)
}

// do sends one request to the handler through a real HTTP server and
// returns the status, the body and the error reading the body (a cut
// response gives one).
func (ts *testServer) do(t *testing.T, method, p string, hdr ...string) (int, string, error) {
	t.Helper()
	srv := httptest.NewServer(ts.h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// manyFiles is a tree with a directory of n files and a healthy sibling.
func manyFiles(n int) map[string]string {
	files := map[string]string{"top.txt": "top\n", "ok/a.txt": "a\n"}
	for i := range n {
		files[fmt.Sprintf("sub/f%03d.txt", i)] = fmt.Sprintf("file %d\n", i)
	}
	return files
}

// TestPropfindCorruptListing: a collection whose listing is damaged
// answers PROPFIND Depth 1 with 500 and a logged hash, never a 207 with
// part of the tree; so does the HTML listing and a Depth 1 PROPFIND of
// its parent stays whole.
func TestPropfindCorruptListing(t *testing.T) {
	files := manyFiles(40)
	files["ok/link"] = "->../sub/f001.txt"
	files["links/to-sub"] = "->../sub"
	ts := newTestServer(t, files)
	h := conformance.FlipDir(t, ts.path, "t@1/sub")
	ts.start(t, Options{AllowInfinity: true})

	code, body, err := ts.do(t, "PROPFIND", "/sub/", "Depth", "1")
	if err != nil || code != http.StatusInternalServerError || strings.Contains(body, "multistatus") {
		t.Errorf("PROPFIND Depth 1 of a damaged collection: %d, %v\n%s", code, err, body)
	}
	code, body, err = ts.do(t, "GET", "/sub/")
	if err != nil || code != http.StatusInternalServerError {
		t.Errorf("GET listing of a damaged collection: %d, %v\n%s", code, err, body)
	}
	if log := ts.log.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, h.String()) {
		t.Errorf("the log does not name the damaged listing %s at ERROR:\n%s", h, log)
	}
	// The parent lists it (its entry is intact), and healthy places work.
	code, body, err = ts.do(t, "PROPFIND", "/", "Depth", "1")
	if err != nil || code != http.StatusMultiStatus || !strings.Contains(body, "<D:href>/sub/</D:href>") {
		t.Errorf("PROPFIND Depth 1 of the parent: %d, %v\n%s", code, err, body)
	}
	if code, body, err := ts.do(t, "PROPFIND", "/top.txt", "Depth", "1"); err != nil || code != http.StatusMultiStatus || !strings.Contains(body, "top.txt") {
		t.Errorf("PROPFIND Depth 1 of a healthy file: %d, %v\n%s", code, err, body)
	}

	// Siblings. A symlink whose target lies in the damaged collection is
	// not "not here": the listing holding it fails too, not leaves it out.
	if code, body, err := ts.do(t, "PROPFIND", "/ok/", "Depth", "1"); err != nil || code != http.StatusInternalServerError {
		t.Errorf("PROPFIND Depth 1 of a collection with a symlink into the damage: %d, %v\n%s", code, err, body)
	}
	if code, body, err := ts.do(t, "GET", "/ok/"); err != nil || code != http.StatusInternalServerError {
		t.Errorf("GET listing of a collection with a symlink into the damage: %d, %v\n%s", code, err, body)
	}
	// A symlink to the damaged collection is listed (its parent is
	// whole), and fails where it is listed itself.
	if code, body, err := ts.do(t, "PROPFIND", "/links/", "Depth", "1"); err != nil || code != http.StatusMultiStatus || !strings.Contains(body, "/links/to-sub/") {
		t.Errorf("PROPFIND Depth 1 of a symlink to the damaged collection's parent: %d, %v\n%s", code, err, body)
	}
	if code, body, err := ts.do(t, "PROPFIND", "/links/to-sub/", "Depth", "1"); err != nil || code != http.StatusInternalServerError {
		t.Errorf("PROPFIND Depth 1 through a symlink to the damaged collection: %d, %v\n%s", code, err, body)
	}
	// Depth infinity meets the damage after the 207 is out: the response
	// is cut, never a complete-looking multistatus.
	code, body, err = ts.do(t, "PROPFIND", "/", "Depth", "infinity")
	if err == nil {
		t.Errorf("PROPFIND Depth infinity over a damaged collection read whole: %d\n%s", code, body)
	}
}

// TestBigListingSlots: big listings share a few slots; one that finds
// none within the wait gets 503, while small listings go on.
func TestBigListingSlots(t *testing.T) {
	ts := newTestServer(t, manyFiles(40))
	ts.start(t, Options{})
	ts.h.bigEntries, ts.h.bigWait = 10, 50*time.Millisecond
	for range cap(ts.h.big) {
		ts.h.big <- struct{}{} // every slot taken
	}
	if code, body, _ := ts.do(t, "PROPFIND", "/sub/", "Depth", "1"); code != http.StatusServiceUnavailable {
		t.Errorf("PROPFIND Depth 1 of a big collection with no slot free: %d\n%s", code, body)
	}
	if code, body, _ := ts.do(t, "GET", "/sub/"); code != http.StatusServiceUnavailable {
		t.Errorf("GET listing of a big collection with no slot free: %d\n%s", code, body)
	}
	if code, body, _ := ts.do(t, "PROPFIND", "/ok/", "Depth", "1"); code != http.StatusMultiStatus {
		t.Errorf("PROPFIND Depth 1 of a small collection with no slot free: %d\n%s", code, body)
	}
	if code, body, _ := ts.do(t, "PROPFIND", "/sub/", "Depth", "0"); code != http.StatusMultiStatus {
		t.Errorf("PROPFIND Depth 0 of a big collection with no slot free: %d\n%s", code, body)
	}
	<-ts.h.big
	if code, body, _ := ts.do(t, "PROPFIND", "/sub/", "Depth", "1"); code != http.StatusMultiStatus || strings.Count(body, "<D:response>") != 41 {
		t.Errorf("PROPFIND Depth 1 of a big collection with a slot free: %d, %d responses", code, strings.Count(body, "<D:response>"))
	}
	if len(ts.h.big) != cap(ts.h.big)-1 {
		t.Errorf("%d slots taken after the listing, want %d", len(ts.h.big), cap(ts.h.big)-1)
	}
}

// chunks lists the chunks of file p of t@1.
func (ts *testServer) chunks(t *testing.T, p string) []tree.ChunkRef {
	t.Helper()
	s, err := store.Open(ts.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := backend.OpenRoot(context.Background(), s.Objects, store.Ref{Name: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Walk(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.File(context.Background(), n.Hash)
	if err != nil {
		t.Fatal(err)
	}
	return f.List.Chunks
}

// TestGetCorruptLaterChunk: a corrupt chunk within the first holdBody
// bytes of a response (all of a small file, or of a small range) is a
// 500; further in, the 200 is out and the response is cut short. Both are
// logged with the chunk's hash, and no wrong byte is sent.
func TestGetCorruptLaterChunk(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	small, large := make([]byte, 200<<10), make([]byte, 2<<20)
	for _, b := range [][]byte{small, large} {
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
	}
	ts := newTestServer(t, map[string]string{"small": string(small), "large": string(large)})
	sc, lc := ts.chunks(t, "small"), ts.chunks(t, "large")
	if len(sc) < 2 || len(lc) < 2 {
		t.Fatalf("chunks: small %d, large %d; want several", len(sc), len(lc))
	}
	badSmall, badLarge := sc[len(sc)-1].Hash, lc[len(lc)-1].Hash
	conformance.Flip(t, ts.path, badSmall)
	conformance.Flip(t, ts.path, badLarge)
	ts.start(t, Options{})

	code, body, err := ts.do(t, "GET", "/small")
	if code != http.StatusInternalServerError || err != nil {
		t.Errorf("GET of a small file with a corrupt last chunk: %d, %d bytes, %v; want 500", code, len(body), err)
	}
	code, body, err = ts.do(t, "GET", "/large", "Range", fmt.Sprintf("bytes=%d-%d", lc[0].Size-100, lc[0].Size+100))
	if len(lc) > 2 && (code != http.StatusPartialContent || err != nil || body != string(large[lc[0].Size-100:lc[0].Size+101])) {
		t.Errorf("GET of a healthy range across chunks: %d, %v", code, err)
	}
	end := int(lc[len(lc)-2].Size) // a range ending in the corrupt chunk
	first := len(large) - int(lc[len(lc)-1].Size) - end
	code, _, err = ts.do(t, "GET", "/large", "Range", fmt.Sprintf("bytes=%d-%d", first, len(large)-1))
	if len(large)-first <= 256<<10 && (code != http.StatusInternalServerError || err != nil) {
		t.Errorf("GET of a small range ending in a corrupt chunk: %d, %v; want 500", code, err)
	}
	code, body, err = ts.do(t, "GET", "/large")
	if code != http.StatusOK || err == nil || len(body) >= len(large) || !strings.HasPrefix(string(large), body) {
		t.Errorf("GET of a large file with a corrupt last chunk: %d, %d of %d bytes, %v; want 200 cut short of correct bytes",
			code, len(body), len(large), err)
	}
	log := ts.log.String()
	for _, h := range []hash.Hash{badSmall, badLarge} {
		if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, h.String()) {
			t.Errorf("the log does not name corrupt chunk %s at ERROR:\n%s", h, log)
		}
	}
}

// TestBigListingStall: a client that stops reading a big listing is cut
// off after the stall time, and its slot comes free.
func TestBigListingStall(t *testing.T) {
	files := map[string]string{}
	for i := range 2000 {
		files[fmt.Sprintf("d/%s-%04d", strings.Repeat("n", 100), i)] = ""
	}
	ts := newTestServer(t, files)
	ts.start(t, Options{})
	ts.h.bigEntries, ts.h.bigStall = 10, 200*time.Millisecond
	srv := httptest.NewUnstartedServer(ts.h)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PROPFIND /d/ HTTP/1.1\r\nHost: x\r\nDepth: 1\r\n\r\n") // and never read
	deadline := time.Now().Add(10 * time.Second)
	for len(ts.h.big) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(ts.h.big) == 0 {
		t.Fatal("the listing never took a slot")
	}
	for len(ts.h.big) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(ts.h.big) != 0 {
		t.Fatal("a client that does not read keeps its big-listing slot")
	}
	// The connection was cut: reading it ends before the multistatus does.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	if strings.Contains(string(b), "</D:multistatus>") {
		t.Error("the stalled listing was sent whole")
	}
}

// smallSendBuffers is a listener whose connections have 4 KiB send
// buffers, so that a client that does not read stalls the server soon.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}
