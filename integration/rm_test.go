//go:build linux

package integration

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFUSERemovedRoot removes a root while the namespace is mounted: within
// the second the kernel caches namespace entries, new lookups of it fail
// with ENOENT (never EIO), listings and latest move on, and a file opened
// before keeps reading byte-exact; the server logs no error.
func TestFUSERemovedRoot(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{9}).Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("v1"), 0o644)
	ok(t, "-s", st, "ingest", "r@1", src)
	os.WriteFile(filepath.Join(src, "small"), []byte("v2"), 0o644)
	ok(t, "-s", st, "ingest", "r@2", src)
	ok(t, "-s", st, "ingest", "other@1", src)

	dir, stderr, stopMount := startMount(t, st, "")
	stop := sync.OnceFunc(stopMount)
	defer stop()
	f, err := os.Open(filepath.Join(dir, "r/2/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "r/2/small")); err != nil || string(b) != "v2" {
		t.Fatalf("r/2/small before rm: %q, %v", b, err)
	}

	ok(t, "-s", st, "rm", "r@2")
	// The kernel may answer from its entry cache for up to a second.
	deadline := time.Now().Add(5 * time.Second)
	var statErr error
	for {
		_, statErr = os.Stat(filepath.Join(dir, "r/2/small"))
		if statErr != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(statErr, syscall.ENOENT) {
		t.Errorf("stat r/2/small after rm: %v, want ENOENT", statErr)
	}
	if _, err := os.Stat(filepath.Join(dir, "r/2")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat r/2 after rm: %v, want ENOENT", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "r/latest")); err != nil || target != "1" {
		t.Errorf("r/latest after rm: %q, %v", target, err)
	}
	if names, err := readNames(filepath.Join(dir, "r")); err != nil || !slices.Equal(names, []string{"1", "latest"}) {
		t.Errorf("ls r after rm: %v, %v", names, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "r/1/small")); err != nil || string(b) != "v1" {
		t.Errorf("r/1/small after rm: %q, %v", b, err)
	}
	// The open file reads on to the end, byte-exact.
	rest, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(append(head, rest...), big) {
		t.Errorf("open file after rm: %d bytes, %v; want the %d stored", len(head)+len(rest), err, len(big))
	}

	ok(t, "-s", st, "rm", "r@1")
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, statErr = os.Stat(filepath.Join(dir, "r"))
		if statErr != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(statErr, syscall.ENOENT) {
		t.Errorf("stat r after removing all its versions: %v, want ENOENT", statErr)
	}
	if names, err := readNames(dir); err != nil || !slices.Equal(names, []string{"other"}) {
		t.Errorf("ls after rm: %v, %v", names, err)
	}
	f.Close()
	stop()
	if log := stderr.String(); strings.Contains(log, "level=") || strings.Contains(log, "corrupt") {
		t.Errorf("server logged:\n%s", log)
	}
}

// readNames lists a directory's names in order.
func readNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	return names, err
}

// TestWebDAVRemovedRoot removes a root while the namespace is served over
// WebDAV: its paths answer 404 at once, the other version still 200, and
// a download started before finishes byte-exact.
func TestWebDAVRemovedRoot(t *testing.T) {
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{10}).Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	ok(t, "-s", st, "ingest", "r@1", src)
	os.WriteFile(filepath.Join(src, "small"), []byte("v2"), 0o644)
	ok(t, "-s", st, "ingest", "r@2", src)

	url, stderr, stop := startDAV(t, st, "")
	defer stop()
	url = strings.TrimSuffix(url, "/")
	resp, err := http.Get(url + "/r/2/big")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET r/2/big: %v, %v", resp, err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}

	ok(t, "-s", st, "rm", "r@2")
	for p, want := range map[string]int{"/r/2/small": 404, "/r/2/": 404, "/r/1/big": 200} {
		r, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("GET %s after rm: %d, want %d", p, r.StatusCode, want)
		}
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), big) {
		t.Errorf("download started before rm: %d bytes, %v", len(head)+len(rest), err)
	}
	stop()
	if log := stderr.String(); strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") || strings.Contains(log, "corrupt") {
		t.Errorf("server logged:\n%s", log)
	}
}

// TestFUSENamespaceFollowsRoots changes the roots under a namespace mount
// that has listed and looked them up: listings show the new names and
// versions, a new version moves latest (readlink and lstat), and a version
// removed and ingested again with other content reads the new content,
// within the second the kernel caches namespace entries, while a file
// opened before keeps reading what it opened.
func TestFUSENamespaceFollowsRoots(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	one, two := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(one, "f"), []byte("one"), 0o644)
	os.WriteFile(filepath.Join(two, "f"), []byte("two"), 0o644)
	ok(t, "-s", st, "ingest", "r@1", one)

	dir, stderr, stopMount := startMount(t, st, "")
	stop := sync.OnceFunc(stopMount)
	defer stop()
	if target, err := os.Readlink(filepath.Join(dir, "r/latest")); err != nil || target != "1" {
		t.Fatalf("r/latest: %q, %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "r/1/f")); err != nil || string(b) != "one" {
		t.Fatalf("r/1/f: %q, %v", b, err)
	}
	f, err := os.Open(filepath.Join(dir, "r/1/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if names, err := readNames(dir); err != nil || !slices.Equal(names, []string{"r"}) {
		t.Fatalf("ls: %v, %v", names, err)
	}
	if names, err := readNames(filepath.Join(dir, "r")); err != nil || !slices.Equal(names, []string{"1", "latest"}) {
		t.Fatalf("ls r: %v, %v", names, err)
	}

	ok(t, "-s", st, "rm", "r@1")
	ok(t, "-s", st, "ingest", "r@1", two)
	ok(t, "-s", st, "ingest", "r@2", one)
	ok(t, "-s", st, "ingest", "q@1", one)
	var target, content string
	var top, versions []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		target, _ = os.Readlink(filepath.Join(dir, "r/latest"))
		b, _ := os.ReadFile(filepath.Join(dir, "r/1/f"))
		content = string(b)
		top, _ = readNames(dir)
		versions, _ = readNames(filepath.Join(dir, "r"))
		if target == "2" && content == "two" && len(top) == 2 && len(versions) == 3 || time.Now().After(deadline) {
			break
		}
	}
	// The kernel keeps the namespace's listings (no OPENDIR); the mount
	// drops them when the roots change.
	if !slices.Equal(top, []string{"q", "r"}) || !slices.Equal(versions, []string{"1", "2", "latest"}) {
		t.Errorf("ls and ls r after ingests: %v and %v, want [q r] and [1 2 latest]", top, versions)
	}
	if target != "2" {
		t.Errorf("readlink r/latest after ingesting r@2: %q, want 2", target)
	}
	if content != "two" {
		t.Errorf("r/1/f after r@1 was removed and ingested with other content: %q, want two", content)
	}
	if st, err := os.Lstat(filepath.Join(dir, "r/latest")); err != nil || st.Size() != 1 {
		t.Errorf("lstat r/latest: %v, %v", st, err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "one" {
		t.Errorf("r/1/f opened before: %q, %v; want one", b, err)
	}
	f.Close()
	stop()
	if log := stderr.String(); strings.Contains(log, "level=") {
		t.Errorf("server logged:\n%s", log)
	}
}
