//go:build linux

package integration

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// limitStore holds x@1 (sub/f and a symlink sub/esc climbing out of sub
// towards y) and y@1, whose secret no frontend serving x@1/sub may give.
func limitStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	x, y, st := filepath.Join(dir, "x"), filepath.Join(dir, "y"), filepath.Join(dir, "s.sdfs")
	for _, err := range []error{
		os.MkdirAll(filepath.Join(x, "sub"), 0o755), os.MkdirAll(y, 0o755),
		os.WriteFile(filepath.Join(x, "sub", "f"), []byte("inside\n"), 0o644),
		os.WriteFile(filepath.Join(x, "top"), []byte("SECRET x top\n"), 0o644),
		os.Symlink("../../../y/1/secret", filepath.Join(x, "sub", "esc")),
		os.WriteFile(filepath.Join(y, "secret"), []byte("SECRET y\n"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ok(t, "-s", st, "ingest", "x@1", x)
	ok(t, "-s", st, "ingest", "y@1", y)
	return st
}

// TestWebDAVServesOnlyItsTree: `serve webdav x@1/sub` answers nothing
// outside x@1/sub, however the path is spelled.
func TestWebDAVServesOnlyItsTree(t *testing.T) {
	st := limitStore(t)
	base, _, stop := startDAV(t, st, "x@1/sub")
	defer stop()
	u, _ := url.Parse(base)
	get := func(path string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+u.Host+"\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/f"); code != 200 || body != "inside\n" {
		t.Errorf("GET /f: %d %q", code, body)
	}
	for _, p := range []string{"/esc", "/../top", "/%2e%2e/top", "/..%2ftop", "/../../y@1/secret", "/y@1/secret",
		"/y/1/secret", "/x@1/top", "/x/1/top", "/top", "/secret", "/./../top", "//../top"} {
		if code, body := get(p); code == 200 || strings.Contains(body, "SECRET") {
			t.Errorf("GET %s: %d %q: reached outside x@1/sub", p, code, body)
		}
	}
	if code, body := get("/"); strings.Contains(body, "SECRET") || strings.Contains(body, "esc") || code != 200 {
		t.Errorf("GET /: %d %q", code, body)
	}
}

// TestFUSEServesOnlyItsTree: `mount MNT x@1/sub` shows x@1/sub alone;
// no name looked up in it reaches another tree.
func TestFUSEServesOnlyItsTree(t *testing.T) {
	requireFUSE(t)
	st := limitStore(t)
	mnt, stop := mountFUSE(t, st, "x@1/sub")
	defer stop()
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, []string{"esc", "f"}) {
		t.Errorf("mount lists %v, want [esc f]", got)
	}
	for _, name := range []string{"x@1", "y@1", "x", "y", "latest", "top", "secret", "x@1/top", "y@1/secret", "y/1/secret"} {
		if _, err := os.Lstat(filepath.Join(mnt, name)); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("lstat %s: %v, want ENOENT", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "esc")); err == nil || strings.Contains(string(b), "SECRET") {
		t.Errorf("read esc: %q, %v: followed out of the mount", b, err)
	}
}
