//go:build linux

package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hugelgupf/p9/p9"
)

// lines waits for the process to print n lines on stdout and returns
// them as name → rest ("webdav http://…").
func (p *notified) lines(t *testing.T, n int) map[string]string {
	t.Helper()
	for i := 0; i < 500; i++ {
		if got := strings.Split(p.stdout.String(), "\n"); len(got) > n {
			m := map[string]string{}
			for _, l := range got[:n] {
				name, rest, _ := strings.Cut(l, " ")
				m[name] = rest
			}
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d lines on stdout: %q; stderr:\n%s", n, p.stdout.String(), p.stderr.String())
	return nil
}

// read9P reads path through a 9P client connected to the server at sock.
func read9P(sock string, path ...string) ([]byte, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	cl, err := p9.NewClient(c, p9.WithMessageSize(1<<20))
	if err != nil {
		c.Close()
		return nil, err
	}
	defer cl.Close()
	root, err := cl.Attach("")
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	_, f, err := root.Walk(path)
	if err != nil {
		return nil, fmt.Errorf("walk %v: %w", path, err)
	}
	defer f.Close()
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		return nil, fmt.Errorf("open %v: %w", path, err)
	}
	var out []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := f.ReadAt(buf, int64(len(out)))
		out = append(out, buf[:n]...)
		if err == io.EOF || (err == nil && n == 0) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %v: %w", path, err)
		}
	}
}

// rcloneCat reads remote through rclone from the WebDAV server at url.
func rcloneCat(t *testing.T, url, remote string) ([]byte, error) {
	cmd := exec.Command("rclone", "cat", remote)
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG_X_TYPE=webdav", "RCLONE_CONFIG_X_URL="+url, "RCLONE_CONFIG_X_VENDOR=other",
		"RCLONE_CONFIG="+filepath.Join(t.TempDir(), "none.conf"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("rclone cat %s: %w: %s", remote, err, stderr.String())
	}
	return out, nil
}

// storeOpeners lists the processes that hold path open.
func storeOpeners(t *testing.T, path string) []int {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	var pids []int
	for _, fdDir := range procs {
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && target == want {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(fdDir)))
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// TestServeAllFrontends runs one `serve` process with WebDAV, 9P and a
// FUSE mount at once: READY=1 comes once all three accept (each checked
// the moment it arrives), concurrent reads through rclone, p9's client
// and the kernel are byte-exact, the store file is open in that process
// alone, and SIGTERM unmounts and exits 0.
func TestServeAllFrontends(t *testing.T) {
	requireFUSE(t)
	requireTools(t, "rclone")
	st, _, big := opsStore(t)
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "9p.sock")
	p := startNotified(t, "-s", st, "serve", "--webdav", "127.0.0.1:0", "--9p", "unix:"+sock, "--mount", dir, "-q")
	awaitMessage(t, p.msgs, "READY=1")
	if !mounted(dir) {
		t.Fatalf("READY=1 before %s was mounted", dir)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Fatalf("9P dial right after READY=1: %v", err)
	} else {
		c.Close()
	}
	addrs := p.lines(t, 3)
	url := addrs["webdav"]
	if c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")); err != nil {
		t.Fatalf("WebDAV dial right after READY=1 (%q): %v", url, err)
	} else {
		c.Close()
	}
	if addrs["9p"] != "unix:"+sock || addrs["mount"] != dir {
		t.Errorf("stdout %q", p.stdout.String())
	}

	readers := map[string]func() ([]byte, error){
		"fuse":   func() ([]byte, error) { return os.ReadFile(filepath.Join(dir, "t", "1", "big")) },
		"9p":     func() ([]byte, error) { return read9P(sock, "t", "1", "big") },
		"webdav": func() ([]byte, error) { return rcloneCat(t, url, "X:t/1/big") },
	}
	var wg sync.WaitGroup
	for name, read := range readers {
		for i := 0; i < 3; i++ {
			wg.Go(func() {
				got, err := read()
				if err != nil || !bytes.Equal(got, big) {
					t.Errorf("%s read %d: %d bytes (want %d), %v", name, i, len(got), len(big), err)
				}
			})
		}
	}
	wg.Wait()
	if pids := storeOpeners(t, st); len(pids) != 1 || pids[0] != p.cmd.Process.Pid {
		t.Errorf("store open in processes %v, want only the server %d", pids, p.cmd.Process.Pid)
	}
	p.stop(t)
	if mounted(dir) {
		t.Error("still mounted after SIGTERM")
	}
}
