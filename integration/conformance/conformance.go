//go:build linux

// Package conformance is the end-to-end suite every frontend runs: it
// stores the fixture tree, has the frontend serve it at a local directory
// (a FUSE mount, a 9P or WebDAV client mount), and checks with ordinary
// file-system calls and tools (find, tar, diff) that the tree comes back
// as it went in, that writes are refused, that inode numbers are stable,
// that parallel readers get the right bytes, that corruption is an error
// confined to the damaged file, and that the namespace view resolves
// latest. Caps says what a frontend can carry; the rest is not checked.
package conformance

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// Caps says what a frontend carries beyond fixture.Caps.
type Caps struct {
	fixture.Caps
	// StableInodes: inode numbers are the same after a remount.
	StableInodes bool
	// Tools: find, tar and diff see exactly what they see on the source.
	Tools bool
	// WriteErrno is the error every write gets (EROFS for a read-only mount).
	WriteErrno syscall.Errno
	// CorruptErrno is the error reading a corrupt file gets (EIO).
	CorruptErrno syscall.Errno
}

// Mounter serves the view named which ("" for the namespace of all roots,
// NAME or NAME@VERSION) of the store file at a local directory, and returns
// the directory and a function that stops serving it.
type Mounter func(t *testing.T, storePath, which string) (dir string, unmount func())

// Suite is one frontend under test.
type Suite struct {
	Caps  Caps
	Mount Mounter
	// Damage, if set, damages chunk h of the store file at storePath where
	// the frontend reads it (a remote copy, say) before it is mounted; nil
	// flips a byte of it in the store file (Flip).
	Damage func(t *testing.T, storePath string, h hash.Hash)
}

// data is the stored fixture shared by the subtests.
type data struct {
	src, store string
}

// Run stores the fixture and runs every check as a subtest.
func Run(t *testing.T, s Suite) {
	d := setup(t)
	t.Run("Tree", func(t *testing.T) { s.tree(t, d) })
	t.Run("ReadOnly", func(t *testing.T) { s.readOnly(t, d) })
	if s.Caps.StableInodes {
		t.Run("StableInodes", func(t *testing.T) { s.inodes(t, d) })
	}
	t.Run("ParallelReaders", func(t *testing.T) { s.parallel(t, d) })
	t.Run("Corruption", func(t *testing.T) { s.corruption(t, d) })
	t.Run("Namespace", func(t *testing.T) { s.namespace(t, d) })
}

// setup builds the fixture, ingests it as fix@1, a changed copy as fix@2,
// and a small tree as other@a.
func setup(t *testing.T) *data {
	dir := t.TempDir()
	d := &data{src: filepath.Join(dir, "src"), store: filepath.Join(dir, "store.sdfs")}
	fixture.Build(t, d.src)
	s, err := store.Open(d.store, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Chunks are stored on their own (no deltas), so that the corruption
	// check damages exactly one file: with deltas, the chunks dried
	// against a damaged chunk fail too (backend tests cover that).
	put := func(name, version, src string) {
		opt := ingest.Options{Name: name, Version: version, Sources: []ingest.Source{{Dir: src}}, NoDelta: true}
		if _, err := ingest.Run(context.Background(), s, opt); err != nil {
			t.Fatalf("ingest %s@%s: %v", name, version, err)
		}
	}
	put("fix", "1", d.src)
	v2 := filepath.Join(dir, "v2")
	os.MkdirAll(v2, 0o755)
	os.WriteFile(filepath.Join(v2, "version"), []byte("two\n"), 0o644)
	put("fix", "2", v2)
	put("other", "a", v2)
	return d
}

func (s Suite) tree(t *testing.T, d *data) {
	dir, unmount := s.Mount(t, d.store, "fix@1")
	defer unmount()
	fixture.Compare(t, d.src, dir, s.Caps.Caps)
	// TestFS opens everything it lists: leave out what cannot be opened
	// (special/) and what it would read a byte at a time (the big file,
	// 5,000 small files); Compare checked those.
	hidden := fixture.Hide(os.DirFS(dir), fixture.Special, fixture.BigFile, fixture.ManyDir)
	if err := fstest.TestFS(hidden, "text.txt", "docs/readme.txt", "hard/one"); err != nil {
		t.Errorf("fstest.TestFS: %v", err)
	}
	if !s.Caps.Tools {
		return
	}
	find := func(root string) string {
		out, err := exec.Command("find", root, "-printf", `%P|%y|%m|%s|%n|%U|%G|%T@|%l\n`).Output()
		if err != nil {
			t.Fatalf("find %s: %v", root, err)
		}
		lines := strings.Split(string(out), "\n")
		for i, l := range lines {
			// A directory's st_size is the file system's own business.
			if f := strings.Split(l, "|"); len(f) > 3 && f[1] == "d" {
				f[3] = "-"
				lines[i] = strings.Join(f, "|")
			}
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	if a, b := find(d.src), find(dir); a != b {
		t.Errorf("find output differs:\n%s", lineDiff(a, b))
	}
	if a, b := tarListing(t, d.src), tarListing(t, dir); a != b {
		t.Errorf("tar c streams differ:\n%s", lineDiff(a, b))
	}
	out, err := exec.Command("diff", "-r", "--no-dereference", "--exclude=fifo", d.src, dir).CombinedOutput()
	if err != nil {
		t.Errorf("diff -r: %v\n%s", err, out)
	}
}

// tarListing runs GNU tar over root and describes every member: header
// fields, PAX records (xattrs, ns mtimes; order aside) and a content digest.
func tarListing(t *testing.T, root string) string {
	cmd := exec.Command("tar", "--sort=name", "--numeric-owner", "--xattrs", "--xattrs-include=user.*", "--format=posix",
		"--pax-option=delete=atime,delete=ctime", "-C", root, "-cf", "-", ".")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var lines []string
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar c %s: %v", root, err)
		}
		d := sha256.New()
		io.Copy(d, tr)
		var pax []string
		for k, v := range h.PAXRecords {
			if k != "path" && k != "linkpath" {
				pax = append(pax, k+"="+v)
			}
		}
		sort.Strings(pax)
		lines = append(lines, fmt.Sprintf("%s|%c|%s|%o|%d:%d|%d|%d|%d,%d|%x|%v", h.Name, h.Typeflag, h.Linkname, h.Mode, h.Uid, h.Gid,
			h.Size, h.ModTime.UnixNano(), h.Devmajor, h.Devminor, d.Sum(nil)[:8], pax))
	}
	return strings.Join(lines, "\n")
}

// lineDiff lists lines present on one side only.
func lineDiff(a, b string) string {
	in := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		in[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		in[l]--
	}
	var out []string
	for l, n := range in {
		if n > 0 {
			out = append(out, "- "+l)
		} else if n < 0 {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	if len(out) > 40 {
		out = append(out[:40], "…")
	}
	return strings.Join(out, "\n")
}

func (s Suite) readOnly(t *testing.T, d *data) {
	dir, unmount := s.Mount(t, d.store, "fix@1")
	defer unmount()
	f, dd := filepath.Join(dir, "text.txt"), filepath.Join(dir, "docs")
	want := s.Caps.WriteErrno
	for name, op := range map[string]func() error{
		"open for write": func() error { return closeErr(os.OpenFile(f, os.O_WRONLY, 0)) },
		"truncate":       func() error { return os.Truncate(f, 0) },
		"create":         func() error { return closeErr(os.Create(filepath.Join(dd, "new"))) },
		"mkdir":          func() error { return os.Mkdir(filepath.Join(dd, "newdir"), 0o755) },
		"unlink":         func() error { return os.Remove(f) },
		"rmdir":          func() error { return unix.Rmdir(filepath.Join(dir, "twin-a/sub")) },
		"rename":         func() error { return os.Rename(f, filepath.Join(dd, "moved")) },
		"chmod":          func() error { return os.Chmod(f, 0o600) },
		"chown":          func() error { return os.Lchown(f, 1, 1) },
		"utimes":         func() error { return unix.UtimesNano(f, []unix.Timespec{{}, {}}) },
		"setxattr":       func() error { return unix.Setxattr(f, "user.new", []byte("x"), 0) },
		"removexattr":    func() error { return unix.Removexattr(filepath.Join(dir, "xattr/file"), "user.fixture") },
		"symlink":        func() error { return os.Symlink("x", filepath.Join(dd, "ln")) },
		"link":           func() error { return os.Link(f, filepath.Join(dd, "hl")) },
		"mknod":          func() error { return unix.Mkfifo(filepath.Join(dd, "fifo"), 0o644) },
	} {
		if err := op(); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if b, err := os.ReadFile(f); err != nil || len(b) == 0 {
		t.Errorf("text.txt after the refused writes: %d bytes, %v", len(b), err)
	}
}

func closeErr(f *os.File, err error) error {
	if f != nil {
		f.Close()
	}
	return err
}

// inodeMap lists every path's inode number.
func inodeMap(t *testing.T, dir string) map[string]uint64 {
	m := map[string]uint64{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		m[p[len(dir):]] = st.Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (s Suite) inodes(t *testing.T, d *data) {
	dir, unmount := s.Mount(t, d.store, "fix@1")
	first := inodeMap(t, dir)
	unmount()
	dir, unmount = s.Mount(t, d.store, "fix@1")
	defer unmount()
	second := inodeMap(t, dir)
	if len(first) != len(second) {
		t.Fatalf("%d paths before the remount, %d after", len(first), len(second))
	}
	owners := map[uint64][]string{}
	for p, ino := range first {
		if second[p] != ino {
			t.Errorf("%s: inode %d before the remount, %d after", p, ino, second[p])
		}
		owners[ino] = append(owners[ino], p)
	}
	// Only hard links share an inode.
	for ino, paths := range owners {
		if len(paths) > 1 {
			sort.Strings(paths)
			want := make([]string, len(fixture.HardLinks))
			for i, h := range fixture.HardLinks {
				want[i] = "/" + h
			}
			sort.Strings(want)
			if fmt.Sprint(paths) != fmt.Sprint(want) {
				t.Errorf("inode %d shared by %v", ino, paths)
			}
		}
	}
}

func sum(t *testing.T, p string) [32]byte {
	f, err := os.Open(p)
	if err != nil {
		t.Error(err)
		return [32]byte{}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Errorf("read %s: %v", p, err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func (s Suite) parallel(t *testing.T, d *data) {
	dir, unmount := s.Mount(t, d.store, "fix@1")
	defer unmount()
	var files []string
	filepath.WalkDir(d.src, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() && !strings.HasPrefix(p, filepath.Join(d.src, fixture.Special)) {
			files = append(files, p[len(d.src):])
		}
		return nil
	})
	want := map[string][32]byte{}
	for _, f := range files {
		want[f] = sum(t, d.src+f)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g%2 == 0 { // half read the big file, all at once
				if got := sum(t, filepath.Join(dir, fixture.BigFile)); got != want["/"+fixture.BigFile] {
					t.Errorf("reader %d: %s differs", g, fixture.BigFile)
				}
				return
			}
			for i := g; i < len(files); i += 8 { // the others split the files
				if got := sum(t, dir+files[i]); got != want[files[i]] {
					t.Errorf("reader %d: %s differs", g, files[i])
				}
			}
		}()
	}
	wg.Wait()
}

func (s Suite) corruption(t *testing.T, d *data) {
	damaged := filepath.Join(t.TempDir(), "damaged.sdfs")
	b, err := os.ReadFile(d.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(filepath.Join(d.src, "text.txt"))
	if s.Damage != nil {
		s.Damage(t, damaged, hash.Sum(content))
	} else {
		Flip(t, damaged, hash.Sum(content))
	}
	dir, unmount := s.Mount(t, damaged, "fix@1")
	defer unmount()
	if got, err := os.ReadFile(filepath.Join(dir, "text.txt")); !errors.Is(err, s.Caps.CorruptErrno) {
		t.Errorf("reading the corrupt file: %d bytes, %v; want %v", len(got), err, s.Caps.CorruptErrno)
	}
	if sum(t, filepath.Join(dir, fixture.BigFile)) != sum(t, filepath.Join(d.src, fixture.BigFile)) {
		t.Error("a healthy file differs next to a corrupt one")
	}
	if _, err := os.ReadFile(filepath.Join(dir, "docs/readme.txt")); err != nil {
		t.Errorf("a healthy file fails next to a corrupt one: %v", err)
	}
}

// Flip damages one byte of the stored chunk with content address h.
func Flip(t *testing.T, path string, h hash.Hash) {
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var id int64
	var data []byte
	err = sqlitex.Execute(c, `SELECT d.id, d.data FROM chunk_data d JOIN chunks c ON d.id = c.data_id WHERE c.hash = ?`,
		&sqlitex.ExecOptions{Args: []any{h[:]}, ResultFunc: func(st *sqlite.Stmt) error {
			id, data = st.ColumnInt64(0), make([]byte, st.ColumnLen(1))
			st.ColumnBytes(1, data)
			return nil
		}})
	if err != nil || data == nil {
		t.Fatalf("find chunk %s: %v", h, err)
	}
	data[len(data)/2] ^= 0x10
	if err := sqlitex.Execute(c, `UPDATE chunk_data SET data = ? WHERE id = ?`, &sqlitex.ExecOptions{Args: []any{data, id}}); err != nil {
		t.Fatal(err)
	}
}

func (s Suite) namespace(t *testing.T, d *data) {
	dir, unmount := s.Mount(t, d.store, "")
	defer unmount()
	names, err := os.ReadDir(dir)
	if err != nil || len(names) != 2 || names[0].Name() != "fix" || names[1].Name() != "other" {
		t.Fatalf("top of the namespace: %v, %v", names, err)
	}
	versions, err := os.ReadDir(filepath.Join(dir, "fix"))
	if err != nil || len(versions) != 3 || versions[0].Name() != "1" || versions[1].Name() != "2" || versions[2].Name() != "latest" {
		t.Fatalf("fix/: %v, %v", versions, err)
	}
	if s.Caps.Symlinks {
		if target, err := os.Readlink(filepath.Join(dir, "fix/latest")); err != nil || target != "2" {
			t.Errorf("fix/latest -> %q, %v; want 2", target, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "fix/latest/version")); err != nil || string(b) != "two\n" {
		t.Errorf("fix/latest/version = %q, %v", b, err)
	}
	if sum(t, filepath.Join(dir, "fix/1/text.txt")) != sum(t, filepath.Join(d.src, "text.txt")) {
		t.Error("fix/1/text.txt differs")
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing name: %v", err)
	}

	// A name alone shows its versions.
	dir2, unmount2 := s.Mount(t, d.store, "fix")
	defer unmount2()
	if b, err := os.ReadFile(filepath.Join(dir2, "latest/version")); err != nil || string(b) != "two\n" {
		t.Errorf("name view latest/version = %q, %v", b, err)
	}
}

// FlipDir damages one byte of the stored listing of directory which
// (NAME@VERSION/path) and returns the listing's hash.
func FlipDir(t *testing.T, path, which string) hash.Hash {
	t.Helper()
	ref, err := store.ParseRef(which, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := backend.OpenRoot(context.Background(), s.Objects, ref)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	h := v.Root().Hash
	s.Close()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var data []byte
	err = sqlitex.Execute(c, `SELECT data FROM dirs WHERE hash = ?`, &sqlitex.ExecOptions{Args: []any{h[:]},
		ResultFunc: func(st *sqlite.Stmt) error {
			data = make([]byte, st.ColumnLen(0))
			st.ColumnBytes(0, data)
			return nil
		}})
	if err != nil || data == nil {
		t.Fatalf("find listing %s: %v", h, err)
	}
	data[len(data)/2] ^= 0x10
	if err := sqlitex.Execute(c, `UPDATE dirs SET data = ? WHERE hash = ?`, &sqlitex.ExecOptions{Args: []any{data, h[:]}}); err != nil {
		t.Fatal(err)
	}
	return h
}
