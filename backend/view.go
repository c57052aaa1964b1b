// Package backend is the read-only file-system view over a store: one root,
// one name's versions, or the namespace /<name>/<version>/… of every root,
// with `latest` symlinks. Frontends walk it node by node (View); Go code and
// tests use it as an io/fs file system (FS).
package backend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"syscall"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Errors of the view; frontends map them to their protocol's codes with
// Errno.
var (
	ErrNotExist = fs.ErrNotExist
	ErrNotDir   = errors.New("not a directory")
	ErrIsDir    = errors.New("is a directory")
	ErrCorrupt  = store.ErrCorrupt
	// ErrStale: an object is missing because the root it belongs to was
	// removed and garbage collected (it also matches fs.ErrNotExist).
	ErrStale = errors.New("stale")
)

// Errno maps a view error to the errno a file-system frontend returns:
// ENOENT, ENOTDIR, EISDIR, EINVAL, ESTALE for what a removed root held,
// EIO for corruption and anything unknown.
func Errno(err error) syscall.Errno {
	var en syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrStale):
		return syscall.ESTALE
	case errors.Is(err, ErrCorrupt):
		return syscall.EIO
	case errors.As(err, &en):
		return en
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, store.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}

// level says what a node is in the view.
type level uint8

const (
	levelStored level = iota // an entry of a stored tree (or a root's top)
	levelTop                 // namespace "/": one directory per name
	levelName                // namespace "/<name>": versions and latest
	levelLatest              // namespace "/<name>/latest" symlink
)

// Node is one name in a view with its attributes. Nodes are immutable
// values; Lookup and ReadDir make new ones.
type Node struct {
	Attr
	level  level
	seed   uint64       // inode of the top of the root a stored node belongs to
	name   string       // levelName, levelLatest: the root name
	parent hash.Hash    // stored entries: the listing they are in
	bad    error        // a damaged root's top: what reading it gives
	root   *rootID      // stored nodes: the root they belong to
	file   store.Listed // regular files: what their listing says of them
}

// rootID names the root a stored node was found in.
type rootID struct {
	name, version string
	top           hash.Hash
}

// stale turns a missing or undecodable object below n into ErrStale when
// n's root is gone (removed, its objects collected): what a mount of that
// root reports then, rather than corruption.
func (v *View) stale(ctx context.Context, n *Node, err error) error {
	if err == nil || n == nil || n.root == nil || !errors.Is(err, ErrCorrupt) {
		return err
	}
	r, rerr := v.s.Root(ctx, n.root.name, n.root.version)
	if errors.Is(rerr, store.ErrNotFound) || rerr == nil && r.Top.Hash != n.root.top {
		return fmt.Errorf("%w: root %s@%s was removed (%w; %v)", ErrStale, n.root.name, n.root.version, fs.ErrNotExist, err)
	}
	return err
}

// Attr is what FileInfo.Sys returns: the attributes a frontend serves.
type Attr struct {
	Ino    uint64 // stable across mounts, unique per path but shared by hard links
	Name   string
	Type   tree.Type
	Mode   uint32 // permission bits with setuid, setgid, sticky
	Nlink  uint32
	UID    uint32
	GID    uint32
	MTime  int64 // ns
	Size   int64
	Rdev   uint64
	Target string // symlinks
	Hash   hash.Hash
	Xattrs []tree.Xattr
}

// FileMode returns the io/fs mode of the node.
func (a *Attr) FileMode() fs.FileMode {
	m := a.Type.FileMode() | fs.FileMode(a.Mode&0777)
	if a.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if a.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if a.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// UnixMode returns st_mode: the file-type bits and the permission bits.
func (a *Attr) UnixMode() uint32 {
	var t uint32
	switch a.Type {
	case tree.TypeFile:
		t = syscall.S_IFREG
	case tree.TypeDir:
		t = syscall.S_IFDIR
	case tree.TypeSymlink:
		t = syscall.S_IFLNK
	case tree.TypeFIFO:
		t = syscall.S_IFIFO
	case tree.TypeSocket:
		t = syscall.S_IFSOCK
	case tree.TypeCharDev:
		t = syscall.S_IFCHR
	case tree.TypeBlockDev:
		t = syscall.S_IFBLK
	}
	return t | a.Mode
}

// Immutable reports whether the node can never change: true for everything
// stored; false for the namespace's own directories and latest links,
// which change as roots are added.
func (n *Node) Immutable() bool { return n.level == levelStored }

// IsDir reports whether the node is a directory.
func (a *Attr) IsDir() bool { return a.Type == tree.TypeDir }

// View is a read-only tree over a store. It is safe for concurrent use.
type View struct {
	s    *store.Objects
	root *Node
	spec *store.Ref // one root's view from OpenSpec: what it selects (see OpenWithin)
}

// RootIno is the inode number of every view's top directory.
const RootIno = 1

// OpenRoot returns the view of one root, or of a directory inside it.
// Version "latest" picks the newest.
func OpenRoot(ctx context.Context, s *store.Objects, ref store.Ref) (*View, error) {
	r, err := s.Root(ctx, ref.Name, ref.Version)
	if err != nil {
		return nil, err
	}
	v := &View{s: s}
	top := rootNode(r, RootIno)
	top.Name = ""
	v.root = top
	if ref.Path != "" {
		n, err := v.Walk(ctx, ref.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		if !n.IsDir() {
			return nil, fmt.Errorf("%s: %w", ref, ErrNotDir)
		}
		n.Ino, n.seed, n.Name = RootIno, RootIno, ""
		v.root = n
	}
	return v, nil
}

// OpenNamespace returns the view of every root as /<name>/<version>/….
// Its top directory's mtime and link count are those of the roots at this
// moment (none if they cannot be read: the view's reads will say why).
func OpenNamespace(s *store.Objects) *View {
	v := &View{s: s, root: &Node{level: levelTop, Attr: Attr{Ino: RootIno, Type: tree.TypeDir, Mode: 0555, Nlink: 2}}}
	if roots, err := s.Roots(context.Background()); err == nil {
		topAttr(v.root, roots)
	}
	return v
}

// OpenName returns the view of one name's versions as /<version>/…, with
// latest.
func OpenName(ctx context.Context, s *store.Objects, name string) (*View, error) {
	if _, err := s.Newest(ctx, name); err != nil {
		return nil, err
	}
	roots, err := s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	v := &View{s: s, root: &Node{level: levelName, name: name, Attr: Attr{Ino: RootIno, Type: tree.TypeDir, Mode: 0555, Nlink: 2}}}
	topAttr(v.root, roots)
	return v, nil
}

// HasXattrs reports whether anything in the view's tree has extended
// attributes, from the totals every listing keeps. A namespace or name
// view can gain roots with xattrs, so for those it is always true.
func (v *View) HasXattrs(ctx context.Context) (bool, error) {
	if v.root.level != levelStored {
		return true, nil
	}
	if len(v.root.Xattrs) > 0 {
		return true, nil
	}
	d, err := v.s.Dir(ctx, v.root.Hash)
	if err != nil {
		return false, err
	}
	return d.Xattrs > 0, nil
}

// Watch calls changed each time the roots under a namespace or name view
// change, looking every interval until ctx ends; for a view of one stored
// tree, which never changes, it returns at once. Frontends whose clients
// cache the namespace's listings (the kernel, through FUSE) tell them then.
func (v *View) Watch(ctx context.Context, every time.Duration, changed func()) {
	if v.root.level == levelStored {
		return
	}
	last, _ := v.rootsPrint(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, err := v.rootsPrint(ctx)
		if err == nil && p != last {
			last = p
			changed()
		}
	}
}

// rootsPrint is a fingerprint of every root: name, version, tree, time.
func (v *View) rootsPrint(ctx context.Context) (uint64, error) {
	roots, err := v.s.Roots(ctx)
	if err != nil {
		return 0, err
	}
	h := fnv.New64a()
	for _, r := range roots {
		fmt.Fprintf(h, "%q %q %s %d\n", r.Name, r.Version, r.Top.Hash, r.Created.UnixNano())
	}
	return h.Sum64(), nil
}

// Objects returns the objects under the view.
func (v *View) Objects() *store.Objects { return v.s }

// Root returns the top directory.
func (v *View) Root() *Node { return v.root }

// childIno derives a child's inode from its parent's and its name (FNV-1a,
// then a SplitMix64 finalizer); 0 and 1 are never produced.
func childIno(parent uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], parent)
	h.Write(b[:])
	h.Write([]byte(name))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	if x < 2 {
		x += 2
	}
	return x
}

// linkIno is the shared inode of a hard-link group within one root.
func linkIno(seed, linkID uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], linkID)
	return childIno(seed^0x6c696e6b, string(b[:]))
}

// rootIno is the inode of root r's top in a name directory: derived from
// its version and its tree, so a version removed and ingested again with
// other content is another inode, and nothing cached under the old one
// (by the kernel, or by a frontend holding nodes) is taken for it.
func rootIno(nameIno uint64, r store.Root) uint64 {
	return childIno(childIno(nameIno, r.Version), string(r.Top.Hash[:]))
}

func rootNode(r store.Root, ino uint64) *Node {
	t := r.Top
	return &Node{seed: ino, bad: r.Damaged, root: &rootID{r.Name, r.Version, t.Hash}, Attr: Attr{Ino: ino, Name: r.Version, Type: tree.TypeDir, Mode: t.Mode, Nlink: t.Nlink,
		UID: t.UID, GID: t.GID, MTime: t.MTime, Size: t.Size, Hash: t.Hash, Xattrs: t.Xattrs}}
}

func (v *View) entryNode(parent *Node, d *tree.Dir, e *tree.Entry) *Node {
	n := &Node{seed: parent.seed, parent: parent.Hash, root: parent.root, Attr: Attr{Ino: childIno(parent.Ino, e.Name), Name: e.Name, Type: e.Type, Mode: e.Mode,
		Nlink: 1, UID: e.UID, GID: e.GID, MTime: e.MTime, Size: e.Size, Rdev: e.Rdev, Target: e.Target, Hash: e.Hash, Xattrs: e.Xattrs}}
	switch e.Type {
	case tree.TypeFile:
		n.Nlink, n.file = e.Nlink, store.ListedEntry(d, e)
		if e.LinkID != 0 {
			n.Ino = linkIno(parent.seed, e.LinkID)
		}
	case tree.TypeDir:
		n.Nlink = e.Nlink
	}
	return n
}

// Lookup returns the child called name of directory dir.
func (v *View) Lookup(ctx context.Context, dir *Node, name string) (*Node, error) {
	switch dir.level {
	case levelTop:
		// A damaged newest version still names its name and its time:
		// only reading that version fails.
		r, err := v.s.Newest(ctx, name)
		if err != nil && r.Damaged == nil {
			return nil, notExist(err)
		}
		return v.nameNode(dir, r), nil
	case levelName:
		if name == store.Latest {
			r, err := v.s.Newest(ctx, dir.name)
			if err != nil && r.Damaged == nil {
				return nil, notExist(err)
			}
			return latestNode(dir, r), nil
		}
		r, err := v.s.Root(ctx, dir.name, name)
		if err != nil {
			return nil, notExist(err)
		}
		return rootNode(r, rootIno(dir.Ino, r)), nil
	}
	d, err := v.listing(ctx, dir)
	if err != nil {
		return nil, err
	}
	e, ok := d.Lookup(name)
	if !ok {
		return nil, fs.ErrNotExist
	}
	return v.entryNode(dir, d, e), nil
}

// listing returns the listing of stored directory dir: what a damaged
// root's top gives, or its objects' errors (stale if its root is gone).
func (v *View) listing(ctx context.Context, dir *Node) (*tree.Dir, error) {
	if !dir.IsDir() {
		return nil, ErrNotDir
	}
	if dir.bad != nil {
		return nil, dir.bad
	}
	d, err := v.s.Dir(ctx, dir.Hash)
	if err != nil {
		return nil, v.stale(ctx, dir, err)
	}
	return d, nil
}

func notExist(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fs.ErrNotExist
	}
	return err
}

func (v *View) nameNode(top *Node, newest store.Root) *Node {
	return &Node{level: levelName, name: newest.Name, Attr: Attr{Ino: childIno(top.Ino, newest.Name), Name: newest.Name,
		Type: tree.TypeDir, Mode: 0555, Nlink: 2, MTime: newest.Created.UnixNano()}}
}

func latestNode(dir *Node, newest store.Root) *Node {
	return &Node{level: levelLatest, name: newest.Name, Attr: Attr{Ino: childIno(dir.Ino, store.Latest), Name: store.Latest, Type: tree.TypeSymlink,
		Mode: 0777, Nlink: 1, MTime: newest.Created.UnixNano(), Target: newest.Version, Size: int64(len(newest.Version))}}
}

// ReadDir lists directory dir in name order.
func (v *View) ReadDir(ctx context.Context, dir *Node) ([]*Node, error) {
	switch dir.level {
	case levelTop, levelName:
		roots, err := v.s.Roots(ctx)
		if err != nil {
			return nil, err
		}
		return v.namespaceDir(ctx, dir, roots)
	}
	d, err := v.listing(ctx, dir)
	if err != nil {
		return nil, err
	}
	out := make([]*Node, len(d.Entries))
	for i := range d.Entries {
		out[i] = v.entryNode(dir, d, &d.Entries[i])
	}
	return out, nil
}

func (v *View) namespaceDir(ctx context.Context, dir *Node, roots []store.Root) ([]*Node, error) {
	var out []*Node
	if dir.level == levelTop {
		for i, r := range roots {
			if i+1 == len(roots) || roots[i+1].Name != r.Name {
				out = append(out, v.nameNode(dir, r)) // roots are sorted oldest first
			}
		}
		return out, nil
	}
	var newest store.Root
	for _, r := range roots {
		if r.Name == dir.name {
			out = append(out, rootNode(r, rootIno(dir.Ino, r)))
			newest = r
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	out = append(out, latestNode(dir, newest))
	sortNodes(out)
	return out, nil
}

// Walk resolves a slash-separated path from the top without following
// symlinks.
func (v *View) Walk(ctx context.Context, path string) (*Node, error) {
	n := v.root
	for _, part := range splitPath(path) {
		var err error
		if n, err = v.Lookup(ctx, n, part); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Readlink returns a symlink's target; a latest link's is the newest
// version now.
func (v *View) Readlink(ctx context.Context, n *Node) (string, error) {
	if n.Type != tree.TypeSymlink {
		return "", fs.ErrInvalid
	}
	if n.level == levelLatest {
		c, err := v.Current(ctx, n)
		if err != nil {
			return "", err
		}
		return c.Target, nil
	}
	return n.Target, nil
}

// Current returns node n as it is now. Stored nodes never change, so that
// is n; the namespace's own nodes (its top, a name, a latest link) change
// with the roots, and frontends that hold nodes (FUSE keeps one per
// inode) ask again with this. A name whose roots are all gone gives
// fs.ErrNotExist.
func (v *View) Current(ctx context.Context, n *Node) (*Node, error) {
	switch n.level {
	case levelTop:
		roots, err := v.s.Roots(ctx)
		if err != nil {
			return nil, err
		}
		c := *n
		c.MTime = 0
		topAttr(&c, roots)
		return &c, nil
	case levelName, levelLatest:
		r, err := v.s.Newest(ctx, n.name)
		if errors.Is(err, store.ErrNotFound) && n.Ino == RootIno {
			return n, nil // a name view's top stays, empty
		}
		if err != nil && r.Damaged == nil {
			return nil, notExist(err)
		}
		c := *n
		c.MTime = r.Created.UnixNano()
		if n.level == levelLatest {
			c.Target, c.Size = r.Version, int64(len(r.Version))
		}
		return &c, nil
	}
	return n, nil
}

// Open returns a reader of a regular file's content.
func (v *View) Open(ctx context.Context, n *Node) (*Reader, error) {
	switch {
	case n.IsDir():
		return nil, ErrIsDir
	case n.Type != tree.TypeFile:
		return nil, fs.ErrInvalid
	}
	// A remote source may fetch the directory's small files in one go.
	v.s.Opening(ctx, n.parent, n.Hash)
	// A chunk list is named by the file's content hash, which only reading
	// every chunk verifies: the listing's size and list hash vouch for it.
	f, err := v.s.ListedFile(ctx, n.file)
	if err != nil {
		return nil, v.stale(ctx, n, err)
	}
	v.prefetchNext(n)
	return &Reader{s: v.s, f: f, stale: func(ctx context.Context, err error) error { return v.stale(ctx, n, err) }}, nil
}

// Cross-file prefetch: opening a file has the small files after it in its
// directory decoded in the background, so that a walk reading a tree in
// listing order (tar, cp -r, rsync) finds them decoded. Listing a
// directory alone prefetches nothing: find and ls -lR read no content.
const (
	prefetchFiles = 16      // files ahead
	prefetchBytes = 1 << 20 // their bytes ahead
)

func (v *View) prefetchNext(n *Node) {
	d, ok := v.s.CachedDir(n.parent)
	if n.parent.IsZero() || !ok {
		return
	}
	i := sort.Search(len(d.Entries), func(i int) bool { return d.Entries[i].Name > n.Name })
	files, bytes := 0, int64(0)
	for ; i < len(d.Entries) && files < prefetchFiles && bytes < prefetchBytes; i++ {
		e := &d.Entries[i]
		if e.Type != tree.TypeFile || e.Size == 0 || e.Size > store.PrefetchFileMax {
			continue
		}
		v.s.PrefetchFile(store.ListedEntry(d, e))
		files, bytes = files+1, bytes+e.Size
	}
}
