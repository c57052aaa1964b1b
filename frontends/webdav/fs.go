package webdav

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// maxHops bounds symlink resolution, as Linux does (ELOOP after 40).
const maxHops = 40

// errReadOnly is what every write through the webdav.FileSystem gets; the
// handler refuses write methods before the library sees them, so it is a
// second line of defence only.
var errReadOnly = fmt.Errorf("read-only file system: %w", fs.ErrPermission)

// davFS is a backend view as a webdav.FileSystem: read-only, with symlinks
// replaced by what they point at when that stays inside the view, and
// hidden otherwise; FIFOs, sockets and devices are hidden too.
type davFS struct {
	v *backend.View
}

var _ webdav.FileSystem = (*davFS)(nil)

// cacheKey is the context key of a request's resolution cache.
type cacheKey struct{}

// reqCache is what one request has resolved. stacks holds the node stack
// each directory path resolved to, so that a Depth 1 PROPFIND resolves
// each child with one lookup instead of a walk from the top. lists holds
// listings read before the response started (PROPFIND of a collection):
// the library's Readdir and its Stat of each child are answered from them
// without touching the store once the 207 status line is out. err is the
// library's error for the request, reported through its Logger. A request
// runs on one goroutine.
type reqCache struct {
	stacks map[string][]*backend.Node
	lists  map[string][]*backend.Node
	err    error
}

func withCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, cacheKey{}, &reqCache{stacks: map[string][]*backend.Node{}, lists: map[string][]*backend.Node{}})
}

func cacheOf(ctx context.Context) *reqCache {
	c, _ := ctx.Value(cacheKey{}).(*reqCache)
	return c
}

// listing returns the listing of the directory at key read earlier in the
// request, if there is one.
func (c *reqCache) listing(key string) ([]*backend.Node, bool) {
	if c == nil {
		return nil, false
	}
	ns, ok := c.lists[key]
	return ns, ok
}

// listed returns child name of the directory at key from a listing read
// earlier in the request, if there is one and it holds the name.
func (c *reqCache) listed(key, name string) (*backend.Node, bool) {
	ns, ok := c.listing(key)
	if !ok {
		return nil, false
	}
	i, found := slices.BinarySearchFunc(ns, name, func(n *backend.Node, name string) int { return strings.Compare(n.Name, name) })
	if !found {
		return nil, false
	}
	return ns[i], true
}

// splitClean splits a slash-separated path into its names, dropping empty
// and "." parts.
func splitClean(p string) []string {
	var out []string
	for _, part := range strings.Split(p, "/") {
		if part != "" && part != "." {
			out = append(out, part)
		}
	}
	return out
}

// resolve returns the node at name (a slash-separated path from the top),
// following symlinks whose targets stay inside the view. Absolute,
// escaping, dangling and looping symlinks, and special files, do not exist
// here. The node keeps the name the path gave it.
func (f *davFS) resolve(ctx context.Context, name string) (*backend.Node, error) {
	parts := splitClean(name)
	if len(parts) == 0 {
		return f.v.Root(), nil
	}
	if n, ok := cacheOf(ctx).listed(strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1]); ok {
		return n, nil
	}
	stack, err := f.stack(ctx, parts[:len(parts)-1])
	if err != nil {
		return nil, pathError("open", name, err)
	}
	n, _, err := f.lookup(ctx, stack, parts[len(parts)-1])
	if err != nil {
		return nil, pathError("open", name, err)
	}
	return n, nil
}

// pathError wraps an error of op on name for the library. What is not
// here is an *fs.PathError, which a Depth infinity walk skips; any other
// error (a damaged listing) is not, so that the walk stops instead of
// leaving the entry out of a response that looks complete.
func pathError(op, name string, err error) error {
	if isHidden(err) {
		return &fs.PathError{Op: op, Path: name, Err: hide(err)}
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// stack returns the physical node stack (top first) of the directory at
// parts, from the request's cache where it can.
func (f *davFS) stack(ctx context.Context, parts []string) ([]*backend.Node, error) {
	if len(parts) == 0 {
		return []*backend.Node{f.v.Root()}, nil
	}
	cache := cacheOf(ctx)
	key := strings.Join(parts, "/")
	if cache != nil {
		if s, ok := cache.stacks[key]; ok {
			return s, nil
		}
	}
	parent, err := f.stack(ctx, parts[:len(parts)-1])
	if err != nil {
		return nil, err
	}
	n, s, err := f.lookup(ctx, parent, parts[len(parts)-1])
	if err != nil {
		return nil, err
	}
	if !n.IsDir() {
		return nil, backend.ErrNotDir
	}
	if cache != nil {
		cache.stacks[key] = s
	}
	return s, nil
}

// lookup finds child name of the directory at the top of stack and, if it
// is a symlink, resolves it (within the view) to a directory or regular
// file, which keeps the link's name. For a directory it also returns its
// physical stack (where a symlink led, so that ".." in later links works
// as in the kernel).
func (f *davFS) lookup(ctx context.Context, stack []*backend.Node, name string) (*backend.Node, []*backend.Node, error) {
	if name == ".." || name == "." || strings.ContainsRune(name, 0) {
		return nil, nil, fs.ErrNotExist
	}
	n, err := f.v.Lookup(ctx, stack[len(stack)-1], name)
	if err != nil {
		return nil, nil, err
	}
	var st []*backend.Node
	if n.Type == tree.TypeSymlink {
		if st, err = f.follow(ctx, stack, n.Target); err != nil {
			return nil, nil, err
		}
		c := *st[len(st)-1]
		c.Name = name
		n = &c
		st[len(st)-1] = n
	} else {
		st = append(append(make([]*backend.Node, 0, len(stack)+1), stack...), n)
	}
	switch n.Type {
	case tree.TypeDir:
		return n, st, nil
	case tree.TypeFile:
		return n, nil, nil
	}
	return nil, nil, fs.ErrNotExist // FIFOs, sockets, devices
}

// follow resolves a symlink target relative to the directory at the top of
// stack, never above the view's top, and returns the stack ending at the
// target (a fresh slice).
func (f *davFS) follow(ctx context.Context, stack []*backend.Node, target string) ([]*backend.Node, error) {
	if target == "" || strings.HasPrefix(target, "/") {
		return nil, fs.ErrNotExist
	}
	st := append([]*backend.Node(nil), stack...)
	parts := strings.Split(target, "/")
	hops := 1
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(st) == 1 {
				return nil, fs.ErrNotExist // escapes the view
			}
			st = st[:len(st)-1]
			continue
		}
		n, err := f.v.Lookup(ctx, st[len(st)-1], p)
		if err != nil {
			return nil, err
		}
		if n.Type == tree.TypeSymlink {
			if hops++; hops > maxHops || n.Target == "" || strings.HasPrefix(n.Target, "/") {
				return nil, fs.ErrNotExist
			}
			parts = append(strings.Split(n.Target, "/"), parts...)
			continue
		}
		if len(parts) > 0 && !n.IsDir() {
			return nil, backend.ErrNotDir
		}
		st = append(st, n)
	}
	if len(st) == 1 { // the top itself
		top := *st[0]
		st[0] = &top
	}
	return st, nil
}

// children lists the directory at parts with symlinks resolved and hidden
// entries left out, in name order; it caches the stacks of child
// directories for the library's Stat of each child. A symlink that cannot
// be resolved for any reason but "not here" (a damaged listing on its
// way) fails the listing rather than leaving an entry out.
func (f *davFS) children(ctx context.Context, parts []string, dir *backend.Node) ([]*backend.Node, error) {
	ns, err := f.v.ReadDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	stack, err := f.stack(ctx, parts)
	if err != nil {
		return nil, err
	}
	cache := cacheOf(ctx)
	prefix := strings.Join(parts, "/")
	if prefix != "" {
		prefix += "/"
	}
	out := make([]*backend.Node, 0, len(ns))
	for _, n := range ns {
		switch n.Type {
		case tree.TypeFile:
			out = append(out, n)
		case tree.TypeDir:
			out = append(out, n)
			if cache != nil {
				cache.stacks[prefix+n.Name] = append(append(make([]*backend.Node, 0, len(stack)+1), stack...), n)
			}
		case tree.TypeSymlink:
			r, s, err := f.lookup(ctx, stack, n.Name)
			if isHidden(err) {
				continue // a symlink leading nowhere here
			}
			if err != nil {
				return nil, fmt.Errorf("symlink %s%s: %w", prefix, n.Name, err)
			}
			out = append(out, r)
			if cache != nil && s != nil {
				cache.stacks[prefix+n.Name] = s
			}
		}
	}
	return out, nil
}

// Mkdir implements webdav.FileSystem: refused.
func (f *davFS) Mkdir(ctx context.Context, name string, perm os.FileMode) error {
	return &fs.PathError{Op: "mkdir", Path: name, Err: errReadOnly}
}

// RemoveAll implements webdav.FileSystem: refused.
func (f *davFS) RemoveAll(ctx context.Context, name string) error {
	return &fs.PathError{Op: "remove", Path: name, Err: errReadOnly}
}

// Rename implements webdav.FileSystem: refused.
func (f *davFS) Rename(ctx context.Context, oldName, newName string) error {
	return &fs.PathError{Op: "rename", Path: oldName, Err: errReadOnly}
}

// Stat implements webdav.FileSystem.
func (f *davFS) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	n, err := f.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	return &fileInfo{n: n}, nil
}

// OpenFile implements webdav.FileSystem: only for reading.
func (f *davFS) OpenFile(ctx context.Context, name string, flag int, perm os.FileMode) (webdav.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errReadOnly}
	}
	n, err := f.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	return &file{fs: f, ctx: ctx, name: name, n: n}, nil
}

// fileInfo is a node as os.FileInfo, with the content type and ETag the
// library asks for (webdav.ContentTyper, webdav.ETager).
type fileInfo struct{ n *backend.Node }

var (
	_ webdav.ContentTyper = (*fileInfo)(nil)
	_ webdav.ETager       = (*fileInfo)(nil)
)

// Name implements os.FileInfo.
func (i *fileInfo) Name() string { return i.n.Name }

// Size implements os.FileInfo; directories have size 0.
func (i *fileInfo) Size() int64 {
	if i.n.IsDir() {
		return 0
	}
	return i.n.Size
}

// Mode implements os.FileInfo.
func (i *fileInfo) Mode() fs.FileMode { return i.n.FileMode() }

// ModTime implements os.FileInfo: the stored mtime.
func (i *fileInfo) ModTime() time.Time { return time.Unix(0, i.n.MTime) }

// IsDir implements os.FileInfo.
func (i *fileInfo) IsDir() bool { return i.n.IsDir() }

// Sys implements os.FileInfo: the backend attributes.
func (i *fileInfo) Sys() any { return &i.n.Attr }

// ContentType implements webdav.ContentTyper: by extension, never by
// reading the content.
func (i *fileInfo) ContentType(context.Context) (string, error) {
	return contentType(i.n.Name), nil
}

// ETag implements webdav.ETager: the content hash, for directories too;
// the namespace's own directories have none and fall back to the
// library's mtime and size.
func (i *fileInfo) ETag(context.Context) (string, error) {
	if e := etag(i.n); e != "" {
		return e, nil
	}
	return "", webdav.ErrNotImplemented
}

// contentType is the MIME type of a file name by its extension, or
// application/octet-stream.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// etag is a node's strong entity tag: its content address, quoted; "" for
// nodes without one.
func etag(n *backend.Node) string {
	if n.Hash.IsZero() {
		return ""
	}
	return `"` + n.Hash.String() + `"`
}

// file is an open node for the library: Stat and Readdir for PROPFIND,
// with the dead properties that override the library's defaults; its
// content is opened on first Read or Seek.
type file struct {
	fs   *davFS
	ctx  context.Context
	name string
	n    *backend.Node
	r    *backend.Reader
	list []*backend.Node
	done bool // list read
}

var (
	_ webdav.File            = (*file)(nil)
	_ webdav.DeadPropsHolder = (*file)(nil)
)

// Close implements webdav.File.
func (f *file) Close() error { return nil }

func (f *file) reader() (*backend.Reader, error) {
	if f.r == nil {
		r, err := f.fs.v.Open(f.ctx, f.n)
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
		f.r = r
	}
	return f.r, nil
}

// Read implements webdav.File.
func (f *file) Read(p []byte) (int, error) {
	r, err := f.reader()
	if err != nil {
		return 0, err
	}
	return r.Read(p)
}

// Seek implements webdav.File.
func (f *file) Seek(off int64, whence int) (int64, error) {
	r, err := f.reader()
	if err != nil {
		return 0, err
	}
	return r.Seek(off, whence)
}

// Write implements webdav.File: refused.
func (f *file) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: f.name, Err: errReadOnly}
}

// Stat implements webdav.File.
func (f *file) Stat() (os.FileInfo, error) { return &fileInfo{n: f.n}, nil }

// Readdir implements webdav.File.
func (f *file) Readdir(count int) ([]fs.FileInfo, error) {
	if !f.n.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: backend.ErrNotDir}
	}
	if !f.done {
		parts := splitClean(f.name)
		ns, ok := cacheOf(f.ctx).listing(strings.Join(parts, "/"))
		if !ok {
			var err error
			if ns, err = f.fs.children(f.ctx, parts, f.n); err != nil {
				return nil, pathError("readdir", f.name, err)
			}
		}
		f.list, f.done = ns, true
	}
	n := len(f.list)
	if count > 0 {
		if n == 0 {
			return nil, io.EOF
		}
		n = min(n, count)
	}
	out := make([]fs.FileInfo, n)
	for i := range out {
		out[i] = &fileInfo{n: f.list[i]}
	}
	f.list = f.list[n:]
	return out, nil
}

// Properties served as dead properties, which the library prefers to its
// own live ones: creationdate (which it lacks), getetag on directories
// (which it leaves out), and empty lock properties (no locking here).
var (
	propCreationDate  = xml.Name{Space: "DAV:", Local: "creationdate"}
	propETag          = xml.Name{Space: "DAV:", Local: "getetag"}
	propSupportedLock = xml.Name{Space: "DAV:", Local: "supportedlock"}
	propLockDiscovery = xml.Name{Space: "DAV:", Local: "lockdiscovery"}
)

// DeadProps implements webdav.DeadPropsHolder.
func (f *file) DeadProps() (map[xml.Name]webdav.Property, error) {
	m := map[xml.Name]webdav.Property{
		propCreationDate: {XMLName: propCreationDate,
			InnerXML: []byte(time.Unix(0, f.n.MTime).UTC().Format(time.RFC3339))},
		propSupportedLock: {XMLName: propSupportedLock},
		propLockDiscovery: {XMLName: propLockDiscovery},
	}
	if f.n.IsDir() {
		if e := etag(f.n); e != "" {
			m[propETag] = webdav.Property{XMLName: propETag, InnerXML: []byte(e)} // hex: nothing to escape
		}
	}
	return m, nil
}

// Patch implements webdav.DeadPropsHolder: every change is forbidden.
func (f *file) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	return nil, &fs.PathError{Op: "proppatch", Path: f.name, Err: errReadOnly}
}

// hide turns "not a directory" into "does not exist", as a client sees it
// (the library answers other errors with 405).
func hide(err error) error {
	if errors.Is(err, backend.ErrNotDir) {
		return fs.ErrNotExist
	}
	return err
}

// isHidden reports errors that mean "not here" to a client.
func isHidden(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, backend.ErrNotDir)
}
