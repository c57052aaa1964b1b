//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// nginxBin finds Debian's nginx.
func nginxBin() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// requireNginx skips (fails in CI) without nginx.
func requireNginx(t *testing.T) string {
	t.Helper()
	n := nginxBin()
	reason := ""
	if n == "" {
		reason = "missing nginx (apt-get install nginx)"
	}
	unavailable(t, "nginx tests", reason)
	return n
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// nginx is a running nginx child: a static server or a cache.
type nginx struct {
	port    int
	dir     string // its prefix: config, logs, temp files, cache
	cmd     *exec.Cmd
	exited  chan error
	stopped bool
}

// startNginx runs nginx in the foreground on a loopback port with
// server, the body of its one server block, and waits until it accepts
// connections. The access log (access.log in n.dir) has one
// "METHOD URI STATUS CACHE-STATUS cc=CACHE-CONTROL" line per request.
func startNginx(t *testing.T, server string) *nginx {
	t.Helper()
	bin := requireNginx(t)
	n := &nginx{port: freePort(t), dir: t.TempDir(), exited: make(chan error, 1)}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // the test's temp dirs are private to us
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
	log_format counted '$request_method $uri $status $upstream_cache_status cc=$http_cache_control';
	access_log %[2]s/access.log counted;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	proxy_cache_path %[2]s/cache keys_zone=objects:10m max_size=1g inactive=1h use_temp_path=off;
	types { application/json json; }
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:%[3]d;
		%[4]s
	}
}
`, user, n.dir, n.port, server)
	cfg := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-p", n.dir, "-c", cfg, "-e", filepath.Join(n.dir, "error.log"), "-g", "daemon off;")
	var stderr bytes.Buffer
	n.cmd.Stderr = &stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.exited <- n.cmd.Wait() }()
	t.Cleanup(n.stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.port)); err == nil {
			c.Close()
			return n
		}
		select {
		case err := <-n.exited:
			log, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s%s", err, stderr.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// url returns the address of path on the server.
func (n *nginx) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d/%s", n.port, path) }

// stop ends nginx (SIGQUIT would wait for idle keep-alive clients).
func (n *nginx) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// requests counts the access log's lines per "METHOD URI STATUS
// cc=CACHE-CONTROL".
func (n *nginx) requests(t *testing.T) map[string]int {
	return countLines(t, filepath.Join(n.dir, "access.log"), func(l string) string {
		f := strings.Fields(l)
		if len(f) < 5 {
			return ""
		}
		return strings.Join(append(f[:3], f[4]), " ")
	})
}

func countLines(t *testing.T, path string, key func(string) string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k := key(sc.Text()); k != "" {
			m[k]++
		}
	}
	return m
}

// staticSuite publishes stores into layout directories under one nginx
// static server, one layout per store file, pushed once.
type staticSuite struct {
	t    *testing.T
	root string
	srv  *nginx
	mu   sync.Mutex
	seen map[string]string // store path → layout name
}

func newStaticSuite(t *testing.T) *staticSuite {
	root := t.TempDir()
	s := &staticSuite{t: t, root: root, seen: map[string]string{}}
	s.srv = startNginx(t, fmt.Sprintf("root %s; location / { }", root))
	return s
}

// layout pushes storePath (once) and returns its layout directory and URL.
func (s *staticSuite) layout(t *testing.T, storePath string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, pushed := s.seen[storePath]
	if !pushed {
		name = fmt.Sprintf("l%d", len(s.seen))
		ok(t, "-s", storePath, "push", filepath.Join(s.root, name))
		s.seen[storePath] = name
	}
	return filepath.Join(s.root, name), s.srv.url(name + "/")
}

// mount mounts storePath's layout from the server, with an empty cache.
func (s *staticSuite) mount(t *testing.T, storePath, which string) (string, func()) {
	_, url := s.layout(t, storePath)
	dir, _, stop := startMount(t, url, which, "--cache-dir", t.TempDir())
	return dir, stop
}

// damage alters chunk h's object in the published copy, not the store.
func (s *staticSuite) damage(t *testing.T, storePath string, h hash.Hash) {
	dir, _ := s.layout(t, storePath)
	flipObject(t, dir, h)
}

// flipObject damages the last byte of chunk h's object in a layout, and
// of its copy in every pack that holds it.
func flipObject(t *testing.T, dir string, h hash.Hash) {
	p := filepath.Join(dir, layout.Key(layout.Chunk, h))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x10
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*", "*"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		k, addr, err := layout.ParseKey(filepath.ToSlash(strings.TrimPrefix(p, dir+"/")))
		if err != nil {
			t.Fatal(err)
		}
		o, err := layout.Decode(b, k, addr)
		if err != nil {
			t.Fatal(err)
		}
		for i := range o.Pack {
			if f := &o.Pack[i].Frame; o.Pack[i].Hash == h {
				f.Data = bytes.Clone(f.Data)
				f.Data[len(f.Data)-1] ^= 0x10
				if err := os.WriteFile(p, layout.EncodePack(addr, o.Pack), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestRemoteStaticConformance pushes the conformance fixture to layout
// directories served by a real nginx as plain files, and runs the shared
// suite through `mount -s http://…` (the kernel's FUSE client): the tree,
// find/tar/diff, read-only errors, stable inodes, parallel readers, the
// namespace, and an object altered on the server failing with EIO.
func TestRemoteStaticConformance(t *testing.T) {
	requireFUSE(t)
	t.Parallel() // a long suite (doc.go)
	s := newStaticSuite(t)
	conformance.Run(t, conformance.Suite{
		Caps: conformance.Caps{
			Caps:         fixture.All(),
			StableInodes: true,
			Tools:        true,
			WriteErrno:   syscall.EROFS,
			CorruptErrno: syscall.EIO,
		},
		Mount:  s.mount,
		Damage: s.damage,
	})
}

// remoteStore ingests a small tree with a few larger files and returns
// the store path and the source directory.
func remoteStore(t *testing.T, files int) (string, string) {
	return remoteStoreWith(t, files, nil)
}

// remoteStoreWith is remoteStore with more written by extra into the
// source directory before the ingest.
func remoteStoreWith(t *testing.T, files int, extra func(src string)) (string, string) {
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	if extra != nil {
		extra(src)
	}
	for i := range files {
		d := filepath.Join(src, fmt.Sprintf("d%d", i%10))
		os.MkdirAll(d, 0o755)
		body := strings.Repeat(fmt.Sprintf("file %d line; ", i), 5+i%50)
		if i%25 == 0 {
			body = strings.Repeat(fmt.Sprintf("a larger file %d, several chunks: %x ", i, i*7919), 20000)
		}
		os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d.txt", i)), []byte(body), 0o644)
	}
	ok(t, "-s", st, "ingest", "r@1", src)
	return st, src
}

// TestRemoteAlteredObject: a chunk altered on the static server, and in
// its directory's pack, is fetched once more with no-cache, then fails
// with EIO, logged with its address; the other files read.
func TestRemoteAlteredObject(t *testing.T) {
	requireFUSE(t)
	s := newStaticSuite(t)
	st, src := remoteStore(t, 30)
	victim := filepath.Join("d3", "f0003.txt")
	content, _ := os.ReadFile(filepath.Join(src, victim))
	h := hash.Sum(content)
	s.damage(t, st, h)
	_, url := s.layout(t, st)
	dir, stderr, stop := startMount(t, url, "r@1", "--cache-dir", t.TempDir())
	_, err := os.ReadFile(filepath.Join(dir, victim))
	good, gerr := os.ReadFile(filepath.Join(dir, "d4", "f0004.txt"))
	stop()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("altered object: %v, want EIO", err)
	}
	if want, _ := os.ReadFile(filepath.Join(src, "d4", "f0004.txt")); gerr != nil || !bytes.Equal(good, want) {
		t.Fatalf("healthy file: %v", gerr)
	}
	if !strings.Contains(stderr.String(), h.String()) || !strings.Contains(stderr.String(), "fetching it again") {
		t.Errorf("mount log lacks the address %s or the refetch:\n%s", h, stderr.String())
	}
	// Its pack's copy fails, and each read that needs it fetches it once
	// with no-cache (the kernel may retry a failed read).
	key := "GET /l0/" + layout.Key(layout.Chunk, h) + " 200"
	reqs := s.srv.requests(t)
	if plain, fresh := reqs[key+" cc=-"], reqs[key+" cc=no-cache"]; plain != 0 || fresh < 1 || fresh > 3 {
		t.Errorf("altered object fetched %d times plainly and %d with no-cache; want none (its pack's copy) and 1 per read", plain, fresh)
	}
}

// TestRemoteStoppedMidRead: with the server stopped, what the mount has
// read keeps reading; files it has not read (nor prefetched) fail with
// EIO, quickly.
func TestRemoteStoppedMidRead(t *testing.T) {
	requireFUSE(t)
	s := newStaticSuite(t)
	// A file bigger than a pack: its tail is only ever fetched when read.
	big := filepath.Join("big", "blob")
	st, src := remoteStoreWith(t, 60, func(src string) {
		os.Mkdir(filepath.Join(src, "big"), 0o755)
		b := make([]byte, 3*layout.PackMax)
		rand.Read(b)
		os.WriteFile(filepath.Join(src, big), b, 0o644)
	})
	_, url := s.layout(t, st)
	dir, _, stop := startMount(t, url, "r@1", "--cache-dir", t.TempDir())
	defer stop()
	read := filepath.Join("d1", "f0001.txt")
	if _, err := os.ReadFile(filepath.Join(dir, read)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(filepath.Join(dir, "d2")); err != nil {
		t.Fatal(err)
	}
	s.srv.stop()
	want, _ := os.ReadFile(filepath.Join(src, read))
	if got, err := os.ReadFile(filepath.Join(dir, read)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("a file read before the server stopped: %v", err)
	}
	start := time.Now()
	// The packs of the listed directories may have been read ahead before
	// the stop: their files read whole, or fail with EIO, never wrongly.
	p := filepath.Join("d2", "f0002.txt")
	want, _ = os.ReadFile(filepath.Join(src, p))
	if got, err := os.ReadFile(filepath.Join(dir, p)); !errors.Is(err, syscall.EIO) && (err != nil || !bytes.Equal(got, want)) {
		t.Errorf("%s with the server stopped: %d bytes, %v; want its bytes or EIO", p, len(got), err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, big)); !errors.Is(err, syscall.EIO) {
		t.Errorf("%s with the server stopped: %d bytes, %v; want EIO", big, len(got), err)
	}
	// (Directories are not checked: listing the top prefetched them all.)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("failing took %v", d)
	}
}

var pushLine = regexp.MustCompile(`: (\d+) objects, (\d+) (?:sent|fetched) \(.*\), (\d+) already there`)

// pushCounts parses push's summary: objects, sent, already there.
func pushCounts(t *testing.T, out string) (int, int, int) {
	m := pushLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no push summary in %q", out)
	}
	var a, b, c int
	fmt.Sscan(m[1], &a)
	fmt.Sscan(m[2], &b)
	fmt.Sscan(m[3], &c)
	return a, b, c
}

// TestPushKilledResumes: push killed with SIGKILL midway publishes no
// index; the re-run sends only what is missing, and the layout reads back.
func TestPushKilledResumes(t *testing.T) {
	st, src := remoteStore(t, 3000)
	dest := filepath.Join(t.TempDir(), "pub")
	cmd := exec.Command(bin, "-s", st, "push", "-j", "2", dest)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	for range 5000 {
		m, _ := filepath.Glob(filepath.Join(dest, "objects", "*", "*", "*"))
		if len(m) >= 200 {
			cmd.Process.Kill()
			killed = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	err := cmd.Wait()
	if !killed || err == nil {
		t.Fatalf("push finished before it could be killed (%v)", err)
	}
	if layout.IsDir(dest) {
		t.Fatal("a killed push left an index")
	}
	before, _ := filepath.Glob(filepath.Join(dest, "objects", "*", "*", "*"))
	total, sent, there := pushCounts(t, ok(t, "-s", st, "push", dest).stdout)
	if there < len(before)-5 || sent != total-there || sent == 0 {
		t.Fatalf("re-run: %d objects, %d sent, %d there; %d were there after the kill", total, sent, there, len(before))
	}
	if _, sent, _ := pushCounts(t, ok(t, "-s", st, "push", dest).stdout); sent != 0 {
		t.Errorf("third push sent %d objects", sent)
	}
	ok(t, "-s", dest, "check", "--read-data")
	out := filepath.Join(t.TempDir(), "out")
	ok(t, "-s", dest, "extract", "r@1", out)
	if b, err := exec.Command("diff", "-r", src, out).CombinedOutput(); err != nil {
		t.Fatalf("diff: %v\n%s", err, b)
	}
}

// TestPullKilledResumes: pull from `serve http` into a store file, killed
// with SIGKILL once some objects are committed, adds no root; the re-run
// fetches only what is missing and makes an offline copy that passes
// check --read-data and extracts byte-exact with the server stopped.
func TestPullKilledResumes(t *testing.T) {
	t.Parallel() // a long suite (doc.go)
	// Enough files that the pull outlasts a batch commit (one a second)
	// on an idle machine, so the kill comes after some are committed.
	st, src := remoteStore(t, 12000)
	url, _, stop := serveHTTP(t, st)
	dest := filepath.Join(t.TempDir(), "copy.sdfs")
	cmd := exec.Command(bin, "-s", dest, "pull", "-j", "1", url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	chunks := func() int64 {
		s, err := store.Open(dest, store.Options{ReadOnly: true})
		if err != nil {
			return 0
		}
		defer s.Close()
		n, _ := s.Stats(context.Background())
		return n.Chunks
	}
	killed := false
	for range 2000 {
		if chunks() >= 100 {
			cmd.Process.Kill()
			killed = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := cmd.Wait()
	if !killed || err == nil {
		t.Fatalf("pull finished before it could be killed (%v)", err)
	}
	if out := ok(t, "-s", dest, "roots").stdout; strings.Contains(out, "r@1") {
		t.Fatalf("a killed pull added a root:\n%s", out)
	}
	before := chunks()
	total, fetched, there := pushCounts(t, ok(t, "-s", dest, "pull", url).stdout)
	if int64(there) < before || fetched != total-there || fetched == 0 {
		t.Fatalf("re-run: %d objects, %d fetched, %d there; %d chunks were there after the kill", total, fetched, there, before)
	}
	if _, fetched, _ := pushCounts(t, ok(t, "-s", dest, "pull", url).stdout); fetched != 0 {
		t.Errorf("third pull fetched %d objects", fetched)
	}
	stop()
	ok(t, "-s", dest, "check", "--read-data")
	out := filepath.Join(t.TempDir(), "out")
	ok(t, "-s", dest, "extract", "r@1", out)
	if b, err := exec.Command("diff", "-r", src, out).CombinedOutput(); err != nil {
		t.Fatalf("diff: %v\n%s", err, b)
	}
}

// serveHTTP runs `spraydryfs serve http` on store st and returns its URL
// and its stderr (the access log), complete once stop has returned.
func serveHTTP(t *testing.T, st string) (string, *syncBuffer, func()) {
	t.Helper()
	cmd := exec.Command(bin, "-s", st, "serve", "http", "--listen", "127.0.0.1:0")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("serve http: %v\n%s", err, stderr.String())
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("serve http exited with %v:\n%s", err, stderr.String())
		}
	}
	t.Cleanup(stop)
	return strings.TrimSpace(url), &stderr, stop
}

var originLine = regexp.MustCompile(`msg=request method=(\S+) path=(\S+) status=(\d+)`)

// TestRemoteProxyCache puts nginx's proxy_cache between `serve http` and
// two readers with their own empty caches (an extract, then a FUSE mount
// read with diff -r): both get the tree, and the origin sees each object
// once, the second reader being served from nginx's cache.
func TestRemoteProxyCache(t *testing.T) {
	requireFUSE(t)
	st, src := remoteStore(t, 300)
	origin, originLog, stopOrigin := serveHTTP(t, st)
	cache := startNginx(t, fmt.Sprintf(`location / {
		proxy_pass %s;
		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_cache objects;
		proxy_cache_lock on;
		proxy_cache_valid 404 1m;
		proxy_cache_revalidate on;
		proxy_cache_bypass $http_cache_control;
	}`, origin))
	url := cache.url("")

	out := filepath.Join(t.TempDir(), "out")
	ok(t, "-s", url, "--cache-dir", t.TempDir(), "extract", "r@1", out)
	if b, err := exec.Command("diff", "-r", src, out).CombinedOutput(); err != nil {
		t.Fatalf("first reader: %v\n%s", err, b)
	}
	first := cache.requests(t)
	dir, _, unmount := startMount(t, url, "r@1", "--cache-dir", t.TempDir())
	b, err := exec.Command("diff", "-r", src, dir).CombinedOutput()
	unmount()
	if err != nil {
		t.Fatalf("second reader: %v\n%s", err, b)
	}
	stopOrigin()

	perPath := map[string]int{}
	originGets := 0
	for _, m := range originLine.FindAllStringSubmatch(originLog.String(), -1) {
		if m[1] == "GET" {
			perPath[m[2]]++
			originGets++
		}
	}
	for p, n := range perPath {
		if n != 1 {
			t.Errorf("origin served %s %d times", p, n)
		}
	}
	total := 0
	for _, n := range first {
		total += n
	}
	all := countLines(t, filepath.Join(cache.dir, "access.log"), func(l string) string {
		if f := strings.Fields(l); len(f) > 3 {
			return f[3]
		}
		return ""
	})
	t.Logf("origin: %d GETs for %d paths; cache: %d requests from the first reader, %d in all (cache status: %v)",
		originGets, len(perPath), total, sum(all), all)
	if all["HIT"] < total/2 {
		t.Errorf("the second reader was not served from the cache: %v", all)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestServeHTTPCommands reads a `serve http --htpasswd` origin with the
// reading commands: roots, ls, cat, check and serve webdav with the
// password in the URL, a clear failure without it, and 405 for writes.
func TestServeHTTPCommands(t *testing.T) {
	st, src := remoteStore(t, 30)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(pw, []byte("reader:"+string(h)+"\n"), 0o600)
	cmd := exec.Command(bin, "-s", st, "serve", "http", "--listen", "127.0.0.1:0", "--htpasswd", pw, "-q")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	base, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base = strings.TrimSpace(base)
	authed := strings.Replace(base, "http://", "http://reader:pw@", 1)

	if r := ok(t, "-s", authed, "roots"); !strings.Contains(r.stdout, "r@1") {
		t.Errorf("roots: %q", r.stdout)
	}
	if r := ok(t, "-s", authed, "ls", "r@1/d3"); !strings.Contains(r.stdout, "f0003.txt") {
		t.Errorf("ls: %q", r.stdout)
	}
	want, _ := os.ReadFile(filepath.Join(src, "d0", "f0000.txt"))
	if r := ok(t, "-s", authed, "cat", "r@1/d0/f0000.txt"); r.stdout != string(want) {
		t.Errorf("cat: %d bytes, want %d", len(r.stdout), len(want))
	}
	ok(t, "-s", authed, "check", "--read-data")
	// The frontends serve a remote store too.
	dav, _, stopDAV := startDAV(t, authed, "r@1", "-q")
	resp, err := http.Get(dav + "d0/f0000.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stopDAV()
	if resp.StatusCode != 200 || string(got) != string(want) {
		t.Errorf("serve webdav -s URL: %s, %d bytes", resp.Status, len(got))
	}
	r := spraydryfs(t, "-s", base, "roots")
	wantFail(t, r, 1, "401")
	if strings.Contains(r.stderr, "pw@") {
		t.Errorf("password in an error: %s", r.stderr)
	}
	req, _ := http.NewRequest("PUT", authed+"index.json", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("PUT: %v %v", resp, err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (cert, key string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

// TestServeHTTPS: serve http over TLS, read with -s https:// by a client
// that trusts the certificate (SSL_CERT_FILE), refused by one that does
// not.
func TestServeHTTPS(t *testing.T) {
	st, src := remoteStore(t, 5)
	cert, key := selfSigned(t)
	cmd := exec.Command(bin, "-s", st, "serve", "http", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "-q")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(url, "https://") {
		t.Fatalf("URL %q, %v", url, err)
	}
	url = strings.TrimSpace(url)
	read := func(env ...string) (string, error) {
		c := exec.Command(bin, "-s", url, "--cache-dir", t.TempDir(), "cat", "r@1/d1/f0001.txt")
		c.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		b, err := c.Output()
		if err != nil {
			return stderr.String(), err
		}
		return string(b), nil
	}
	want, _ := os.ReadFile(filepath.Join(src, "d1", "f0001.txt"))
	if got, err := read("SSL_CERT_FILE=" + cert); err != nil || got != string(want) {
		t.Fatalf("trusting client: %q, %v", got, err)
	}
	if msg, err := read("SSL_CERT_FILE=/dev/null", "SSL_CERT_DIR=/nonexistent"); err == nil || !strings.Contains(msg, "certificate") {
		t.Fatalf("untrusting client: %q, %v", msg, err)
	}
}

// cachedKeys lists the objects in a local cache directory.
func cachedKeys(t *testing.T, dir string) map[string]bool {
	m := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(dir, "objects", "*", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		m[filepath.ToSlash(rel)] = true
	}
	return m
}

// originGets returns the object paths the origin's log shows GET
// requests for, from byte offset from on.
func originGets(log *syncBuffer, from int) []string {
	var keys []string
	for _, m := range originLine.FindAllStringSubmatch(log.String()[from:], -1) {
		if m[1] == "GET" && strings.HasPrefix(m[2], "/objects/") {
			keys = append(keys, strings.TrimPrefix(m[2], "/"))
		}
	}
	return keys
}

// TestRemoteWarmCache reads part of a tree from `serve http` through a
// FUSE mount with an empty local cache (--cache-dir); a second mount with
// that cache reads it again and asks the origin for no object it holds.
// With the origin stopped, a third mount still has the roots (from the
// kept index, with a warning) and reads every file read before byte-exact,
// while a file never read fails with EIO, quickly.
func TestRemoteWarmCache(t *testing.T) {
	requireFUSE(t)
	st, src := remoteStore(t, 60)
	url, originLog, stopOrigin := serveHTTP(t, st)
	cacheDir := t.TempDir()
	var read []string // every file of d0 to d4, among them multi-chunk ones
	for i := range 60 {
		if i%10 < 5 {
			read = append(read, filepath.Join(fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%04d.txt", i)))
		}
	}
	readTree := func(dir string) {
		t.Helper()
		for _, p := range read {
			want, _ := os.ReadFile(filepath.Join(src, p))
			if got, err := os.ReadFile(filepath.Join(dir, "r", "1", p)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes, %v", p, len(got), err)
			}
		}
	}

	dir, _, unmount := startMount(t, url, "", "--cache-dir", cacheDir)
	readTree(dir)
	unmount()
	cached := cachedKeys(t, cacheDir)
	first := len(originGets(originLog, 0))
	if len(cached) == 0 || first == 0 {
		t.Fatalf("first mount: %d objects fetched, %d cached", first, len(cached))
	}

	mark := originLog.Len()
	dir, _, unmount = startMount(t, url, "", "--cache-dir", cacheDir)
	readTree(dir)
	unmount()
	again := originGets(originLog, mark)
	for _, k := range again {
		if cached[k] {
			t.Errorf("the warm mount asked the origin for cached %s", k)
		}
	}
	t.Logf("first mount: %d object GETs, %d objects cached; warm mount: %d object GETs", first, len(cached), len(again))
	stopOrigin()

	dir, stderr, unmount := startMount(t, url, "", "--cache-dir", cacheDir)
	defer unmount()
	if names, err := os.ReadDir(dir); err != nil || len(names) != 1 || names[0].Name() != "r" {
		t.Fatalf("roots with the origin down: %v, %v", names, err)
	}
	readTree(dir)
	start := time.Now()
	never := filepath.Join(dir, "r", "1", "d7", "f0007.txt")
	if got, err := os.ReadFile(never); !errors.Is(err, syscall.EIO) {
		t.Errorf("a file never read, with the origin down: %d bytes, %v; want EIO", len(got), err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing took %v", d)
	}
	if !strings.Contains(stderr.String(), "roots index kept in the cache") {
		t.Errorf("no warning about the kept roots index:\n%s", stderr.String())
	}
}
