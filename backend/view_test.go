package backend_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// noise returns n deterministic incompressible bytes.
func noise(n int, seed uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// writeTree creates files (path → content) and symlinks (path → target).
func writeTree(t testing.TB, dir string, files map[string][]byte, links map[string]string) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

func sampleFiles() map[string][]byte {
	return map[string][]byte{
		"empty":          {},
		"small.txt":      []byte("hello, spray dry\n"),
		"big.bin":        noise(700<<10+12345, 1),
		"a/b/c.txt":      bytes.Repeat([]byte("text compresses well. "), 5000),
		"a/same.txt":     []byte("identical"),
		"x/same.txt":     []byte("identical"),
		"twin1/f":        []byte("twin subtree"),
		"twin2/f":        []byte("twin subtree"),
		"ünï/日本.txt":     []byte("unicode"),
		"deep/1/2/3/4/5": []byte("deep"),
	}
}

func newStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ingestDir(t testing.TB, s *store.Store, id, dir string) *ingest.Result {
	t.Helper()
	ref, err := store.ParseRef(id, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ingest.Run(context.Background(), s, ingest.Options{Name: ref.Name, Version: ref.Version, Sources: []ingest.Source{{Dir: dir}}})
	if err != nil {
		t.Fatalf("ingest %s: %v", id, err)
	}
	return res
}

func openRoot(t testing.TB, s *store.Store, id string) *backend.View {
	t.Helper()
	ref, _ := store.ParseRef(id, true)
	v, err := backend.OpenRoot(context.Background(), s.Objects, ref)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRootViewFS(t *testing.T) {
	src := t.TempDir()
	files := sampleFiles()
	writeTree(t, src, files, map[string]string{"a/link": "b/c.txt", "a/dirlink": "b", "up": "a/../small.txt"})
	s := newStore(t)
	ingestDir(t, s, "t@1", src)
	fsys := openRoot(t, s, "t@1").FS()

	var want []string
	for p := range files {
		want = append(want, p)
	}
	if err := fstest.TestFS(fsys, append(want, "a/link", "a/dirlink", "up")...); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		got, err := fsys.ReadFile(p)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %d bytes, err %v; want %d bytes", p, len(got), err, len(b))
		}
	}
	if got, _ := fs.ReadFile(fsys, "a/link"); !bytes.Equal(got, files["a/b/c.txt"]) {
		t.Fatal("symlink not followed")
	}
	if target, err := fsys.ReadLink("a/dirlink"); err != nil || target != "b" {
		t.Fatalf("ReadLink = %q, %v", target, err)
	}
	if _, err := fsys.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReaderAtAndSeek(t *testing.T) {
	src := t.TempDir()
	files := sampleFiles()
	writeTree(t, src, files, nil)
	s := newStore(t)
	ingestDir(t, s, "t@1", src)
	f, err := openRoot(t, s, "t@1").FS().Open("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	want := files["big.bin"]
	ra := f.(io.ReaderAt)
	r := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		off := r.Int64N(int64(len(want)))
		buf := make([]byte, r.IntN(300000)+1)
		n, err := ra.ReadAt(buf, off)
		end := min(off+int64(len(buf)), int64(len(want)))
		if !bytes.Equal(buf[:n], want[off:end]) || (err != nil && !(err == io.EOF && end == int64(len(want)))) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, len(buf), n, err)
		}
	}
	sk := f.(io.ReadSeeker)
	if pos, err := sk.Seek(-10, io.SeekEnd); err != nil || pos != int64(len(want)-10) {
		t.Fatalf("Seek = %d %v", pos, err)
	}
	tail, _ := io.ReadAll(sk)
	if !bytes.Equal(tail, want[len(want)-10:]) {
		t.Fatal("read after seek differs")
	}
}

func TestNamespaceView(t *testing.T) {
	s := newStore(t)
	for i, id := range []string{"alpha@1", "alpha@2", "beta@x"} {
		src := t.TempDir()
		writeTree(t, src, map[string][]byte{"v.txt": []byte(id), "common": []byte("same")}, nil)
		_ = i
		ingestDir(t, s, id, src)
	}
	fsys := backend.OpenNamespace(s.Objects).FS()
	if err := fstest.TestFS(fsys, "alpha/1/v.txt", "alpha/2/v.txt", "alpha/latest", "beta/x/common", "beta/latest"); err != nil {
		t.Fatal(err)
	}
	if target, _ := fsys.ReadLink("alpha/latest"); target != "2" {
		t.Fatalf("alpha/latest -> %q, want 2", target)
	}
	if b, err := fsys.ReadFile("alpha/latest/v.txt"); err != nil || string(b) != "alpha@2" {
		t.Fatalf("latest resolves to %q, %v", b, err)
	}
	names, _ := fsys.ReadDir("alpha")
	if len(names) != 3 || names[0].Name() != "1" || names[2].Name() != "latest" || names[2].Type() != fs.ModeSymlink {
		t.Fatalf("alpha lists %v", names)
	}
	nv, err := backend.OpenName(context.Background(), s.Objects, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(nv.FS(), "1/v.txt", "latest"); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.OpenName(context.Background(), s.Objects, "gamma"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
}

func ino(t *testing.T, fsys fs.FS, p string) uint64 {
	t.Helper()
	fi, err := fsys.(fs.ReadLinkFS).Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*backend.Attr).Ino
}

func TestInodesStableUniqueAndHardLinks(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a/same.txt": []byte("x"), "b/same.txt": []byte("x"), "h1": []byte("linked")}, nil)
	if err := os.Link(filepath.Join(src, "h1"), filepath.Join(src, "a/h2")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	ingestDir(t, s, "t@1", src)
	f1, f2 := openRoot(t, s, "t@1").FS(), openRoot(t, s, "t@1").FS()
	if ino(t, f1, "a/same.txt") != ino(t, f2, "a/same.txt") {
		t.Fatal("inode differs between two opens")
	}
	if ino(t, f1, "a/same.txt") == ino(t, f1, "b/same.txt") {
		t.Fatal("identical content at two paths shares an inode")
	}
	if ino(t, f1, "h1") != ino(t, f1, "a/h2") {
		t.Fatal("hard links do not share an inode")
	}
	fi, _ := f1.Lstat("a/h2")
	if n := fi.Sys().(*backend.Attr).Nlink; n != 2 {
		t.Fatalf("hard link nlink %d, want 2", n)
	}
	if ino(t, f1, ".") != backend.RootIno {
		t.Fatal("top is not the root inode")
	}
}

func TestDedupAcrossVersions(t *testing.T) {
	src := t.TempDir()
	big := noise(8<<20, 2)
	writeTree(t, src, map[string][]byte{"big.bin": big, "other": []byte("o")}, nil)
	s := newStore(t)
	ingestDir(t, s, "d@1", src)
	big[4<<20] ^= 0xff
	writeTree(t, src, map[string][]byte{"big.bin": big}, nil)
	res := ingestDir(t, s, "d@2", src)
	maxChunk := int64(s.Params().Max)
	if res.NewChunks > 2 || res.StoredBytes >= 2*maxChunk {
		t.Fatalf("one changed byte stored %d chunks, %d bytes (limit 2 chunks, %d bytes)", res.NewChunks, res.StoredBytes, 2*maxChunk)
	}
	if res.ReadFiles != 1 {
		t.Fatalf("read %d files; the unchanged one should be reused unread", res.ReadFiles)
	}
	if b, _ := openRoot(t, s, "d@2").FS().ReadFile("big.bin"); !bytes.Equal(b, big) {
		t.Fatal("v2 content wrong")
	}

	// A root source stores nothing new and reads nothing.
	r3, err := ingest.Run(context.Background(), s, ingest.Options{Name: "d", Version: "3", Sources: []ingest.Source{{Ref: &store.Ref{Name: "d", Version: "2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if r3.StoredBytes != 0 || r3.ReadFiles != 0 || r3.Root.Top.Hash != res.Root.Top.Hash {
		t.Fatalf("root: source stored %d bytes, read %d files", r3.StoredBytes, r3.ReadFiles)
	}
	// Two sources merge at the top; a clash names both.
	other := t.TempDir()
	writeTree(t, other, map[string][]byte{"new": []byte("n")}, nil)
	r4, err := ingest.Run(context.Background(), s, ingest.Options{Name: "m", Version: "1", Sources: []ingest.Source{{Ref: &store.Ref{Name: "d", Version: "1"}}, {Dir: other}}})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := openRoot(t, s, "m@1").FS().ReadDir(".")
	if len(names) != 3 || r4.Files != 3 {
		t.Fatalf("merged root has %v (%d files)", names, r4.Files)
	}
	_, err = ingest.Run(context.Background(), s, ingest.Options{Name: "m", Version: "2", Sources: []ingest.Source{{Dir: src}, {Ref: &store.Ref{Name: "d", Version: "1"}}}})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("root:d@1")) {
		t.Fatalf("clash error: %v", err)
	}
	if _, err := ingestErr(s, "d@1", src); !errors.Is(err, store.ErrExists) {
		t.Fatalf("re-ingest of an existing root: %v", err)
	}
}

func ingestErr(s *store.Store, id, dir string) (*ingest.Result, error) {
	ref, _ := store.ParseRef(id, true)
	return ingest.Run(context.Background(), s, ingest.Options{Name: ref.Name, Version: ref.Version, Sources: []ingest.Source{{Dir: dir}}})
}

// flipChunk damages the stored bytes of the chunk that holds the given content.
func flipChunk(t *testing.T, path string, content []byte) {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := backendHash(content)
	var id int64
	var data []byte
	err = sqlitex.Execute(c, `SELECT d.id, d.data FROM chunk_data d JOIN chunks c ON d.id = c.data_id WHERE c.hash = ?`, &sqlitex.ExecOptions{
		Args: []any{h[:]},
		ResultFunc: func(st *sqlite.Stmt) error {
			id = st.ColumnInt64(0)
			data = make([]byte, st.ColumnLen(1))
			st.ColumnBytes(1, data)
			return nil
		}})
	if err != nil || data == nil {
		t.Fatalf("find chunk: %v", err)
	}
	data[len(data)/2] ^= 0x01
	if err := sqlitex.Execute(c, `UPDATE chunk_data SET data = ? WHERE id = ?`, &sqlitex.ExecOptions{Args: []any{data, id}}); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionIsAnErrorNeverWrongBytes(t *testing.T) {
	src := t.TempDir()
	good := bytes.Repeat([]byte("good "), 100)
	bad := bytes.Repeat([]byte("this chunk will rot "), 100)
	// Apart: a file may be dried against its neighbour in one directory,
	// and then a corrupt neighbour is a corrupt reference.
	writeTree(t, src, map[string][]byte{"a/good": good, "b/bad": bad}, nil)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ingestDir(t, s, "c@1", src)
	s.Close()
	flipChunk(t, path, bad)

	s, err = store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fsys := openRoot(t, s, "c@1").FS()
	if b, err := fsys.ReadFile("b/bad"); !errors.Is(err, backend.ErrCorrupt) || b != nil {
		t.Fatalf("corrupt file: %d bytes, err %v", len(b), err)
	}
	if b, err := fsys.ReadFile("a/good"); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("healthy file next to a corrupt one: %v", err)
	}
	rep, err := s.Check(context.Background(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := backendHash(bad)
	if len(rep.Problems) != 1 || rep.Problems[0].Hash != h {
		t.Fatalf("check found %v, want chunk %s", rep.Problems, h)
	}
	if rep, _ := s.Check(context.Background(), false, nil); len(rep.Problems) != 0 {
		t.Fatalf("structure check without data found %v", rep.Problems)
	}
	if backend.Errno(err) != 0 || backend.Errno(fs.ErrNotExist) == 0 {
		t.Fatal("Errno mapping")
	}
}

func TestReadersDuringIngest(t *testing.T) {
	src := t.TempDir()
	files := sampleFiles()
	writeTree(t, src, files, nil)
	s := newStore(t)
	ingestDir(t, s, "r@1", src)
	fsys := openRoot(t, s, "r@1").FS()

	src2 := t.TempDir()
	writeTree(t, src2, map[string][]byte{"n1": noise(3<<20, 7), "n2": noise(2<<20, 8)}, nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				for p, want := range files {
					got, err := fsys.ReadFile(p)
					if err != nil || !bytes.Equal(got, want) {
						errs <- errors.New("reader " + string(rune('0'+i)) + ": " + p + " wrong during ingest")
						return
					}
				}
			}
		}()
	}
	ingestDir(t, s, "r@2", src2)
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b, _ := openRoot(t, s, "r@2").FS().ReadFile("n2"); len(b) != 2<<20 {
		t.Fatal("second root incomplete")
	}
}

func TestCanceledReadIsCanceled(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a/f": []byte("x")}, nil)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ingestDir(t, s, "c@1", src)
	s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		s, err := store.Open(path, store.Options{ReadOnly: true}) // nothing cached
		if err != nil {
			t.Fatal(err)
		}
		v := openRoot(t, s, "c@1")
		_, err = v.ReadDir(ctx, v.Root())
		s.Close()
		if !errors.Is(err, context.Canceled) || backend.Errno(err) != syscall.EINTR {
			t.Fatalf("attempt %d: ReadDir with a cancelled context = %v (errno %v), want context.Canceled (EINTR)", i, err, backend.Errno(err))
		}
	}
}
