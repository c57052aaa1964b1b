//go:build linux

package extract_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/extract"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// shared is the fixture, less ManyDir, and a store holding it as fix@1,
// made once.
var shared struct {
	once       sync.Once
	dir        string
	src, store string
	ok         bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// fixtureStore returns the fixture's directory (without ManyDir) and the
// store it was ingested into as fix@1.
func fixtureStore(t *testing.T) (src, storePath string) {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "extract-test-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = dir
		shared.src, shared.store = filepath.Join(dir, "src"), filepath.Join(dir, "s.sdfs")
		fixture.Build(t, shared.src)
		// ManyDir's 5,000 files would take most of this package's time
		// under -race (the SQLite driver is Go code too); extract handles
		// them like any other files, and the integration suite covers them.
		if err := os.RemoveAll(filepath.Join(shared.src, fixture.ManyDir)); err != nil {
			t.Fatal(err)
		}
		ingestDir(t, shared.store, "fix@1", shared.src)
		shared.ok = true
	})
	if !shared.ok {
		t.Fatal("the shared fixture store could not be built")
	}
	return shared.src, shared.store
}

// ingestDir stores src as root ref (NAME@VERSION) in the store at path.
func ingestDir(t testing.TB, storePath, ref, src string) {
	t.Helper()
	r, err := store.ParseRef(ref, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(storePath, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := ingest.Run(context.Background(), s, ingest.Options{Name: r.Name, Version: r.Version,
		Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
}

// open returns the view of NAME@VERSION and the node at its path.
func open(t *testing.T, storePath, ref string) (*backend.View, *backend.Node) {
	t.Helper()
	r, err := store.ParseRef(ref, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(storePath, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sub := r.Path
	r.Path = ""
	v, err := backend.OpenRoot(context.Background(), s.Objects, r)
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Walk(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	return v, n
}

func TestToDirFixture(t *testing.T) {
	src, st := fixtureStore(t)
	v, n := open(t, st, "fix@1")
	out := filepath.Join(t.TempDir(), "missing", "out") // created with its parent
	if err := extract.ToDir(context.Background(), v, n, out, extract.Options{}); err != nil {
		t.Fatal(err)
	}
	fixture.Compare(t, src, out, fixture.All())
}

func TestToDirSubtreeAndSingleEntries(t *testing.T) {
	src, st := fixtureStore(t)
	ctx := context.Background()

	// A subtree into an existing empty directory, which takes its attributes.
	v, n := open(t, st, "fix@1/twin-a")
	out := t.TempDir()
	if err := extract.ToDir(ctx, v, n, out, extract.Options{}); err != nil {
		t.Fatal(err)
	}
	fixture.Compare(t, filepath.Join(src, "twin-a"), out, fixture.All())

	// Single entries are written as dest, a directory with its contents
	// and attributes; a lone hard link is a plain file.
	caps := fixture.All()
	caps.HardLinks = false
	for _, rel := range []string{fixture.BigFile, "modes/setuid", "xattr/file", "xattr/dir", "modes/sticky", fixture.Owned + "/link",
		fixture.Special + "/dangling", fixture.Special + "/absolute", fixture.Special + "/fifo", fixture.NonUTF8, fixture.HardLinks[1]} {
		v, n := open(t, st, "fix@1/"+rel)
		dest := filepath.Join(t.TempDir(), "parent", "single")
		if err := extract.ToDir(ctx, v, n, dest, extract.Options{}); err != nil {
			t.Fatalf("%q: %v", rel, err)
		}
		fixture.Compare(t, filepath.Join(src, rel), dest, caps)
	}
}

func TestToDirRefusesExistingDestinations(t *testing.T) {
	_, st := fixtureStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}

	v, top := open(t, st, "fix@1")
	for _, dest := range []string{dir, file} { // not empty; not a directory
		err := extract.ToDir(ctx, v, top, dest, extract.Options{})
		if err == nil || !strings.Contains(err.Error(), "extract "+dest+": ") {
			t.Errorf("ToDir(top, %s) = %v, want an error naming it", dest, err)
		}
	}
	v, f := open(t, st, "fix@1/text.txt")
	if err := extract.ToDir(ctx, v, f, file, extract.Options{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("ToDir(file, existing file) = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("existing file changed to %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("refused extractions wrote into %s: %v", dir, ents)
	}
}

func TestCanceled(t *testing.T) {
	_, st := fixtureStore(t)
	v, n := open(t, st, "fix@1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := extract.ToDir(ctx, v, n, filepath.Join(t.TempDir(), "out"), extract.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("ToDir with a canceled context = %v", err)
	}
	if err := extract.ToTar(ctx, v, n, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("ToTar with a canceled context = %v", err)
	}
}

// TestCorruptChunk damages a chunk in the middle of a multi-chunk file:
// both ways out fail with backend.ErrCorrupt, and the directory holds the
// complete files extracted before it and nothing of the broken one.
func TestCorruptChunk(t *testing.T) {
	dir := t.TempDir()
	src, st := filepath.Join(dir, "src"), filepath.Join(dir, "s.sdfs")
	big := make([]byte, 2<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"a.txt": []byte("before\n"), "big": big, "z.txt": []byte("after\n")} {
		if err := os.WriteFile(filepath.Join(src, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ingestDir(t, st, "c@1", src)

	// Zero the stored bytes of the middle chunk of big.
	v, n := open(t, st, "c@1/big")
	f, err := v.Objects().File(context.Background(), n.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.List.Chunks) < 3 {
		t.Fatalf("big has %d chunks, want several", len(f.List.Chunks))
	}
	h := f.List.Chunks[len(f.List.Chunks)/2].Hash
	c, err := sqlite.OpenConn(st, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.Execute(c, `UPDATE chunk_data SET data = zeroblob(length(data)) WHERE id = (SELECT data_id FROM chunks WHERE hash = ?)`,
		&sqlitex.ExecOptions{Args: []any{h[:]}})
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	v, top := open(t, st, "c@1") // a fresh store: nothing cached
	out := filepath.Join(t.TempDir(), "out")
	err = extract.ToDir(context.Background(), v, top, out, extract.Options{})
	if !errors.Is(err, backend.ErrCorrupt) || !strings.Contains(err.Error(), "extract "+filepath.Join(out, "big")+": ") {
		t.Fatalf("ToDir = %v, want backend.ErrCorrupt naming big", err)
	}
	names, _ := os.ReadDir(out)
	if len(names) != 1 || names[0].Name() != "a.txt" {
		t.Errorf("after the failure %s holds %v, want only a.txt", out, names)
	}
	if err := extract.ToTar(context.Background(), v, top, io.Discard); !errors.Is(err, backend.ErrCorrupt) {
		t.Errorf("ToTar = %v, want backend.ErrCorrupt", err)
	}
}

// TestToTar reads the stream back with archive/tar and checks every header
// and every file's bytes against the view: each entry once, in an order
// where directories precede their contents and hard links their target.
func TestToTar(t *testing.T) {
	_, st := fixtureStore(t)
	ctx := context.Background()
	v, top := open(t, st, "fix@1")
	nodes := map[string]*backend.Node{}
	var walk func(dir *backend.Node, prefix string)
	walk = func(dir *backend.Node, prefix string) {
		kids, err := v.ReadDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			name := path.Join(prefix, k.Name)
			nodes[name] = k
			if k.IsDir() {
				walk(k, name)
			}
		}
	}
	walk(top, "")

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(extract.ToTar(ctx, v, top, pw)) }()
	seen := map[string]bool{}
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		n := nodes[name]
		switch {
		case n == nil:
			t.Errorf("%q: not in the view", h.Name)
			continue
		case seen[name]:
			t.Errorf("%q: written twice", h.Name)
		case path.Dir(name) != "." && !seen[path.Dir(name)]:
			t.Errorf("%q: written before its directory", h.Name)
		}
		seen[name] = true
		checkHeader(t, v, h, n, tr, nodes, seen)
	}
	for name := range nodes {
		if !seen[name] {
			t.Errorf("%q: missing from the stream", name)
		}
	}
	if !seen[fixture.NonUTF8] || !seen[fixture.HardLinks[2]] {
		t.Errorf("the non-UTF-8 name or a hard link did not round-trip")
	}

	// A single file is one entry under its own name.
	v, n := open(t, st, "fix@1/"+fixture.BigFile)
	var buf bytes.Buffer
	if err := extract.ToTar(ctx, v, n, &buf); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil || h.Name != fixture.BigFile || h.Size != fixture.BigSize {
		t.Fatalf("single file: header %+v, %v", h, err)
	}
	checkHeader(t, v, h, n, tr, nil, nil)
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("single file: more than one entry (%v)", err)
	}
}

// checkHeader compares a tar header, and a regular file's content read from
// tr, with node n.
func checkHeader(t *testing.T, v *backend.View, h *tar.Header, n *backend.Node, tr io.Reader, nodes map[string]*backend.Node, seen map[string]bool) {
	t.Helper()
	want := map[tree.Type]byte{tree.TypeFile: tar.TypeReg, tree.TypeDir: tar.TypeDir, tree.TypeSymlink: tar.TypeSymlink,
		tree.TypeFIFO: tar.TypeFifo, tree.TypeCharDev: tar.TypeChar, tree.TypeBlockDev: tar.TypeBlock}[n.Type]
	if h.Typeflag == tar.TypeLink && n.Type == tree.TypeFile && n.Nlink > 1 {
		if first := nodes[h.Linkname]; first == nil || first.Ino != n.Ino || !seen[h.Linkname] || h.Linkname == h.Name {
			t.Errorf("%q: hard link to %q, which is not an earlier link of the same file", h.Name, h.Linkname)
		}
		return
	}
	if h.Typeflag != want {
		t.Errorf("%q: type %q, want %q", h.Name, h.Typeflag, want)
		return
	}
	if h.Mode != int64(n.Mode) || h.Uid != int(n.UID) || h.Gid != int(n.GID) || h.ModTime.UnixNano() != n.MTime {
		t.Errorf("%q: mode %o uid %d gid %d mtime %d, want %o %d %d %d", h.Name, h.Mode, h.Uid, h.Gid, h.ModTime.UnixNano(),
			n.Mode, n.UID, n.GID, n.MTime)
	}
	xattrs := 0
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			xattrs++
		}
	}
	if xattrs != len(n.Xattrs) {
		t.Errorf("%q: %d xattr records, want %d", h.Name, xattrs, len(n.Xattrs))
	}
	for _, x := range n.Xattrs {
		if got := h.PAXRecords["SCHILY.xattr."+x.Name]; got != string(x.Value) {
			t.Errorf("%q: xattr %s = %q, want %q", h.Name, x.Name, got, x.Value)
		}
	}
	switch n.Type {
	case tree.TypeSymlink:
		if h.Linkname != n.Target {
			t.Errorf("%q: target %q, want %q", h.Name, h.Linkname, n.Target)
		}
	case tree.TypeCharDev, tree.TypeBlockDev:
		if uint32(h.Devmajor) != unix.Major(n.Rdev) || uint32(h.Devminor) != unix.Minor(n.Rdev) {
			t.Errorf("%q: device %d:%d, want rdev %d", h.Name, h.Devmajor, h.Devminor, n.Rdev)
		}
	case tree.TypeFile:
		if h.Size != n.Size {
			t.Errorf("%q: size %d, want %d", h.Name, h.Size, n.Size)
		}
		r, err := v.Open(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		got, want := sha256.New(), sha256.New()
		if _, err := io.Copy(got, tr); err != nil {
			t.Fatal(err)
		}
		if _, err := r.WriteTo(want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("%q: content differs", h.Name)
		}
	}
}

// TestDevicesAndSockets: device nodes are restored with their numbers (as
// root), sockets are skipped with a warning on disk and left out of tar.
func TestDevicesAndSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating device nodes needs root")
	}
	dir := t.TempDir()
	src, st := filepath.Join(dir, "src"), filepath.Join(dir, "s.sdfs")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod: %v", err)
	}
	if err := unix.Mknod(filepath.Join(src, "loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(src, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ingestDir(t, st, "d@1", src)
	v, top := open(t, st, "d@1")

	var logs bytes.Buffer
	out := filepath.Join(dir, "out")
	if err := extract.ToDir(context.Background(), v, top, out, extract.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	// Compare skips the socket's name when specials are off; the devices
	// are then checked by hand.
	caps := fixture.All()
	caps.Specials = false
	fixture.Compare(t, src, out, caps)
	for name, kind := range map[string]uint32{"null": unix.S_IFCHR, "loop": unix.S_IFBLK} {
		var s, d unix.Stat_t
		if err := errors.Join(unix.Lstat(filepath.Join(src, name), &s), unix.Lstat(filepath.Join(out, name), &d)); err != nil {
			t.Fatal(err)
		}
		if d.Mode&unix.S_IFMT != kind || d.Mode != s.Mode || d.Rdev != s.Rdev || d.Mtim != s.Mtim {
			t.Errorf("%s: mode %o rdev %d mtime %v, want %o %d %v", name, d.Mode, d.Rdev, d.Mtim, s.Mode, s.Rdev, s.Mtim)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket extracted: %v", err)
	}
	if !strings.Contains(logs.String(), "skipping socket") {
		t.Errorf("no warning about the socket; log:\n%s", logs.String())
	}

	// ToTar warns through slog.Default.
	logs.Reset()
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	var buf bytes.Buffer
	if err := extract.ToTar(context.Background(), v, top, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "skipping socket") {
		t.Errorf("no warning about the socket in tar; log:\n%s", logs.String())
	}
	tr := tar.NewReader(&buf)
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	if h := got["null"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("null: %+v", h)
	}
	if h := got["loop"]; h == nil || h.Typeflag != tar.TypeBlock || h.Devmajor != 7 || h.Devminor != 200 {
		t.Errorf("loop: %+v", h)
	}
	if len(got) != 2 {
		t.Errorf("tar holds %d entries, want the two devices", len(got))
	}
}
