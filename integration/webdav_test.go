//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// requireTools skips when a client is missing, saying which; in CI (CI
// set) it fails instead, so these tests never silently skip there.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	unavailable(t, "WebDAV tests", missingTools("apt-get install rclone davfs2 cadaver curl chromium", tools...))
}

// startDAV runs `spraydryfs serve webdav` on a free loopback port and
// returns its URL, its stderr (complete once stop has returned) and a
// function that stops it with SIGTERM and checks that it exited cleanly.
func startDAV(t *testing.T, storePath, which string, flags ...string) (string, *syncBuffer, func()) {
	t.Helper()
	args := append([]string{"-s", storePath, "serve", "webdav", "--listen", "127.0.0.1:0"}, flags...)
	if which != "" {
		args = append(args, which)
	}
	cmd := exec.Command(bin, args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urlc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		urlc <- strings.TrimSpace(line)
		io.Copy(io.Discard, out)
		exited <- cmd.Wait()
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve webdav did not start:\n%s", stderr.String())
	}
	if !strings.HasPrefix(url, "http") {
		<-exited
		t.Fatalf("serve webdav printed %q:\n%s", url, stderr.String())
	}
	stopped := false
	return url, stderr, func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("serve webdav exited with %v:\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("serve webdav did not stop on SIGTERM")
		}
		if s := stderr.String(); strings.Contains(s, "goroutine ") || strings.Contains(s, "panic") {
			t.Errorf("serve webdav crashed or panicked:\n%s", s)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len returns the bytes written so far.
func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// davfsConf is the davfs2 configuration of the test mounts: no questions,
// no locks, and buf_size 64 (without it, listings fail on recent kernels).
func davfsConf(t *testing.T) string {
	dir := t.TempDir()
	conf := filepath.Join(dir, "davfs2.conf")
	// The cache stays in davfs2's default place (/var/cache/davfs2): the
	// daemon drops to the davfs2 user, who cannot enter test directories.
	// davfs2 adds a local directory for files it failed to upload
	// (backup_dir, "lost+found") to the top of every mount, which is not
	// in the served tree; named "." it is left out of listings, as every
	// "." is (a read-only mount never uploads anything).
	body := "ask_auth 0\nuse_locks 0\nbuf_size 64\nbackup_dir .\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// mountDAV is the conformance Mounter: a WebDAV server on the store and
// a read-only davfs2 mount of it.
func mountDAV(t *testing.T, storePath, which string) (string, func()) {
	t.Helper()
	url, _, stop := startDAV(t, storePath, which, "-q")
	dir := t.TempDir()
	cmd := exec.Command("mount", "-t", "davfs", url, dir, "-o", "ro,conf="+davfsConf(t))
	cmd.Stdin = strings.NewReader("\n\n\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		stop()
		t.Fatalf("mount.davfs: %v\n%s", err, out)
	}
	return dir, func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		// umount returns once mount.davfs has written its cache back;
		// wait for it to exit before stopping the server.
		for i := 0; i < 100 && mounted(dir); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		stop()
	}
}

// requireDavfs needs root, /dev/fuse and mount.davfs.
func requireDavfs(t *testing.T) {
	t.Helper()
	requireTools(t, "mount.davfs")
	reason := ""
	if os.Geteuid() != 0 {
		reason = "davfs2 mounts need root"
	} else if _, err := os.Stat("/dev/fuse"); err != nil {
		reason = "no /dev/fuse"
	}
	unavailable(t, "davfs2 tests", reason)
}

// TestWebDAVConformance runs the frontend suite through a davfs2 mount.
// WebDAV carries names, types, sizes, bytes and mtimes to the second; no
// symlinks (in-view ones come back as what they point at, which Compare
// ignores), owners, modes, xattrs, hard links or special files.
func TestWebDAVConformance(t *testing.T) {
	requireDavfs(t)
	t.Parallel() // a long suite (doc.go)
	conformance.Run(t, conformance.Suite{
		Caps: conformance.Caps{
			Caps:         fixture.Caps{Mtimes: true},
			WriteErrno:   syscall.EROFS,
			CorruptErrno: syscall.EIO,
		},
		Mount: mountDAV,
	})
}

// davFixture stores the fixture as fix@1 and returns the source and store.
func davFixture(t *testing.T) (string, string) {
	dir := t.TempDir()
	src, st := filepath.Join(dir, "fixture"), filepath.Join(dir, "store.sdfs")
	fixture.Build(t, src)
	ok(t, "-s", st, "ingest", "fix@1", src)
	return src, st
}

// expected is one entry as a WebDAV client should see it.
type expected struct {
	dir   bool
	size  int64
	mtime int64 // s
}

// davView lists what a WebDAV client should see of src: directories and
// regular files, symlinks that stay inside src as what they point at
// (directories with their contents), nothing else. Paths are relative.
func davView(t *testing.T, src string) map[string]expected {
	t.Helper()
	out := map[string]expected{}
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(real, rel string, depth int)
	walk = func(real, rel string, depth int) {
		ents, err := os.ReadDir(real)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p, r := filepath.Join(real, e.Name()), filepath.Join(rel, e.Name())
			if e.Type()&fs.ModeSymlink != 0 {
				target, err := filepath.EvalSymlinks(p)
				if err != nil || (target != root && !strings.HasPrefix(target, root+"/")) {
					continue
				}
				if l, _ := os.Readlink(p); strings.HasPrefix(l, "/") {
					continue
				}
				p = target
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case st.IsDir():
				out[r] = expected{dir: true, mtime: st.ModTime().Unix()}
				if depth < 8 {
					walk(p, r, depth+1)
				}
			case st.Mode().IsRegular():
				out[r] = expected{size: st.Size(), mtime: st.ModTime().Unix()}
			}
		}
	}
	walk(src, "", 0)
	return out
}

// rclone runs rclone against the server at url as remote X:.
func rclone(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("rclone", args...)
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG_X_TYPE=webdav", "RCLONE_CONFIG_X_URL="+url, "RCLONE_CONFIG_X_VENDOR=other",
		"RCLONE_CONFIG="+filepath.Join(t.TempDir(), "none.conf"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rclone %q: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestWebDAVRclone checks rclone's view of fix@1, through the namespace
// and through a single root: lsjson metadata, check --download against
// the source, and a copy round trip.
func TestWebDAVRclone(t *testing.T) {
	requireTools(t, "rclone")
	src, st := davFixture(t)
	want := davView(t, src)
	// rclone 1.60 paces WebDAV calls 10 ms apart: the byte checks skip
	// the 5,000 small files (two minutes each; lsjson still lists them,
	// and the conformance suite reads every byte through davfs2).
	for _, c := range []struct {
		name, which, remote string
		skip                []string
	}{
		{"namespace", "", "X:fix/1", []string{"--exclude", "/" + fixture.ManyDir + "/**"}},
		{"root", "fix@1", "X:", []string{"--exclude", "/" + fixture.ManyDir + "/**"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, _, stop := startDAV(t, st, c.which, "-q")
			defer stop()

			var got []struct {
				Path    string
				Size    int64
				ModTime time.Time
				IsDir   bool
			}
			if err := json.Unmarshal(rclone(t, url, "lsjson", "-R", c.remote), &got); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, g := range got {
				w, found := want[g.Path]
				if !found && strings.HasPrefix(g.Path, "special/bad") {
					continue // see below
				}
				if !found {
					t.Errorf("lsjson: unexpected %q", g.Path)
					continue
				}
				seen[g.Path] = true
				if g.IsDir != w.dir || !w.dir && g.Size != w.size || g.ModTime.Unix() != w.mtime {
					t.Errorf("lsjson %q: dir %v size %d mtime %d; want dir %v size %d mtime %d", g.Path, g.IsDir, g.Size,
						g.ModTime.Unix(), w.dir, w.size, w.mtime)
				}
			}
			for p := range want {
				// rclone turns the bytes of a name that is not UTF-8 into
				// U+FFFD: checked with curl instead.
				if !seen[p] && p != fixture.NonUTF8 {
					t.Errorf("lsjson: %q missing", p)
				}
			}
			for _, p := range []string{"names/ünïcødé-日本", "names/dïr-ü/ok.txt", "links/to-dir/readme.txt"} {
				if !seen[p] {
					t.Errorf("lsjson: %q is missing", p)
				}
			}

			// Every byte, against the source with in-tree symlinks followed
			// (the rest of special/ cannot be served).
			rclone(t, url, append([]string{"check", "--download", "--checkers", "32", "--copy-links", "--exclude", "/" + fixture.Special + "/**",
				src, c.remote}, c.skip...)...)

			out := filepath.Join(t.TempDir(), "copy")
			rclone(t, url, append([]string{"copy", "--create-empty-src-dirs", "--transfers", "32", "--checkers", "32", c.remote, out}, c.skip...)...)
			// rclone writes the name that is not UTF-8 with U+FFFD: compare
			// everything but special/, whose other entries are not served.
			ents, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.Name() != fixture.Special && (c.skip == nil || e.Name() != fixture.ManyDir) {
					fixture.Compare(t, filepath.Join(src, e.Name()), filepath.Join(out, e.Name()), fixture.Caps{})
				}
			}
		})
	}
}

// curlResult is one curl exchange.
type curlResult struct {
	code   int
	header string // raw response headers, lower-cased
	body   string
}

// curl runs curl with args and returns the status, headers and body.
func curl(t *testing.T, args ...string) curlResult {
	t.Helper()
	dir := t.TempDir()
	hdr, body := filepath.Join(dir, "h"), filepath.Join(dir, "b")
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "20", "-D", hdr, "-o", body, "-w", "%{http_code}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %q: %v", args, err)
	}
	var r curlResult
	fmt.Sscan(string(out), &r.code)
	h, _ := os.ReadFile(hdr)
	b, _ := os.ReadFile(body)
	r.header, r.body = strings.ToLower(string(h)), string(b)
	return r
}

// expect checks a curl result's status and that its headers and body hold
// the given substrings (headers lower-cased).
func (r curlResult) expect(t *testing.T, what string, code int, hdrs []string, body ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: status %d, want %d\n%s%s", what, r.code, code, r.header, r.body)
		return
	}
	for _, h := range hdrs {
		if !strings.Contains(r.header, strings.ToLower(h)) {
			t.Errorf("%s: no %q in the headers:\n%s", what, h, r.header)
		}
	}
	for _, b := range body {
		if !strings.Contains(r.body, b) {
			t.Errorf("%s: no %q in the body:\n%s", what, b, r.body)
		}
	}
}

// TestWebDAVCurl checks every status code the server promises with curl,
// through the namespace view: reads, ranges, conditional requests, PROPFIND
// depths and properties, refused writes, traversal attempts, macOS probes
// and the symlink policy.
func TestWebDAVCurl(t *testing.T) {
	requireTools(t, "curl")
	src, st := davFixture(t)
	url, stderr, stop := startDAV(t, st, "")
	defer stop()
	u := url + "fix/1/"
	text, _ := os.ReadFile(filepath.Join(src, "text.txt"))
	etag := `"` + hash.Sum(text).String() + `"`
	fi, _ := os.Stat(filepath.Join(src, "text.txt"))
	lastMod := fi.ModTime().UTC().Format(httpTimeFormat)

	r := curl(t, u+"text.txt")
	r.expect(t, "GET", 200, []string{"etag: " + etag, "last-modified: " + lastMod, "accept-ranges: bytes",
		fmt.Sprintf("content-length: %d", len(text)), "content-type: text/plain"})
	if r.body != string(text) {
		t.Errorf("GET text.txt: %q, want %q", r.body, text)
	}
	curl(t, "-I", u+"text.txt").expect(t, "HEAD", 200, []string{fmt.Sprintf("content-length: %d", len(text)), "etag: " + etag})
	r = curl(t, "-H", "Range: bytes=2-5", u+"text.txt")
	r.expect(t, "Range", 206, []string{fmt.Sprintf("content-range: bytes 2-5/%d", len(text)), "content-length: 4"})
	if r.body != string(text[2:6]) {
		t.Errorf("Range 2-5: %q, want %q", r.body, text[2:6])
	}
	big, _ := os.ReadFile(filepath.Join(src, fixture.BigFile))
	r = curl(t, "-H", "Range: bytes=-100", u+fixture.BigFile)
	r.expect(t, "suffix Range", 206, []string{fmt.Sprintf("content-range: bytes %d-%d/%d", len(big)-100, len(big)-1, len(big))})
	if r.body != string(big[len(big)-100:]) {
		t.Error("suffix range of the big file: wrong bytes")
	}
	curl(t, "-H", "Range: bytes=999999999-", u+"text.txt").expect(t, "unsatisfiable Range", 416, nil)
	curl(t, "-H", "If-None-Match: "+etag, u+"text.txt").expect(t, "If-None-Match", 304, []string{"etag: " + etag})
	curl(t, "-H", `If-None-Match: "other"`, u+"text.txt").expect(t, "If-None-Match other", 200, nil)
	curl(t, "-H", "If-Modified-Since: "+lastMod, u+"text.txt").expect(t, "If-Modified-Since", 304, nil)
	curl(t, "-H", "If-Range: "+etag, "-H", "Range: bytes=0-0", u+"text.txt").expect(t, "If-Range", 206, nil)
	curl(t, u+"no/such/file").expect(t, "missing", 404, nil)
	curl(t, url+"nope/").expect(t, "missing name", 404, nil)

	// Collections: a listing, a redirect to the slash form.
	curl(t, u+"docs").expect(t, "collection without slash", 301, []string{"location: /fix/1/docs/"})
	curl(t, u+"docs/").expect(t, "listing", 200, []string{"content-type: text/html"}, "readme.txt", `href="../"`)

	// PROPFIND.
	r = curl(t, "-X", "PROPFIND", "-H", "Depth: 1", u+"docs/")
	r.expect(t, "PROPFIND 1", 207, nil, "<D:href>/fix/1/docs/readme.txt</D:href>", "<D:getcontentlength>", "<D:getlastmodified>",
		"<D:creationdate>", "<D:getetag>\"sha256:", "<D:getcontenttype>text/plain", "<D:resourcetype><D:collection",
		"<D:displayname>readme.txt</D:displayname>", "<D:supportedlock>")
	r = curl(t, "-X", "PROPFIND", "-H", "Depth: 0", "-H", "Content-Type: application/xml", "--data",
		`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/><resourcetype/></prop></propfind>`, u+"docs/")
	r.expect(t, "PROPFIND 0", 207, nil, "<D:getetag>\"sha256:", "<D:collection")
	if strings.Count(r.body, "<D:response>") != 1 {
		t.Errorf("Depth 0 gave %d responses", strings.Count(r.body, "<D:response>"))
	}
	for _, depth := range []string{"infinity", ""} {
		args := []string{"-X", "PROPFIND", u}
		if depth != "" {
			args = append(args, "-H", "Depth: "+depth)
		}
		curl(t, args...).expect(t, "PROPFIND Depth "+depth, 403, []string{"content-type: application/xml"}, "<D:propfind-finite-depth/>")
	}
	// Expect: 100-continue lets the server refuse before the body is sent;
	// otherwise curl may still be sending when the refusal closes the
	// connection, and fails with "failed sending data" (exit 55). curl
	// waits only 1 s for the answer before sending anyway, which a loaded
	// machine exceeded (a CI simulation here): it waits up to 20 s now.
	curl(t, "-X", "PROPFIND", "-H", "Depth: 1", "-H", "Expect: 100-continue", "--expect100-timeout", "20",
		"--data-binary", "@"+filepath.Join(src, fixture.BigFile), u).
		expect(t, "huge PROPFIND body", 413, nil)
	curl(t, "-X", "PROPFIND", "-H", "Depth: 0", "--data", "<not xml", u).expect(t, "bad PROPFIND body", 400, nil)
	curl(t, "-X", "PROPFIND", "-H", "Depth: 0", u+"nope").expect(t, "PROPFIND missing", 404, nil)
	curl(t, "-X", "PROPFIND", "-H", "Depth: 0", u+"text.txt/x").expect(t, "PROPFIND under a file", 404, nil)
	curl(t, u+"text.txt/x").expect(t, "GET under a file", 404, nil)

	// Writes are refused before anything happens, all the same way.
	for _, m := range []string{"PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "POST"} {
		args := []string{"-X", m, "-H", "Destination: " + u + "copy", "-H", "Lock-Token: <opaquelocktoken:x>", u + "text.txt"}
		if m == "PUT" || m == "POST" || m == "LOCK" || m == "PROPPATCH" {
			args = append(args, "--data", "x")
		}
		curl(t, args...).expect(t, m, 405, []string{"allow: options, get, head, propfind"})
	}
	curl(t, "-X", "OPTIONS", u).expect(t, "OPTIONS", 200, []string{"dav: 1", "allow: options, get, head, propfind"})
	if b, _ := os.ReadFile(filepath.Join(src, "text.txt")); string(b) != string(text) {
		t.Error("the source changed")
	}
	if r := curl(t, u+"copy"); r.code != 404 {
		t.Errorf("COPY created something: %d", r.code)
	}

	// Traversal never escapes.
	for _, p := range []string{"fix/1/../../../../etc/passwd", "fix/1/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "fix/1/docs%2f..%2f..%2ftext.txt",
		"fix/1/%2E%2E/1/text.txt", "fix/1/text.txt%00", "fix/1/./text.txt", "fix/1/docs/..%5c..%5ctext.txt"} {
		r := curl(t, "--path-as-is", url+p)
		if r.code != 400 && r.code != 404 {
			t.Errorf("traversal %s: status %d\n%s", p, r.code, r.body)
		}
		if strings.Contains(r.body, "root:") {
			t.Errorf("traversal %s: escaped: %s", p, r.body)
		}
	}

	// macOS probes: a quick 404 and no access log line.
	for _, p := range []string{"._text.txt", ".DS_Store", "docs/._readme.txt", ".metadata_never_index", ".ql_disablethumbnails"} {
		curl(t, u+p).expect(t, "probe "+p, 404, nil)
		curl(t, "-X", "PROPFIND", "-H", "Depth: 0", u+p).expect(t, "PROPFIND probe "+p, 404, nil)
	}

	// Symlinks: in-view ones are their targets; others are hidden.
	curl(t, u+"links/to-file").expect(t, "symlink to a file", 200, []string{"etag: " + etag}, string(text))
	curl(t, u+"links/chain").expect(t, "symlink to a symlink", 200, nil, string(text))
	curl(t, u+"links/to-dir/readme.txt").expect(t, "through a symlink to a directory", 200, nil)
	curl(t, "-X", "PROPFIND", "-H", "Depth: 0", u+"links/to-dir").expect(t, "symlink to a dir", 207, nil, "<D:collection")
	curl(t, url+"fix/latest/text.txt").expect(t, "latest", 200, nil, string(text))
	bad, _ := os.ReadFile(filepath.Join(src, fixture.NonUTF8))
	curl(t, u+"special/bad%FF%FE").expect(t, "a name that is not UTF-8", 200, nil, string(bad))
	for _, p := range []string{"special/absolute", "special/dangling", "special/fifo"} {
		curl(t, u+p).expect(t, p, 404, nil)
	}
	r = curl(t, "-X", "PROPFIND", "-H", "Depth: 1", u+"special/")
	r.expect(t, "PROPFIND special/", 207, nil)
	for _, hidden := range []string{"absolute", "dangling", "fifo"} {
		if strings.Contains(r.body, "/"+hidden+"<") {
			t.Errorf("special/%s is listed:\n%s", hidden, r.body)
		}
	}
	r = curl(t, "-X", "PROPFIND", "-H", "Depth: 1", u+"links/")
	r.expect(t, "PROPFIND links/", 207, nil, "/fix/1/links/to-file<", "/fix/1/links/to-dir/<")
	stop()
	log := stderr.String()
	for _, want := range []string{"method=GET path=/fix/1/text.txt status=200", "method=PUT", "status=405", "duration="} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q", want)
		}
	}
	if strings.Contains(log, ".DS_Store") || strings.Contains(log, "._text") {
		t.Errorf("probes are logged:\n%s", log)
	}
}

// httpTimeFormat is http.TimeFormat, without importing net/http here.
const httpTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// TestWebDAVAuth checks --htpasswd: OPTIONS without credentials, 401 for
// GET and PROPFIND without or with wrong ones, access with the right ones;
// and that a single root is served at the top.
func TestWebDAVAuth(t *testing.T) {
	requireTools(t, "curl")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f.txt"), []byte("secret\n"), 0o644)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	ok(t, "-s", st, "ingest", "a@1", src)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(pw, []byte("# users\nalice:"+string(h)+"\n"), 0o600)
	url, _, stop := startDAV(t, st, "a@1", "--htpasswd", pw)
	defer stop()
	curl(t, "-X", "OPTIONS", url).expect(t, "OPTIONS without auth", 200, []string{"dav: 1", "allow: options, get, head, propfind"})
	curl(t, url+"f.txt").expect(t, "GET without auth", 401, []string{`www-authenticate: basic realm="spraydryfs"`})
	curl(t, "-X", "PROPFIND", "-H", "Depth: 1", url).expect(t, "PROPFIND without auth", 401, nil)
	curl(t, "-u", "alice:wrong", url+"f.txt").expect(t, "wrong password", 401, nil)
	curl(t, "-u", "bob:pw", url+"f.txt").expect(t, "unknown user", 401, nil)
	curl(t, "-u", "alice:pw", url+"f.txt").expect(t, "GET with auth", 200, nil, "secret")
	curl(t, "-u", "alice:pw", "-X", "PROPFIND", "-H", "Depth: 1", url).expect(t, "PROPFIND with auth", 207, nil, "<D:href>/f.txt</D:href>")
	curl(t, "-u", "alice:pw", "-X", "PUT", "--data", "x", url+"f.txt").expect(t, "PUT with auth", 405, nil)

	// Bad flags and files are refused before serving.
	r := spraydryfs(t, "-s", st, "serve", "webdav", "--listen", "127.0.0.1:0", "--tls-cert", pw, "a@1")
	if r.code != 2 {
		t.Errorf("--tls-cert alone: %+v", r)
	}
	os.WriteFile(pw, []byte("alice:plaintext\n"), 0o600)
	if r := spraydryfs(t, "-s", st, "serve", "webdav", "--listen", "127.0.0.1:0", "--htpasswd", pw); r.code != 1 || !strings.Contains(r.stderr, "bcrypt") {
		t.Errorf("a non-bcrypt htpasswd: %+v", r)
	}
}

// TestWebDAVCorruption checks that a corrupt chunk is a 500 (or, for a
// large file whose headers are out, an aborted connection), never wrong
// bytes, and is logged with its hash.
func TestWebDAVCorruption(t *testing.T) {
	requireTools(t, "curl")
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	bad := []byte(strings.Repeat("this chunk rots ", 100))
	os.WriteFile(filepath.Join(src, "bad"), bad, 0o644)
	os.WriteFile(filepath.Join(src, "good"), []byte("fine"), 0o644)
	ok(t, "-s", st, "ingest", "c@1", src)
	conformance.Flip(t, st, hash.Sum(bad))
	url, stderr, stop := startDAV(t, st, "c@1")
	r := curl(t, url+"bad")
	r.expect(t, "corrupt file", 500, nil)
	if strings.Contains(r.body, "rots") {
		t.Errorf("corrupt bytes were served: %q", r.body)
	}
	curl(t, url+"good").expect(t, "healthy file", 200, nil, "fine")
	stop()
	if want := "corrupt chunk " + hash.Sum(bad).String(); !strings.Contains(stderr.String(), want) {
		t.Errorf("server log lacks %q:\n%s", want, stderr.String())
	}
}

// TestWebDAVCorruptListing checks that a collection whose listing is
// damaged is an error for clients, never an empty collection: PROPFIND
// Depth 1 on it is a 500, rclone copy of the tree fails, and the server
// logs the listing's hash.
func TestWebDAVCorruptListing(t *testing.T) {
	requireTools(t, "rclone", "curl")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(src, "b.txt"), []byte("b\n"), 0o644)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	for i := range 41 {
		os.WriteFile(filepath.Join(src, "sub", fmt.Sprintf("f%02d.txt", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644)
	}
	st := filepath.Join(t.TempDir(), "s.sdfs")
	ok(t, "-s", st, "ingest", "c@1", src)
	h := conformance.FlipDir(t, st, "c@1/sub")
	url, stderr, stop := startDAV(t, st, "c@1")
	defer stop()
	r := curl(t, "-X", "PROPFIND", "-H", "Depth: 1", url+"sub/")
	r.expect(t, "PROPFIND Depth 1 of a damaged collection", 500, nil)
	if strings.Contains(r.body, "multistatus") {
		t.Errorf("a multistatus for a damaged collection:\n%s", r.body)
	}
	cmd := exec.Command("rclone", "copy", "--retries", "1", "--low-level-retries", "1", "X:", filepath.Join(t.TempDir(), "copy"))
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG_X_TYPE=webdav", "RCLONE_CONFIG_X_URL="+url, "RCLONE_CONFIG_X_VENDOR=other",
		"RCLONE_CONFIG="+filepath.Join(t.TempDir(), "none.conf"))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("rclone copy of a tree with a damaged collection succeeded:\n%s", out)
	}
	stop()
	if log := stderr.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, h.String()) {
		t.Errorf("the server log does not name the damaged listing %s at ERROR:\n%s", h, log)
	}
}

// TestWebDAVCadaver drives cadaver through ls, cd and get.
func TestWebDAVCadaver(t *testing.T) {
	requireTools(t, "cadaver")
	src, st := davFixture(t)
	url, _, stop := startDAV(t, st, "", "-q")
	defer stop()
	out := filepath.Join(t.TempDir(), "got.txt")
	cmd := exec.Command("cadaver", url)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("ls\ncd fix/1/docs\nls\nget readme.txt " + out + "\ncd ..\nls\nmkdir x\nquit\n")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cadaver: %v\n%s", err, b)
	}
	s := string(b)
	for _, want := range []string{"fix", "readme.txt", "text.txt", "big.bin", "Coll:   docs"} {
		if !strings.Contains(s, want) {
			t.Errorf("cadaver output lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(s, "405") && !strings.Contains(strings.ToLower(s), "not allowed") {
		t.Errorf("cadaver mkdir was not refused:\n%s", s)
	}
	fixture.Compare(t, filepath.Join(src, "docs/readme.txt"), out, fixture.Caps{})
}

// TestWebDAVChromium loads a listing in headless Chromium: the DOM holds
// the entries (names escaped, the parent link) and a screenshot is taken
// (kept in $WEBDAV_SCREENSHOT if set, for a look).
func TestWebDAVChromium(t *testing.T) {
	requireTools(t, "chromium")
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub dir"), 0o755)
	if err := os.WriteFile(filepath.Join(src, "<b>bold<b> & \"quoted\".txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "ünïcødé.txt"), []byte("unicode\n"), 0o644)
	os.WriteFile(filepath.Join(src, "big.bin"), bytes.Repeat([]byte("z"), 3<<20), 0o644)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	ok(t, "-s", st, "ingest", "web@1", src)
	url, _, stop := startDAV(t, st, "", "-q")
	defer stop()
	chromium := func(args ...string) string {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir()}
		cmd := exec.Command("chromium", append(base, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %q: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	dom := chromium("--dump-dom", url+"web/1/")
	for _, want := range []string{"Index of /web/1/", `href="../"`, "sub dir/", "&lt;b&gt;bold&lt;b&gt; &amp; \"quoted\".txt",
		"ünïcødé.txt", "3.0 MiB", `href="./sub%20dir/"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %q:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "<b>bold") {
		t.Errorf("a name was not escaped:\n%s", dom)
	}
	shot := os.Getenv("WEBDAV_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "listing.png")
	}
	os.Remove(shot)
	chromium("--screenshot="+shot, "--window-size=1200,800", url+"web/1/")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("no screenshot: %v", err)
	}

	// --no-listing: 403 for collections, files still served.
	url2, _, stop2 := startDAV(t, st, "web@1", "-q", "--no-listing")
	defer stop2()
	curl(t, url2).expect(t, "--no-listing", 403, nil)
	curl(t, url2+"ünïcødé.txt").expect(t, "file with --no-listing", 200, nil, "unicode")
}

// TestWebDAVTLS serves HTTPS with a self-signed certificate.
func TestWebDAVTLS(t *testing.T) {
	requireTools(t, "curl")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f.txt"), []byte("over tls\n"), 0o644)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	ok(t, "-s", st, "ingest", "a@1", src)
	url, _, stop := startDAV(t, st, "a@1", "-q", "--tls-cert", cert, "--tls-key", keyFile)
	defer stop()
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("URL %q is not https", url)
	}
	curl(t, "--cacert", cert, url+"f.txt").expect(t, "GET over TLS", 200, nil, "over tls")
}
