//go:build linux

package ninep

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
	"github.com/spraydryfs/spraydryfs/integration/fixture"

	"github.com/spraydryfs/spraydryfs/frontends/report"
)

const manyFiles = 5000

// longName is entry i of the big directory: 200 bytes, so a 64 KiB reply
// holds about 280 entries.
func longName(i int) string {
	s := fmt.Sprintf("entry-%05d-", i)
	return s + strings.Repeat("x", 200-len(s))
}

// env is a store with t@1 (the test tree), t@2 and other@a, served on a
// Unix socket.
type env struct {
	path string
	s    *store.Store
	srv  *Server
	sock string
	log  *bytes.Buffer
	big  []byte
	bad  []byte // content of t@1/bad, whose chunk is damaged
	stop func()
}

var logMu sync.Mutex

type lockedBuffer struct{ b *bytes.Buffer }

func (l lockedBuffer) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return l.b.Write(p)
}

func (e *env) logged() string {
	logMu.Lock()
	defer logMu.Unlock()
	return e.log.String()
}

// built is the store every test serves, made once (ingesting 5,000 files
// takes a while under -race).
var built struct {
	once     sync.Once
	dir      string
	path     string
	big, bad []byte
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildStore makes the test store: t@1 (the test tree, with the chunk of
// "bad" damaged), t@2 and other@a.
func buildStore(t *testing.T) {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "ninep-test-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		built.err = makeStore(t, dir)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
}

func makeStore(t *testing.T, dir string) (failed error) {
	t.Helper()
	src := filepath.Join(dir, "src")
	must := func(err error) {
		t.Helper()
		if err != nil && failed == nil {
			failed = err
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub", "deeper"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "many"), 0o755))
	for i := 0; i < manyFiles; i++ {
		must(os.WriteFile(filepath.Join(src, "many", longName(i)), nil, 0o644))
	}
	big := make([]byte, 3<<20+777)
	rand.New(rand.NewSource(1)).Read(big)
	must(os.WriteFile(filepath.Join(src, "big"), big, 0o640))
	must(os.WriteFile(filepath.Join(src, "sub", "deeper", "f"), []byte("deep\n"), 0o600))
	bad := []byte(strings.Repeat("this chunk rots ", 100))
	must(os.WriteFile(filepath.Join(src, "bad"), bad, 0o644))
	must(os.WriteFile(filepath.Join(src, "good"), []byte("fine"), 0o644))
	must(os.Symlink("sub/deeper/f", filepath.Join(src, "link")))
	must(unix.Setxattr(filepath.Join(src, "good"), "user.colour", []byte("blue"), 0))
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	must(os.Chtimes(filepath.Join(src, "good"), mtime, mtime))

	path := filepath.Join(dir, "s.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		return err
	}
	put := func(name, version, src string) {
		if _, err := ingest.Run(context.Background(), s, ingest.Options{Name: name, Version: version, Sources: []ingest.Source{{Dir: src}}}); err != nil {
			must(fmt.Errorf("ingest %s@%s: %w", name, version, err))
		}
	}
	put("t", "1", src)
	v2 := filepath.Join(dir, "v2")
	must(os.MkdirAll(v2, 0o755))
	must(os.WriteFile(filepath.Join(v2, "version"), []byte("two\n"), 0o644))
	put("t", "2", v2)
	put("other", "a", v2)
	must(s.Close())
	conformance.Flip(t, path, hash.Sum(bad))

	built.path, built.big, built.bad = path, big, bad
	return failed
}

func setup(t *testing.T) *env {
	t.Helper()
	return setupServing(t, "")
}

// setupServing is setup with the server's view opened from spec, as
// `serve 9p SPEC` does.
func setupServing(t *testing.T, spec string) *env {
	t.Helper()
	return setupWith(t, spec, Options{})
}

// setupWith is setupServing with server options (Log is set here).
func setupWith(t *testing.T, spec string, opt Options) *env {
	t.Helper()
	buildStore(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	path, big, bad, dir := built.path, built.big, built.bad, t.TempDir()
	s, err := store.Open(path, store.Options{})
	must(err)
	e := &env{path: path, s: s, log: &bytes.Buffer{}, big: big, bad: bad, sock: filepath.Join(dir, "sock")}
	log := slog.New(slog.NewTextHandler(lockedBuffer{e.log}, nil))
	def, err := backend.OpenSpec(context.Background(), s.Objects, spec)
	must(err)
	opt.Log = log
	e.srv = New(s.Objects, def, opt)
	ln, err := net.Listen("unix", e.sock)
	must(err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
			// The store stays open: backend.Reader's read-ahead goroutines
			// are not waited for, and closing the store under them crashes
			// SQLite (a backend fault, reported). The temporary
			// directory goes anyway.
		})
	}
	t.Cleanup(e.stop)
	return e
}

// attach connects a p9 client and attaches aname.
func (e *env) attach(t *testing.T, aname string) (p9.File, error) {
	t.Helper()
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := p9.NewClient(c, p9.WithMessageSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl.Attach(aname)
}

func (e *env) mustAttach(t *testing.T, aname string) p9.File {
	t.Helper()
	f, err := e.attach(t, aname)
	if err != nil {
		t.Fatalf("attach %q: %v", aname, err)
	}
	return f
}

func walk(t *testing.T, f p9.File, path string) p9.File {
	t.Helper()
	var names []string
	if path != "" {
		names = strings.Split(path, "/")
	}
	_, c, err := f.Walk(names)
	if err != nil {
		t.Fatalf("walk %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readdir lists an opened directory page by page with count bytes per
// reply, resuming at the last entry's cookie.
func readdir(t *testing.T, d p9.File, count uint32) (p9.Dirents, int) {
	t.Helper()
	var all p9.Dirents
	pages := 0
	off := uint64(0)
	for {
		page, err := d.Readdir(off, count)
		if err != nil {
			t.Fatalf("readdir at %d: %v", off, err)
		}
		if len(page) == 0 {
			return all, pages
		}
		pages++
		all = append(all, page...)
		off = page[len(page)-1].Offset
	}
}

func names(ds p9.Dirents) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func openDir(t *testing.T, root p9.File, path string) p9.File {
	t.Helper()
	d := walk(t, root, path)
	if _, _, err := d.Open(p9.ReadOnly); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return d
}

func TestReadDirPages(t *testing.T) {
	e := setup(t)
	root := e.mustAttach(t, "t@1")
	d := openDir(t, root, "many")
	for _, count := range []uint32{64 << 10, 8 << 10, 1000} {
		ents, pages := readdir(t, d, count)
		if pages < 2 {
			t.Errorf("count %d: one page for %d entries", count, len(ents))
		}
		seen := map[string]int{}
		for i, de := range ents {
			seen[de.Name]++
			if de.Offset != uint64(i+1) {
				t.Fatalf("count %d: entry %d (%s) has cookie %d", count, i, de.Name, de.Offset)
			}
			if de.Name != "." && de.Name != ".." && de.Type != 8 {
				t.Errorf("%s: dirent type %d, want DT_REG (8)", de.Name, de.Type)
			}
		}
		if len(ents) != manyFiles+2 || seen["."] != 1 || seen[".."] != 1 {
			t.Errorf("count %d: %d entries, want %d + . and ..", count, len(ents), manyFiles)
		}
		for i := 0; i < manyFiles; i++ {
			if seen[longName(i)] != 1 {
				t.Fatalf("count %d: %s seen %d times", count, longName(i), seen[longName(i)])
			}
		}
	}
	// Cookies are stable: resuming at any cookie, on another fid, gives
	// the same continuation.
	all, _ := readdir(t, d, 64<<10)
	d2 := openDir(t, root, "many")
	for _, at := range []int{1, 2, 777, manyFiles} {
		page, err := d2.Readdir(all[at-1].Offset, 8<<10)
		if err != nil || len(page) == 0 || page[0].Name != all[at].Name {
			t.Errorf("resume after cookie %d: %v %v, want %s", all[at-1].Offset, names(page[:min(len(page), 1)]), err, all[at].Name)
		}
	}
	if page, err := d2.Readdir(uint64(len(all)), 8<<10); err != nil || len(page) != 0 {
		t.Errorf("read past the end: %v, %v", names(page), err)
	}
	// Types of the other entries.
	top, _ := readdir(t, openDir(t, root, ""), 64<<10)
	types := map[string]p9.QIDType{}
	for _, de := range top {
		types[de.Name] = de.Type
	}
	if types["link"] != 10 || types["sub"] != 4 || types["big"] != 8 {
		t.Errorf("dirent types: %v, want link 10, sub 4, big 8", types)
	}
}

func wantErrno(t *testing.T, what string, err error, want linux.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func TestWritesEROFS(t *testing.T) {
	e := setup(t)
	root := e.mustAttach(t, "t@1")
	dir := walk(t, root, "sub")
	f := walk(t, root, "good")
	_, _, _, err := dir.Create("new", p9.ReadWrite, 0o644, 0, 0)
	wantErrno(t, "create", err, linux.EROFS)
	_, err = dir.Mkdir("new", 0o755, 0, 0)
	wantErrno(t, "mkdir", err, linux.EROFS)
	_, err = dir.Symlink("x", "new", 0, 0)
	wantErrno(t, "symlink", err, linux.EROFS)
	wantErrno(t, "link", dir.Link(f, "new"), linux.EROFS)
	_, err = dir.Mknod("new", p9.ModeRegular|0o644, 0, 0, 0, 0)
	wantErrno(t, "mknod", err, linux.EROFS)
	wantErrno(t, "renameat", dir.RenameAt("deeper", dir, "other"), linux.EROFS)
	wantErrno(t, "unlinkat", dir.UnlinkAt("deeper", 0), linux.EROFS)
	wantErrno(t, "unlinkat dir", dir.UnlinkAt("deeper", unix.AT_REMOVEDIR), linux.EROFS)
	for name, x := range map[string]p9.File{"file": f, "dir": dir} {
		wantErrno(t, "setattr "+name, x.SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{Size: 0}), linux.EROFS)
		wantErrno(t, "setattr mode "+name, x.SetAttr(p9.SetAttrMask{Permissions: true}, p9.SetAttr{Permissions: 0o777}), linux.EROFS)
		wantErrno(t, "rename "+name, x.Rename(root, "elsewhere"), linux.EROFS)
	}
	for _, mode := range []p9.OpenFlags{p9.WriteOnly, p9.ReadWrite} {
		g := walk(t, root, "good")
		_, _, err := g.Open(mode)
		wantErrno(t, fmt.Sprintf("open %v", mode), err, linux.EROFS)
	}
	// Remove clunks the fid whatever the answer.
	if rm, ok := walk(t, root, "good").(interface{ Remove() error }); ok {
		wantErrno(t, "remove", rm.Remove(), linux.EROFS)
	} else {
		t.Errorf("p9's client file has no Remove")
	}
	// Setting or removing an xattr: Txattrcreate, then the clunk answers.
	rc := e.raw(t, "t@1", "good")
	if err := rc.xattrCreate(t, "user.new", 3); err != nil {
		t.Fatalf("xattrcreate: %v", err)
	}
	rc.write(t, []byte("new"))
	wantErrno(t, "setxattr (clunk)", rc.clunk(t, 2), linux.EROFS)
	// The tree is unchanged.
	if _, _, err := root.Walk([]string{"sub", "deeper"}); err != nil {
		t.Errorf("after the writes: %v", err)
	}
}

func TestAname(t *testing.T) {
	e := setup(t)
	list := func(aname string) []string {
		t.Helper()
		root := e.mustAttach(t, aname)
		d := openDir(t, root, "")
		ents, _ := readdir(t, d, 64<<10)
		return names(ents)[2:]
	}
	for aname, want := range map[string]string{
		"":                "other t",
		"/":               "other t",
		"t":               "1 2 latest",
		"t@1":             "bad big good link many sub",
		"/t@1/":           "bad big good link many sub",
		"t@2":             "version",
		"t@latest":        "version",
		"t@1/sub":         "deeper",
		"t@1/sub/deeper/": "f",
	} {
		if got := strings.Join(list(aname), " "); got != want {
			t.Errorf("aname %q lists %q, want %q", aname, got, want)
		}
	}
	for aname, want := range map[string]linux.Errno{
		"nope@1":                        linux.ENOENT,
		"nope":                          linux.ENOENT,
		"t@9":                           linux.ENOENT,
		"t@1/missing":                   linux.ENOENT,
		"t@1/good":                      linux.ENOTDIR,
		"t@1/../t@2":                    linux.EINVAL,
		"t@1/sub/..":                    linux.EINVAL,
		"..":                            linux.EINVAL,
		"t@1/./sub":                     linux.EINVAL,
		"t@1//sub":                      linux.EINVAL,
		"t@@1":                          linux.EINVAL,
		"@1":                            linux.EINVAL,
		"t@1@2":                         linux.EINVAL,
		"t/sub":                         linux.EINVAL,
		"\x00t@1":                       linux.EINVAL,
		strings.Repeat("a", 300) + "@1": linux.EINVAL,
	} {
		_, err := e.attach(t, aname)
		wantErrno(t, fmt.Sprintf("attach %q", aname), err, want)
	}
	// A client cannot reach another tree by walking the marker itself.
	root := e.mustAttach(t, "t@2")
	if _, _, err := root.Walk([]string{anameMark + "t@1"}); err == nil {
		t.Errorf("walked the aname marker from a tree")
	}
	// Several attaches on one connection and several connections at once.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f, err := e.attach(t, []string{"t@1", "", "t@1/sub", "t"}[i%4])
			if err != nil {
				t.Errorf("concurrent attach: %v", err)
				return
			}
			f.Close()
		}(i)
	}
	wg.Wait()
}

// TestAnameWithinServedTree: a tree given to the server is the limit of
// what attach names reach: that tree or directories inside it, nothing
// else, whatever exists in the store.
func TestAnameWithinServedTree(t *testing.T) {
	for _, c := range []struct {
		served string
		ok     map[string]string // aname: what its top lists
		denied []string          // EACCES
	}{
		{served: "t@1",
			ok:     map[string]string{"": "bad big good link many sub", "t@1": "bad big good link many sub", "/t@1/": "bad big good link many sub", "t@1/sub": "deeper", "t@1/sub/deeper": "f"},
			denied: []string{"other@a", "t@2", "t@latest", "t", "other", "nope@1", "t@9", "t@1x", "tt@1"}},
		{served: "t@1/sub",
			ok:     map[string]string{"": "deeper", "t@1/sub": "deeper", "t@1/sub/deeper": "f"},
			denied: []string{"t@1", "t@1/many", "t@1/subx", "t@1/su", "t@2", "other@a", "t"}},
		{served: "t@latest",
			ok:     map[string]string{"": "version", "t@2": "version", "t@latest": "version"},
			denied: []string{"t@1", "other@a", "t"}},
		{served: "t",
			ok:     map[string]string{"": "1 2 latest", "t": "1 2 latest", "t@1/sub": "deeper", "t@latest": "version"},
			denied: []string{"other@a", "other", "nope"}},
	} {
		t.Run(strings.ReplaceAll(c.served, "/", "_"), func(t *testing.T) {
			e := setupServing(t, c.served)
			for aname, want := range c.ok {
				root, err := e.attach(t, aname)
				if err != nil {
					t.Errorf("serving %s: attach %q: %v", c.served, aname, err)
					continue
				}
				ents, _ := readdir(t, openDir(t, root, ""), 64<<10)
				if got := strings.Join(names(ents)[2:], " "); got != want {
					t.Errorf("serving %s: aname %q lists %q, want %q", c.served, aname, got, want)
				}
			}
			for _, aname := range c.denied {
				_, err := e.attach(t, aname)
				wantErrno(t, fmt.Sprintf("serving %s: attach %q", c.served, aname), err, linux.EACCES)
			}
			_, err := e.attach(t, "t@1/../t@2")
			wantErrno(t, "malformed", err, linux.EINVAL)
		})
	}
}

func TestGetattr(t *testing.T) {
	e := setup(t)
	v, err := backend.OpenRoot(context.Background(), e.s.Objects, store.Ref{Name: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	root := e.mustAttach(t, "t@1")
	for _, path := range []string{"good", "big", "link", "sub", "sub/deeper/f", "many"} {
		n, err := v.Walk(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		qids, _, valid, a, err := root.WalkGetAttr(strings.Split(path, "/"))
		if err != nil {
			t.Fatalf("walkgetattr %s: %v", path, err)
		}
		f := walk(t, root, path)
		q, valid2, a2, err := f.GetAttr(p9.AttrMaskAll)
		if err != nil {
			t.Fatal(err)
		}
		if a != a2 || valid != valid2 || q != qids[len(qids)-1] {
			t.Errorf("%s: walkgetattr %+v %v, getattr %+v %v", path, a, qids, a2, q)
		}
		if !valid.Mode || !valid.Size || !valid.MTime || !valid.NLink || !valid.UID || !valid.Blocks {
			t.Errorf("%s: valid %+v", path, valid)
		}
		want := p9.Attr{Mode: p9.FileMode(n.UnixMode()), UID: p9.UID(n.UID), GID: p9.GID(n.GID), NLink: p9.NLink(n.Nlink),
			Size: uint64(n.Size), MTimeSeconds: uint64(n.MTime / 1e9), MTimeNanoSeconds: uint64(n.MTime % 1e9)}
		if a.Mode != want.Mode || a.UID != want.UID || a.GID != want.GID || a.NLink != want.NLink || a.Size != want.Size ||
			a.MTimeSeconds != want.MTimeSeconds || a.MTimeNanoSeconds != want.MTimeNanoSeconds || a.Blocks != (a.Size+511)/512 {
			t.Errorf("%s: attr %+v, want %+v", path, a, want)
		}
		if q.Path != n.Ino || q.Type != p9.FileMode(n.UnixMode()).QIDType() {
			t.Errorf("%s: qid %v, want path %d", path, q, n.Ino)
		}
	}
	_, _, a, _ := walk(t, root, "good").GetAttr(p9.AttrMaskAll)
	if a.MTimeSeconds != 1614834367 || a.MTimeNanoSeconds != 123456789 || a.Mode != p9.ModeRegular|0o644 || a.Size != 4 {
		t.Errorf("good: %+v", a)
	}
	// Inode numbers are the same through another connection and attach.
	q1, _, _, _ := walk(t, root, "sub/deeper/f").GetAttr(p9.AttrMaskAll)
	q2, _, _, _ := walk(t, e.mustAttach(t, "t@1"), "sub/deeper/f").GetAttr(p9.AttrMaskAll)
	if q1.Path != q2.Path {
		t.Errorf("inode differs between two attaches of t@1: %d, %d", q1.Path, q2.Path)
	}
	// Readlink, and not on a file.
	if target, err := walk(t, root, "link").Readlink(); err != nil || target != "sub/deeper/f" {
		t.Errorf("readlink: %q, %v", target, err)
	}
	_, err = walk(t, root, "good").Readlink()
	wantErrno(t, "readlink of a file", err, linux.EINVAL)
	if target, err := walk(t, e.mustAttach(t, "t"), "latest").Readlink(); err != nil || target != "2" {
		t.Errorf("readlink latest: %q, %v", target, err)
	}
	st, err := root.StatFS()
	if err != nil || st.Type != 0x01021997 || st.BlockSize != 4096 || st.Blocks == 0 || st.BlocksFree != 0 || st.Files == 0 {
		t.Errorf("statfs: %+v, %v", st, err)
	}
}

func TestRead(t *testing.T) {
	e := setup(t)
	f := walk(t, e.mustAttach(t, "t@1"), "big")
	_, iounit, err := f.Open(p9.ReadOnly)
	if err != nil || iounit != 0 {
		t.Fatalf("open: iounit %d, %v", iounit, err)
	}
	n := int64(len(e.big))
	for _, c := range []struct{ off, size int64 }{{0, 1 << 20}, {1, 100}, {n - 10, 100}, {1<<20 - 3, 1<<20 - 100}, {n, 10}, {n + 5, 10}, {12345, 0}} {
		buf := make([]byte, c.size)
		got, err := f.ReadAt(buf, c.off)
		want := e.big[min(c.off, n):min(c.off+c.size, n)]
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:got], want) {
			t.Errorf("read %d at %d: %d bytes, %v; want %d bytes", c.size, c.off, got, err, len(want))
		}
	}
	// Directories and symlinks are not read.
	d := walk(t, e.mustAttach(t, "t@1"), "sub")
	if _, _, err := d.Open(p9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadAt(make([]byte, 10), 0)
	wantErrno(t, "read a directory", err, linux.EISDIR)
}

func TestCorruption(t *testing.T) {
	e := setup(t)
	root := e.mustAttach(t, "t@1")
	bad := walk(t, root, "bad")
	if _, _, err := bad.Open(p9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	_, err := bad.ReadAt(make([]byte, 4096), 0)
	wantErrno(t, "read a corrupt chunk", err, linux.EIO)
	if want := "corrupt chunk " + hash.Sum(e.bad).String(); !strings.Contains(e.logged(), want) {
		t.Errorf("log lacks %q:\n%s", want, e.logged())
	}
	// The server keeps serving, on this connection and others.
	for _, r := range []p9.File{root, e.mustAttach(t, "t@1")} {
		good := walk(t, r, "good")
		if _, _, err := good.Open(p9.ReadOnly); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		if n, err := good.ReadAt(buf, 0); string(buf[:n]) != "fine" || (err != nil && err != io.EOF) {
			t.Errorf("after the corrupt read: %q, %v", buf[:n], err)
		}
	}
}

func TestShutdown(t *testing.T) {
	e := setup(t)
	f := walk(t, e.mustAttach(t, "t@1"), "good")
	e.stop() // fails the test unless Serve returns
	if _, _, _, err := f.GetAttr(p9.AttrMaskAll); err == nil {
		t.Errorf("the connection survived shutdown")
	}
	if _, err := net.Dial("unix", e.sock); err == nil {
		t.Errorf("still accepting after shutdown")
	}
}

// rawConn speaks 9P2000.L frames directly, for what p9's client lacks
// (xattrs): fid 1 is the attach, fid 2 the xattr fid.
type rawConn struct {
	c   net.Conn
	tag uint16
}

func (r *rawConn) rpc(t *testing.T, typ byte, body []byte) (byte, []byte) {
	t.Helper()
	r.tag++
	msg := binary.LittleEndian.AppendUint32(nil, uint32(7+len(body)))
	msg = append(msg, typ)
	msg = binary.LittleEndian.AppendUint16(msg, r.tag)
	msg = append(msg, body...)
	if _, err := r.c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var hdr [7]byte
	if _, err := io.ReadFull(r.c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.LittleEndian.Uint32(hdr[:])-7)
	if _, err := io.ReadFull(r.c, resp); err != nil {
		t.Fatal(err)
	}
	return hdr[4], resp
}

func str(s string) []byte {
	return append(binary.LittleEndian.AppendUint16(nil, uint16(len(s))), s...)
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// check returns the error of an Rlerror reply, or nil for reply type want.
func check(t *testing.T, typ byte, resp []byte, want byte) error {
	t.Helper()
	switch typ {
	case want:
		return nil
	case 7:
		return linux.Errno(binary.LittleEndian.Uint32(resp))
	}
	t.Fatalf("reply type %d, want %d", typ, want)
	return nil
}

// raw connects, attaches aname as fid 1 and walks fid 1 to path.
func (e *env) raw(t *testing.T, aname, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{c: c}
	typ, resp := r.rpc(t, 100, append(u32(1<<20), str("9P2000.L")...)) // Tversion
	if err := check(t, typ, resp, 101); err != nil {
		t.Fatal(err)
	}
	body := append(append(append(u32(1), u32(^uint32(0))...), str("root")...), str(aname)...)
	typ, resp = r.rpc(t, 104, append(body, u32(0)...)) // Tattach
	if err := check(t, typ, resp, 105); err != nil {
		t.Fatalf("attach %q: %v", aname, err)
	}
	if path != "" {
		parts := strings.Split(path, "/")
		body := append(append(u32(1), u32(1)...), byte(len(parts)), 0)
		for _, p := range parts {
			body = append(body, str(p)...)
		}
		typ, resp = r.rpc(t, 110, body) // Twalk
		if err := check(t, typ, resp, 111); err != nil {
			t.Fatalf("walk %s: %v", path, err)
		}
	}
	return r
}

// xattr gets attribute name (all names if "") the way Linux does:
// Txattrwalk to fid 2, Tread of the size it answered, Tclunk.
func (r *rawConn) xattr(t *testing.T, name string) ([]byte, error) {
	t.Helper()
	typ, resp := r.rpc(t, 30, append(append(u32(1), u32(2)...), str(name)...))
	if err := check(t, typ, resp, 31); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint64(resp)
	var val []byte
	if size > 0 {
		typ, resp = r.rpc(t, 116, append(append(u32(2), binary.LittleEndian.AppendUint64(nil, 0)...), u32(uint32(size))...))
		if err := check(t, typ, resp, 117); err != nil {
			return nil, err
		}
		val = resp[4:]
	}
	if err := r.clunk(t, 2); err != nil {
		t.Fatal(err)
	}
	return val, nil
}

// xattrCreate starts setting an attribute as Linux does: fid 1 cloned
// to fid 2, Txattrcreate on fid 2; write and clunk(2) finish it.
func (r *rawConn) xattrCreate(t *testing.T, name string, size uint64) error {
	t.Helper()
	typ, resp := r.rpc(t, 110, append(append(u32(1), u32(2)...), 0, 0)) // Twalk, clone
	if err := check(t, typ, resp, 111); err != nil {
		t.Fatalf("clone: %v", err)
	}
	body := append(append(append(u32(2), str(name)...), binary.LittleEndian.AppendUint64(nil, size)...), u32(0)...)
	typ, resp = r.rpc(t, 32, body) // Txattrcreate
	return check(t, typ, resp, 33)
}

// write writes data at offset 0 of fid 2.
func (r *rawConn) write(t *testing.T, data []byte) {
	t.Helper()
	body := append(append(u32(2), binary.LittleEndian.AppendUint64(nil, 0)...), append(u32(uint32(len(data))), data...)...)
	typ, resp := r.rpc(t, 118, body) // Twrite
	if err := check(t, typ, resp, 119); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) clunk(t *testing.T, fid uint32) error {
	t.Helper()
	typ, resp := r.rpc(t, 120, u32(fid))
	return check(t, typ, resp, 121)
}

func TestXattrs(t *testing.T) {
	e := setup(t)
	r := e.raw(t, "t@1", "good")
	if v, err := r.xattr(t, "user.colour"); err != nil || string(v) != "blue" {
		t.Errorf("user.colour: %q, %v", v, err)
	}
	if v, err := r.xattr(t, ""); err != nil || string(v) != "user.colour\x00" {
		t.Errorf("list: %q, %v", v, err)
	}
	// Absent attributes are ENODATA, which ls -l, cp -a and getfattr
	// take as "none", not EINVAL ("Invalid argument").
	for _, name := range []string{"security.selinux", "system.posix_acl_access", "user.absent"} {
		_, err := r.xattr(t, name)
		wantErrno(t, name, err, linux.ENODATA)
	}
	// No attributes: an empty list, on files and on namespace directories.
	for aname, path := range map[string]string{"t@1": "big", "": "t", "t": ""} {
		r := e.raw(t, aname, path)
		if v, err := r.xattr(t, ""); err != nil || len(v) != 0 {
			t.Errorf("%s/%s: list %q, %v", aname, path, v, err)
		}
		_, err := r.xattr(t, "security.selinux")
		wantErrno(t, aname+"/"+path+" security.selinux", err, linux.ENODATA)
	}
}

// TestFixtureTree serves the integration fixture (every file type, owners,
// modes, ns mtimes, hard links, 5,000 entries, a multi-chunk file, odd
// names) and compares it entry by entry with the source through the p9
// client: what fixture.Compare checks on a mounted directory, without a
// kernel client (the host has no v9fs; integration's TestNinePGuest does
// it with Linux in a VM). Xattrs are checked by TestXattrs, as p9's
// client has none.
func TestFixtureTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fixture needs root (owners, devices)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	fixture.Build(t, src)
	path := filepath.Join(dir, "fix.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Run(context.Background(), s, ingest.Options{Name: "fix", Version: "1", Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	srv := New(s.Objects, backend.OpenNamespace(s.Objects), Options{})
	a, b := net.Pipe()
	go srv.ServeConn(b)
	t.Cleanup(func() { srv.Close() })
	cl, err := p9.NewClient(a, p9.WithMessageSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	root, err := cl.Attach("fix@1")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[uint64]uint64{} // source inode → QID path
	back := map[uint64]uint64{}
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var parts []string
		if rel != "." {
			parts = strings.Split(rel, "/")
		}
		qids, f, _, a, err := root.WalkGetAttr(parts)
		if err != nil {
			t.Errorf("%q: walk: %v", rel, err)
			return nil
		}
		defer f.Close()
		q, _, a2, err := f.GetAttr(p9.AttrMaskAll)
		if err != nil || (len(qids) > 0 && q != qids[len(qids)-1]) || (len(parts) > 0 && a != a2) {
			t.Errorf("%q: getattr %v %+v differs from walk's %v %+v", rel, err, a2, qids, a)
		}
		a = a2
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if uint32(a.Mode) != st.Mode || uint32(a.UID) != st.Uid || uint32(a.GID) != st.Gid || uint64(a.NLink) != st.Nlink ||
			(!isDir && a.Size != uint64(st.Size)) || uint64(a.RDev) != st.Rdev {
			t.Errorf("%q: mode %o uid %d gid %d nlink %d size %d rdev %d; source %o %d %d %d %d %d", rel,
				a.Mode, a.UID, a.GID, a.NLink, a.Size, a.RDev, st.Mode, st.Uid, st.Gid, st.Nlink, st.Size, st.Rdev)
		}
		if rel != "." && (int64(a.MTimeSeconds) != st.Mtim.Sec || int64(a.MTimeNanoSeconds) != st.Mtim.Nsec) {
			t.Errorf("%q: mtime %d.%09d, source %d.%09d", rel, a.MTimeSeconds, a.MTimeNanoSeconds, st.Mtim.Sec, st.Mtim.Nsec)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			want, _ := os.Readlink(p)
			if got, err := f.Readlink(); err != nil || got != want {
				t.Errorf("%q: readlink %q, %v; source %q", rel, got, err, want)
			}
		case unix.S_IFREG:
			if old, ok := inodes[st.Ino]; ok && old != q.Path {
				t.Errorf("%q: hard link with inode %d, its group has %d", rel, q.Path, old)
			}
			if old, ok := back[q.Path]; ok && old != st.Ino {
				t.Errorf("%q: inode %d shared with a file it is not linked to", rel, q.Path)
			}
			inodes[st.Ino], back[q.Path] = q.Path, st.Ino
			if _, _, err := f.Open(p9.ReadOnly); err != nil {
				t.Errorf("%q: open: %v", rel, err)
				return nil
			}
			sf, err := os.Open(p)
			if err != nil {
				return err
			}
			defer sf.Close()
			for off := int64(0); ; {
				n, _ := io.ReadFull(sf, bufA)
				m := 0
				for m < n {
					k, err := f.ReadAt(bufB[m:n], off+int64(m))
					if k == 0 || (err != nil && err != io.EOF) {
						t.Errorf("%q: read at %d: %d, %v", rel, off+int64(m), k, err)
						return nil
					}
					m += k
				}
				if !bytes.Equal(bufA[:n], bufB[:n]) {
					t.Errorf("%q: content differs in [%d, %d)", rel, off, off+int64(n))
					return nil
				}
				off += int64(n)
				if n < len(bufA) {
					if k, _ := f.ReadAt(bufB[:1], off); k != 0 {
						t.Errorf("%q: longer than the source", rel)
					}
					break
				}
			}
		case unix.S_IFDIR:
			if _, _, err := f.Open(p9.ReadOnly); err != nil {
				t.Errorf("%q: open: %v", rel, err)
				return nil
			}
			ents, _ := readdir(t, f, 64<<10)
			srcEnts, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			want := []string{".", ".."}
			for _, e := range srcEnts {
				want = append(want, e.Name())
			}
			if got := names(ents); strings.Join(got, "/") != strings.Join(want, "/") {
				t.Errorf("%q: lists %d names, source %d", rel, len(got), len(want))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inodes) < fixture.ManyEntries {
		t.Errorf("compared %d files", len(inodes))
	}
}

// TestFidLimit: a connection holds at most MaxFids fids; walks beyond
// answer EMFILE, a clunk frees a slot, other connections are unaffected,
// and xattr fids (which p9 makes sharing the walked file) count too, so
// clunking them does not free the fid they were made from.
func TestFidLimit(t *testing.T) {
	const max = 40
	e := setupWith(t, "", Options{MaxFids: max})
	root := e.mustAttach(t, "t@1")
	var held []p9.File
	var err error
	for len(held) < 2*max {
		var c p9.File
		if _, c, err = root.Walk(nil); err != nil {
			break
		}
		held = append(held, c)
	}
	wantErrno(t, fmt.Sprintf("walk after %d fids", len(held)), err, linux.EMFILE)
	if len(held) >= max || len(held) < max-4 {
		t.Errorf("%d clones held with a bound of %d fids", len(held), max)
	}
	if _, _, err := root.Walk([]string{"sub"}); !errors.Is(err, linux.EMFILE) {
		t.Errorf("walk to a name at the bound: %v, want EMFILE", err)
	}
	// Another connection has its own fids.
	other := e.mustAttach(t, "t@1")
	walk(t, other, "sub")
	// A clunk frees a slot.
	if err := held[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, c, err := root.Walk([]string{"sub"}); err != nil {
		t.Errorf("walk after a clunk: %v", err)
	} else {
		c.Close()
	}

	// Xattr fids: clone fid 1 to k, xattrwalk k to k+1, clunk k+1; only k
	// stays held each round.
	r := e.raw(t, "t@1", "good")
	rounds := 0
	for fid := uint32(10); rounds < 2*max; fid += 2 {
		typ, resp := r.rpc(t, 110, append(append(u32(1), u32(fid)...), 0, 0)) // Twalk, clone
		if err = check(t, typ, resp, 111); err != nil {
			break
		}
		typ, resp = r.rpc(t, 30, append(append(u32(fid), u32(fid+1)...), str("user.colour")...))
		if err = check(t, typ, resp, 31); err != nil {
			break
		}
		if err := r.clunk(t, fid+1); err != nil {
			t.Fatal(err)
		}
		rounds++
	}
	wantErrno(t, fmt.Sprintf("after %d rounds of clone, xattrwalk, clunk", rounds), err, linux.EMFILE)
	if rounds >= max {
		t.Errorf("%d fids held through xattr fids with a bound of %d", rounds, max)
	}
	// At the bound an xattr walk is refused with EMFILE, not as an
	// absent attribute.
	typ, resp := r.rpc(t, 30, append(append(u32(1), u32(2)...), str("user.colour")...))
	wantErrno(t, "xattrwalk at the bound", check(t, typ, resp, 31), linux.EMFILE)
	typ, resp = r.rpc(t, 30, append(append(u32(1), u32(2)...), str("")...))
	wantErrno(t, "xattr list at the bound", check(t, typ, resp, 31), linux.EMFILE)
	// Below it, absent attributes are still ENODATA.
	if err := r.clunk(t, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := r.xattr(t, "user.absent"); !errors.Is(err, linux.ENODATA) {
		t.Errorf("absent xattr below the bound: %v, want ENODATA", err)
	}
}

// TestListingBudget: the listings open directories keep between reads
// stay within the connection's budget; directories past it still list
// correctly page by page (reading the listing again), and every listing
// is let go once read to its end or closed.
func TestListingBudget(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	v, err := backend.OpenSpec(ctx, e.s.Objects, "t@1")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := v.Walk(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	fids := &fidCount{max: 100, maxListed: manyFiles + manyFiles/2, rep: report.Nop{}}
	const n = 4
	var files []*file
	for i := 0; i < n; i++ {
		f, err := newFile(e.srv, fids, v, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	offsets, seen, done := make([]uint64, n), make([]map[string]bool, n), 0
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	for done < n {
		done = 0
		for i, f := range files {
			page, err := f.Readdir(offsets[i], 8<<10)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				done++
				continue
			}
			for _, d := range page {
				seen[i][d.Name] = true
			}
			offsets[i] = page[len(page)-1].Offset
			if kept := fids.listed.Load(); kept > fids.maxListed {
				t.Fatalf("%d entries kept with a budget of %d", kept, fids.maxListed)
			}
		}
	}
	for i := range seen {
		if len(seen[i]) != manyFiles+2 {
			t.Errorf("directory %d listed %d names, want %d", i, len(seen[i]), manyFiles+2)
		}
	}
	if kept := fids.listed.Load(); kept != 0 {
		t.Errorf("%d entries kept after every listing was read to its end", kept)
	}
	// Closing a directory in the middle of its listing lets it go.
	if _, err := files[0].Readdir(0, 8<<10); err != nil || fids.listed.Load() != manyFiles {
		t.Fatalf("one listing open: %d entries kept, %v", fids.listed.Load(), err)
	}
	for _, f := range files {
		f.Close()
	}
	if fids.listed.Load() != 0 || fids.live.Load() != 0 {
		t.Errorf("after closing: %d entries kept, %d fids", fids.listed.Load(), fids.live.Load())
	}
}

// TestInFlightBound: a client that sends many reads and never reads the
// replies gets at most maxInFlight of them handled at once (each holds a
// reply buffer of up to msize), and the server still shuts down.
func TestInFlightBound(t *testing.T) {
	e := setup(t)
	r := e.raw(t, "t@1", "big")
	typ, resp := r.rpc(t, 12, append(u32(1), u32(0)...)) // Tlopen, O_RDONLY
	if err := check(t, typ, resp, 13); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	var reqs []byte
	const n = 1000
	for i := 0; i < n; i++ {
		body := append(append(u32(1), binary.LittleEndian.AppendUint64(nil, 0)...), u32(1<<20)...)
		reqs = append(reqs, frame(116, uint16(1000+i), body)...) // Tread
	}
	go r.c.Write(reqs) // may block once the server stops reading
	time.Sleep(2 * time.Second)
	if grown := runtime.NumGoroutine() - before; grown > maxInFlight+20 {
		t.Errorf("%d more goroutines with %d reads sent and no reply read (bound %d)", grown, n, maxInFlight)
	}
	r.c.Close()
}
