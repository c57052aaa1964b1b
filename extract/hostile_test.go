package extract

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// hostileNames mean a path, a drive, a device or something else than a
// plain name on some platform. All are valid stored names.
var hostileNames = []string{
	`..\..\evil`, `..\`, `.\x`, `C:`, `C:\evil`, `c:evil`, `\\server\share\evil`, `\\?\C:\evil`,
	"CON", "nul.txt", "COM1", "LPT9.log", "aux ", "trailing.", "trailing ", "...", ". ", " ",
	`a:b`, `<>"|?*`, "ctl\x01\x1f",
}

// hostileStore returns a store holding root hostile@1: every hostile name
// as a file, a symlink pointing out of the tree, and a directory with a
// hostile name holding every hostile name again.
func hostileStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(filepath.Join(dir, "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: "plain", Version: "1", Sources: []ingest.Source{{Dir: src}}}); err != nil {
		t.Fatal(err)
	}
	plain, err := s.Root(ctx, "plain", "1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Dir(ctx, plain.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	file := d.Entries[0]

	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	sub := filesNamed(file, hostileNames)
	subEntry := putDir(t, w, sub, `..\sub`)
	top := filesNamed(file, hostileNames)
	top.Entries = append(top.Entries, subEntry,
		tree.Entry{Name: `..\link`, Type: tree.TypeSymlink, Mode: 0o777, Target: "../../outside", Size: 13})
	top.Files += sub.Files
	top.Bytes += sub.Bytes
	topEntry := putDir(t, w, top, "")
	if err := w.Commit(store.Root{Name: "hostile", Version: "1", Top: topEntry, Created: time.Now(),
		Files: int64(top.Files), Bytes: int64(top.Bytes)}); err != nil {
		t.Fatal(err)
	}
	return s
}

// filesNamed is a listing of copies of file, one per name.
func filesNamed(file tree.Entry, names []string) *tree.Dir {
	d := &tree.Dir{}
	for _, n := range names {
		e := file
		e.Name = n
		d.Entries = append(d.Entries, e)
		d.Files++
		d.Bytes += uint64(e.Size)
	}
	return d
}

// putDir stores listing d and returns its entry under name.
func putDir(t *testing.T, w *store.Writer, d *tree.Dir, name string) tree.Entry {
	t.Helper()
	d.Sort()
	enc, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return putEncoded(t, w, enc, name, len(d.Entries))
}

func putEncoded(t *testing.T, w *store.Writer, enc []byte, name string, n int) tree.Entry {
	t.Helper()
	h := hash.Sum(enc)
	if err := w.PutDir(h, enc, nil); err != nil {
		t.Fatal(err)
	}
	return tree.Entry{Name: name, Type: tree.TypeDir, Mode: 0o755, Hash: h, Size: int64(n), Nlink: 2, MTime: 1e18}
}

// listAll returns every path below dir, relative and slash-separated.
func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestToDirHostileNames extracts hostile stored names: each becomes one
// entry directly below its directory, under localName, and nothing is
// written outside the destination.
func TestToDirHostileNames(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	s := hostileStore(t, base)
	v, err := backend.OpenRoot(ctx, s.Objects, store.Ref{Name: "hostile", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	before := listAll(t, base)
	dest := filepath.Join(base, "out", "dest")
	var logs bytes.Buffer
	if err := ToDir(ctx, v, v.Root(), dest, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	local := func(name string) string {
		l, _, err := localName(name, windowsNames)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(l)
	}
	var want []string
	for _, n := range hostileNames {
		want = append(want, local(n), local(`..\sub`)+"/"+local(n))
	}
	want = append(want, local(`..\sub`), local(`..\link`))
	slices.Sort(want)
	if got := listAll(t, dest); !slices.Equal(got, want) {
		t.Errorf("extracted\n%q\nwant\n%q", got, want)
	}
	after := listAll(t, base)
	var outside []string
	for _, p := range after {
		if !slices.Contains(before, p) && p != "out" && p != "out/dest" && !strings.HasPrefix(p, "out/dest/") {
			outside = append(outside, p)
		}
	}
	if len(outside) > 0 {
		t.Errorf("written outside the destination: %q", outside)
	}
	for _, n := range hostileNames {
		b, err := os.ReadFile(filepath.Join(dest, local(`..\sub`), local(n)))
		if err != nil || string(b) != "content" {
			t.Errorf("%q: %q, %v", n, b, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dest, local(`..\link`))); err != nil || target != "../../outside" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	if renamed := bytes.Contains(logs.Bytes(), []byte("renamed")); renamed != windowsNames {
		t.Errorf("warning about renamed names: %v, want %v; log:\n%s", renamed, windowsNames, logs.String())
	}
}

// TestToDirUnsafeStoredNames stores listings whose names could never be a
// file name ("..", "a/b", NUL), bypassing the encoder: reading them fails,
// so extract fails, and nothing is written outside the destination.
func TestToDirUnsafeStoredNames(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	s := hostileStore(t, base)
	plain, err := s.Root(ctx, "plain", "1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Dir(ctx, plain.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	for i, bad := range []string{"..", "a/b", "/x", "a\x00b", "."} {
		placeholder := string(bytes.Repeat([]byte{'q'}, len(bad)))
		enc, err := filesNamed(d.Entries[0], []string{placeholder}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		enc = bytes.Replace(enc, []byte(placeholder), []byte(bad), 1)
		w, err := s.NewWriter()
		if err != nil {
			t.Fatal(err)
		}
		// The bad listing is one level down, so the root itself opens.
		sub := putEncoded(t, w, enc, "sub", 1)
		top := putDir(t, w, &tree.Dir{Entries: []tree.Entry{sub}, Files: 1, Bytes: uint64(d.Entries[0].Size)}, "")
		version := string(rune('a' + i))
		if err := w.Commit(store.Root{Name: "unsafe", Version: version, Top: top, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		v, err := backend.OpenRoot(ctx, s.Objects, store.Ref{Name: "unsafe", Version: version})
		if err != nil {
			t.Fatal(err)
		}
		before := listAll(t, base)
		dest := filepath.Join(base, "out"+version)
		if err := ToDir(ctx, v, v.Root(), dest, Options{}); !errors.Is(err, backend.ErrCorrupt) {
			t.Errorf("%q: extract: %v, want a corrupt listing", bad, err)
		}
		for _, p := range listAll(t, base) {
			if !slices.Contains(before, p) && p != "out"+version && p != "out"+version+"/sub" {
				t.Errorf("%q: wrote %s", bad, p)
			}
		}
	}
}
