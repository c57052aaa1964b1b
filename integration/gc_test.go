//go:build linux

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gcVersions ingests r@1 … r@n of a tree of 300 files that each version
// edits in part, and returns each version's files by path.
func gcVersions(t *testing.T, st string, n int) []map[string][]byte {
	t.Helper()
	rnd := rand.New(rand.NewPCG(3, 4))
	cur := map[string][]byte{}
	for i := range 300 {
		b := make([]byte, 2000+rnd.IntN(60000))
		for j := range b {
			b[j] = "abcdefgh \n"[rnd.IntN(10)]
		}
		cur[fmt.Sprintf("d%d/f%03d", i%10, i)] = b
	}
	var out []map[string][]byte
	for v := 1; v <= n; v++ {
		next := map[string][]byte{}
		for p, b := range cur {
			if rnd.IntN(2) == 0 {
				b = bytes.Clone(b)
				copy(b[rnd.IntN(len(b)-40):], fmt.Sprintf("version %d edits %s here", v, p))
			}
			next[p] = b
		}
		src := filepath.Join(t.TempDir(), "src")
		for p, b := range next {
			os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ok(t, "-s", st, "ingest", fmt.Sprintf("r@%d", v), src)
		out = append(out, next)
		cur = next
	}
	return out
}

// TestFUSEReadersDuringGC reads the remaining versions through a FUSE
// mount of the namespace while gc collects three removed ones: every read
// is byte-exact and the mount logs nothing. A mount of one removed root
// then answers ESTALE (never EIO) for what it no longer has, without
// logging corruption.
func TestFUSEReadersDuringGC(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	vs := gcVersions(t, st, 6)
	dir, stderr, stopMount := startMount(t, st, "")
	stop := sync.OnceFunc(stopMount)
	defer stop()
	one, oneErr, stopOne := startMount(t, st, "r@1")
	stop1 := sync.OnceFunc(stopOne)
	defer stop1()
	ok(t, "-s", st, "rm", "r@1", "r@2", "r@3")

	var paths []string
	for p := range vs[0] {
		paths = append(paths, p)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	reads := 0
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				v, p := 4+rnd.IntN(3), paths[rnd.IntN(len(paths))]
				start := time.Now()
				got, err := os.ReadFile(filepath.Join(dir, "r", fmt.Sprint(v), p))
				took := time.Since(start)
				if err != nil || !bytes.Equal(got, vs[v-1][p]) {
					t.Errorf("r/%d/%s during gc: %d bytes, %v", v, p, len(got), err)
					return
				}
				mu.Lock()
				worst, reads = max(worst, took), reads+1
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	r := ok(t, "-s", st, "gc")
	time.Sleep(300 * time.Millisecond)
	close(done)
	wg.Wait()
	t.Logf("%d reads, the longest %v; gc: %s", reads, worst, strings.TrimSpace(r.stdout))
	if !strings.Contains(r.stdout, "freed") {
		t.Fatalf("gc: %+v", r)
	}

	// The mount of removed r@1: files and directories it never looked up.
	var staleSeen bool
	for p, b := range vs[0] {
		if bytes.Equal(b, vs[3][p]) || bytes.Equal(b, vs[4][p]) || bytes.Equal(b, vs[5][p]) {
			continue // still stored for another version
		}
		_, err := os.ReadFile(filepath.Join(one, p))
		if err == nil {
			continue // its listing and chunks may survive in another version
		}
		if !errors.Is(err, syscall.ESTALE) {
			t.Fatalf("read %s of removed r@1 after gc: %v, want ESTALE", p, err)
		}
		staleSeen = true
		break
	}
	if !staleSeen {
		t.Error("no read of removed r@1 failed after gc: the test needs more removed data")
	}
	stop1()
	stop()
	for _, log := range []string{stderr.String(), oneErr.String()} {
		if strings.Contains(log, "corrupt") || strings.Contains(log, "level=ERROR") {
			t.Errorf("a mount logged:\n%s", log)
		}
	}
	ok(t, "-s", st, "check", "--read-data")
}

// TestWebDAVReadersDuringGC fetches the remaining versions over WebDAV
// while gc collects three removed ones: every fetch is byte-exact and the
// server logs nothing; a server of one removed root answers 404 for what
// gc took.
func TestWebDAVReadersDuringGC(t *testing.T) {
	st := filepath.Join(t.TempDir(), "s.sdfs")
	vs := gcVersions(t, st, 6)
	url, stderr, stop := startDAV(t, st, "")
	defer stop()
	oneURL, oneErr, stopOne := startDAV(t, st, "r@1")
	defer stopOne()
	ok(t, "-s", st, "rm", "r@1", "r@2", "r@3")
	var paths []string
	for p := range vs[0] {
		paths = append(paths, p)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	fetches := 0
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 2))
			for {
				select {
				case <-done:
					return
				default:
				}
				v, p := 4+rnd.IntN(3), paths[rnd.IntN(len(paths))]
				start := time.Now()
				resp, err := http.Get(fmt.Sprintf("%sr/%d/%s", url, v, p))
				var got []byte
				if err == nil {
					got, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				took := time.Since(start)
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, vs[v-1][p]) {
					t.Errorf("GET r/%d/%s during gc: %d bytes, %v", v, p, len(got), err)
					return
				}
				mu.Lock()
				worst, fetches = max(worst, took), fetches+1
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	ok(t, "-s", st, "gc")
	time.Sleep(300 * time.Millisecond)
	close(done)
	wg.Wait()
	t.Logf("%d fetches, the longest %v", fetches, worst)

	gone := 0
	for p, b := range vs[0] {
		if bytes.Equal(b, vs[3][p]) || bytes.Equal(b, vs[4][p]) || bytes.Equal(b, vs[5][p]) {
			continue
		}
		resp, err := http.Get(oneURL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNotFound:
			gone++
		case http.StatusOK:
		default:
			t.Errorf("GET %s of removed r@1 after gc: %d, want 404 (or 200 for what survives)", p, resp.StatusCode)
		}
	}
	if gone == 0 {
		t.Error("nothing of removed r@1 answered 404 after gc")
	}
	stopOne()
	stop()
	for _, log := range []string{stderr.String(), oneErr.String()} {
		if strings.Contains(log, "corrupt") || strings.Contains(log, "level=ERROR") {
			t.Errorf("a server logged:\n%s", log)
		}
	}
}
