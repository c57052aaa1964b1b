package backend

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// FS is a View as an io/fs file system. Open, Stat and ReadFile follow
// symlinks whose targets stay inside the view; Lstat and ReadLink do not.
type FS struct {
	v   *View
	ctx context.Context
}

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// FS returns the view as an io/fs file system.
func (v *View) FS() *FS { return &FS{v: v, ctx: context.Background()} }

// maxHops bounds symlink resolution, as Linux does (ELOOP after 40).
const maxHops = 40

var errLoop = errors.New("too many levels of symbolic links")

func splitPath(p string) []string {
	if p == "" || p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

// validPath is fs.ValidPath without its UTF-8 rule: stored names are bytes
// (as on Linux), and a name ReadDir returns must open.
func validPath(name string) bool {
	return fs.ValidPath(strings.ToValidUTF8(name, "_"))
}

func sortNodes(ns []*Node) {
	slices.SortFunc(ns, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
}

// resolve walks name from the top, following symlinks in the middle of the
// path and, if follow, at its end. Targets that leave the view (absolute, or
// too many "..") do not exist here.
func (f *FS) resolve(op, name string, follow bool) (*Node, error) {
	if !validPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	stack := []*Node{f.v.root}
	parts := splitPath(name)
	hops := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) == 1 {
				return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			stack = stack[:len(stack)-1]
			continue
		}
		n, err := f.v.Lookup(f.ctx, stack[len(stack)-1], p)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if n.Type == tree.TypeSymlink && (len(parts) > 0 || follow) {
			if hops++; hops > maxHops {
				return nil, &fs.PathError{Op: op, Path: name, Err: errLoop}
			}
			if strings.HasPrefix(n.Target, "/") {
				return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			parts = append(strings.Split(n.Target, "/"), parts...)
			continue
		}
		stack = append(stack, n)
	}
	n := stack[len(stack)-1]
	if n == f.v.root {
		c := *n
		c.Name = "."
		return &c, nil
	}
	return n, nil
}

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	n, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	switch n.Type {
	case tree.TypeDir:
		return &dirFile{fsys: f, n: n}, nil
	case tree.TypeFile:
		r, err := f.v.Open(f.ctx, n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &regFile{Reader: r, n: n}, nil
	}
	// FIFOs, sockets and devices are recorded, never read: they open as empty.
	return &specialFile{n: n}, nil
}

// Stat implements fs.StatFS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{n}, nil
}

// Lstat implements fs.ReadLinkFS.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{n}, nil
}

// ReadLink implements fs.ReadLinkFS.
func (f *FS) ReadLink(name string) (string, error) {
	n, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	t, err := f.v.Readlink(f.ctx, n)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// ReadDir implements fs.ReadDirFS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	ns, err := f.v.ReadDir(f.ctx, n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ns))
	for i, c := range ns {
		out[i] = dirEntry{c}
	}
	return out, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	r, ok := file.(*regFile)
	if !ok {
		if file.(interface{ isDir() bool }).isDir() {
			return nil, &fs.PathError{Op: "read", Path: name, Err: ErrIsDir}
		}
		return []byte{}, nil
	}
	b := make([]byte, r.Size())
	if _, err := r.ReadAtContext(f.ctx, b, 0); err != nil && err != io.EOF {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// fileInfo is a Node as fs.FileInfo; Sys returns *Attr.
type fileInfo struct{ n *Node }

func (i fileInfo) Name() string       { return i.n.Name }
func (i fileInfo) Size() int64        { return i.n.Size }
func (i fileInfo) Mode() fs.FileMode  { return i.n.FileMode() }
func (i fileInfo) ModTime() time.Time { return time.Unix(0, i.n.MTime) }
func (i fileInfo) IsDir() bool        { return i.n.IsDir() }
func (i fileInfo) Sys() any           { return &i.n.Attr }

type dirEntry struct{ n *Node }

func (e dirEntry) Name() string               { return e.n.Name }
func (e dirEntry) IsDir() bool                { return e.n.IsDir() }
func (e dirEntry) Type() fs.FileMode          { return e.n.FileMode().Type() }
func (e dirEntry) Info() (fs.FileInfo, error) { return fileInfo(e), nil }
func (e dirEntry) String() string             { return fs.FormatDirEntry(e) }

type regFile struct {
	*Reader
	n *Node
}

func (f *regFile) Stat() (fs.FileInfo, error) { return fileInfo{f.n}, nil }
func (f *regFile) Close() error               { return nil }
func (f *regFile) isDir() bool                { return false }

type specialFile struct{ n *Node }

func (f *specialFile) Stat() (fs.FileInfo, error) { return fileInfo{f.n}, nil }
func (f *specialFile) Read([]byte) (int, error)   { return 0, io.EOF }
func (f *specialFile) Close() error               { return nil }
func (f *specialFile) isDir() bool                { return false }

type dirFile struct {
	fsys    *FS
	n       *Node
	entries []*Node
	listed  bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return fileInfo{d.n}, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) isDir() bool                { return true }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.n.Name, Err: ErrIsDir}
}

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	if !d.listed {
		ns, err := d.fsys.v.ReadDir(d.fsys.ctx, d.n)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.n.Name, Err: err}
		}
		d.entries, d.listed = ns, true
	}
	n := len(d.entries)
	if count > 0 && count < n {
		n = count
	}
	if count > 0 && n == 0 {
		return nil, io.EOF
	}
	out := make([]fs.DirEntry, n)
	for i := range out {
		out[i] = dirEntry{d.entries[i]}
	}
	d.entries = d.entries[n:]
	return out, nil
}
