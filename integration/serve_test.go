//go:build linux

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hugelgupf/p9/p9"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
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

// scrape fetches and parses the Prometheus metrics at url, and returns
// each sample as "name{label=value,…}" → value (labels in the order
// the text format gives them).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
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

// TestServeAllFrontends runs one `serve` process with WebDAV, 9P, a FUSE
// mount and metrics at once: READY=1 comes once all three accept (each
// checked the moment it arrives), concurrent reads through rclone, p9's
// client and the kernel are byte-exact, the store file is open in that
// process alone, /metrics (parsed with expfmt) counts each frontend's
// requests and bytes and one chunk cache serving them all, and SIGTERM
// unmounts and exits 0.
func TestServeAllFrontends(t *testing.T) {
	requireFUSE(t)
	requireTools(t, "rclone")
	st, _, big := opsStore(t)
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "9p.sock")
	p := startNotified(t, "-s", st, "serve", "--webdav", "127.0.0.1:0", "--9p", "unix:"+sock, "--mount", dir, "--metrics", "127.0.0.1:0", "-q")
	awaitMessage(t, p.msgs, "READY=1")
	if !mounted(dir) {
		t.Fatalf("READY=1 before %s was mounted", dir)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Fatalf("9P dial right after READY=1: %v", err)
	} else {
		c.Close()
	}
	addrs := p.lines(t, 4)
	url := addrs["webdav"]
	if c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")); err != nil {
		t.Fatalf("WebDAV dial right after READY=1 (%q): %v", url, err)
	} else {
		c.Close()
	}
	if addrs["9p"] != "unix:"+sock || addrs["mount"] != dir {
		t.Errorf("stdout %q", p.stdout.String())
	}

	before := scrape(t, addrs["metrics"])
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
	after := scrape(t, addrs["metrics"])
	// The kernel's page cache answers FUSE's second and third reads.
	for fe, reads := range map[string]int{"fuse": 1, "9p": 3, "webdav": 3} {
		if n := after["spraydryfs_served_bytes_total{frontend="+fe+"}"]; n < float64(reads*len(big)) {
			t.Errorf("%s: %v bytes served, want at least %d", fe, n, reads*len(big))
		}
	}
	for _, key := range []string{"spraydryfs_requests_total{frontend=fuse,status=OK}", "spraydryfs_requests_total{frontend=9p,status=OK}",
		"spraydryfs_requests_total{frontend=webdav,status=200}"} {
		if after[key] <= before[key] {
			t.Errorf("%s: %v before the reads, %v after", key, before[key], after[key])
		}
	}
	// Nine reads of one file through three frontends: one cache, so its
	// chunks were read from the store once and hit ever after.
	hits, misses := after["spraydryfs_cache_hits_total{cache=chunk}"], after["spraydryfs_cache_misses_total{cache=chunk}"]
	if misses == 0 || hits < 2*misses || after["spraydryfs_chunk_decode_seconds_count"] != misses {
		t.Errorf("chunk cache: %v hits, %v misses, %v decodes", hits, misses, after["spraydryfs_chunk_decode_seconds_count"])
	}
	// 9P clients gone, no WebDAV request in flight, one file's reader
	// kept while the kernel holds its inode.
	for fe, want := range map[string]float64{"9p": 0, "webdav": 0, "fuse": 1} {
		if n := after["spraydryfs_open_handles{frontend="+fe+"}"]; n != want {
			t.Errorf("%s: %v open handles, want %v", fe, n, want)
		}
	}
	p.stop(t)
	if mounted(dir) {
		t.Error("still mounted after SIGTERM")
	}
}

// TestServeMetricsCorruption: a corrupt chunk read over WebDAV and 9P
// shows in /metrics as a corruption event and an error (500, EIO) of
// each frontend; reads of a healthy file beside it are not errors.
func TestServeMetricsCorruption(t *testing.T) {
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	bad := []byte(strings.Repeat("this chunk rots ", 100))
	os.WriteFile(filepath.Join(src, "bad"), bad, 0o644)
	os.WriteFile(filepath.Join(src, "good"), []byte("fine"), 0o644)
	ok(t, "-s", st, "ingest", "c@1", src)
	conformance.Flip(t, st, hash.Sum(bad))
	sock := filepath.Join(t.TempDir(), "9p.sock")
	p := startNotified(t, "-s", st, "serve", "--webdav", "127.0.0.1:0", "--9p", "unix:"+sock, "--metrics", "127.0.0.1:0", "-q", "c@1")
	awaitMessage(t, p.msgs, "READY=1")
	addrs := p.lines(t, 3)
	resp, err := http.Get(addrs["webdav"] + "bad")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("GET bad: %s, want 500", resp.Status)
	}
	if _, err := read9P(sock, "bad"); err == nil {
		t.Error("9P read of a corrupt chunk succeeded")
	}
	if got, err := read9P(sock, "good"); err != nil || string(got) != "fine" {
		t.Errorf("9P read of good: %q, %v", got, err)
	}
	m := scrape(t, addrs["metrics"])
	for _, key := range []string{
		"spraydryfs_corruption_events_total{frontend=webdav}", "spraydryfs_corruption_events_total{frontend=9p}",
		"spraydryfs_request_errors_total{frontend=webdav,status=500}", "spraydryfs_request_errors_total{frontend=9p,status=EIO}",
	} {
		if m[key] < 1 {
			t.Errorf("%s = %v, want at least 1", key, m[key])
		}
	}
	if n := m["spraydryfs_request_errors_total{frontend=9p,status=OK}"]; n != 0 {
		t.Errorf("successes counted as errors: %v", n)
	}
	p.stop(t)
}

// jsonLines parses every line of s as a JSON object.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// get fetches url and checks for 200.
func get(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %s", url, resp.Status)
	}
}

// TestServeLogs: --log-format json writes the access log as JSON lines,
// to --log-file when given; SIGHUP reopens that file (after logrotate
// moved it, the next lines go to a new file at the path), and with
// stderr logging is a no-op that says so.
func TestServeLogs(t *testing.T) {
	st, _, _ := opsStore(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startNotified(t, "--log-format", "json", "--log-file", logPath, "-s", st, "serve", "--webdav", "127.0.0.1:0", "t@1")
	awaitMessage(t, p.msgs, "READY=1")
	url := p.lines(t, 1)["webdav"]
	get(t, url+"sub/small")
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	var after []byte
	for i := 0; i < 200 && len(after) == 0; i++ { // until the new file has the request after SIGHUP
		get(t, url+"big")
		after, _ = os.ReadFile(logPath)
		time.Sleep(10 * time.Millisecond)
	}
	p.stop(t)
	before, _ := os.ReadFile(rotated)
	for name, b := range map[string][]byte{"before SIGHUP": before, "after SIGHUP": after} {
		lines := jsonLines(t, string(b))
		if lines[0]["msg"] != "webdav" || lines[0]["status"] != float64(200) || lines[0]["method"] != "GET" {
			t.Errorf("%s: first line %v", name, lines[0])
		}
	}
	// A GET racing with the reopen may land in either file; the first
	// one cannot be in the new file.
	if !strings.Contains(string(before), "/sub/small") || strings.Contains(string(after), "/sub/small") {
		t.Errorf("rotated log:\n%s\nnew log:\n%s", before, after)
	}
	if strings.Contains(p.stderr.String(), `"msg"`) {
		t.Errorf("log lines on stderr with --log-file:\n%s", p.stderr.String())
	}

	q := startNotified(t, "--log-format", "json", "-s", st, "serve", "--webdav", "127.0.0.1:0", "-q", "t@1")
	awaitMessage(t, q.msgs, "READY=1")
	q.cmd.Process.Signal(syscall.SIGHUP)
	for i := 0; i < 200 && !strings.Contains(q.stderr.String(), "SIGHUP"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	q.stop(t)
	var found bool
	for _, l := range strings.Split(q.stderr.String(), "\n") {
		if strings.HasPrefix(l, "{") {
			m := jsonLines(t, l)[0]
			found = found || strings.Contains(m["msg"].(string), "nothing to reopen")
		}
	}
	if !found {
		t.Errorf("SIGHUP with stderr logging not logged as JSON:\n%s", q.stderr.String())
	}
}
