//go:build !windows

// Package fuse serves a backend view through the kernel with FUSE
// (github.com/hanwen/go-fuse/v2): read-only at every level, with long
// cache timeouts because stored content never changes. It builds on Linux,
// macOS (macFUSE) and FreeBSD (fusefs); there is no FUSE on Windows.
package fuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// Options configure Mount.
type Options struct {
	// AllowOther lets users other than the mounter see the tree.
	AllowOther bool
	// UID and GID, if set, replace every owner.
	UID, GID *uint32
	// FsName is the mount's source in /proc/mounts, "spraydryfs" if
	// empty. mount -a compares it with fstab's to skip what is mounted.
	FsName string
	// Extra are more -o mount options, passed through.
	Extra []string
	// ReadDirPlus asks the kernel for attributes with directory listings.
	ReadDirPlus bool
	Log         *slog.Logger
	Debug       bool
	// Report receives requests by errno, bytes read, corruption and open
	// readers (one per file read, held until the kernel forgets the
	// inode); nil reports nothing.
	Report report.Reporter
}

// Cache timeouts: stored content never changes; the namespace's own
// directories change when roots are added.
const (
	immutableTimeout = 24 * time.Hour
	namespaceTimeout = time.Second
)

// mount is state shared by every node of one mount.
type mount struct {
	v   *backend.View
	opt Options
	log *slog.Logger
	rep report.Reporter
	// noXattrs: nothing in the view has extended attributes, so xattr
	// calls answer ENOSYS and Linux stops making them (ls -l asks two per
	// entry: ACLs and security labels). See noXattrs.
	noXattrs bool
}

// node is one inode: a backend node under go-fuse's Inode.
type node struct {
	gofs.Inode
	m *mount
	n *backend.Node

	reader atomic.Pointer[backend.Reader] // regular files, opened on first read
}

// Mount mounts v read-only at dir and returns the running server; call
// Wait to serve until unmounted and Unmount to stop.
func Mount(dir string, v *backend.View, opt Options) (*gofuse.Server, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("mount point %s is not a directory", dir)
	}
	if busy, err := isMountPoint(dir); err == nil && busy {
		return nil, fmt.Errorf("mount point %s is busy: something is already mounted there", dir)
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.FsName == "" {
		opt.FsName = "spraydryfs"
	}
	m := &mount{v: v, opt: opt, log: opt.Log, rep: report.Or(opt.Report)}
	m.noXattrs = noXattrs(v, opt.Log)
	long, short := immutableTimeout, namespaceTimeout
	timeout := &long
	if !v.Root().Immutable() {
		timeout = &short
	}
	root := &node{m: m, n: v.Root()}
	fo := &gofs.Options{
		EntryTimeout:    timeout,
		AttrTimeout:     timeout,
		NegativeTimeout: timeout,
		RootStableAttr:  &gofs.StableAttr{Ino: backend.RootIno, Mode: syscall.S_IFDIR},
		MountOptions: gofuse.MountOptions{
			AllowOther:         opt.AllowOther,
			FsName:             opt.FsName,
			Name:               "spraydryfs",
			Options:            append([]string{"ro", "default_permissions"}, opt.Extra...),
			DirectMount:        true,
			DirectMountFlags:   directMountFlags,
			MaxWrite:           1 << 20,
			MaxReadAhead:       1 << 20,
			DisableReadDirPlus: !opt.ReadDirPlus,
			// POSIX ACLs in the kernel: it caches each inode's ACL (or its
			// absence), so the ACL probe ls -l makes of every entry is one
			// request per inode, not one per call (ls -lR warm of the gomod
			// namespace: 17 s before, 6.4-8.2 s after). Permissions stay the
			// kernel's (default_permissions), now honouring stored ACLs.
			EnableAcl: true,
			Debug:     opt.Debug,
			// go-fuse logs through package log, which slog's default
			// handler filters below warnings: give --debug its own logger.
			Logger: log.New(os.Stderr, "fuse: ", log.Lmicroseconds),
		},
	}
	raw := gofs.NewNodeFS(root, fo)
	if noOpendirCap != 0 {
		raw = &noOpendir{RawFileSystem: raw}
		fo.MountOptions.ExtraCapabilities |= noOpendirCap
	}
	server, err := gofuse.NewServer(raw, dir, &fo.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, err
	}
	if noOpendirCap != 0 && !v.Root().Immutable() {
		ctx, stop := context.WithCancel(context.Background())
		go func() { server.Wait(); stop() }()
		go v.Watch(ctx, rootsWatch, func() { invalidate(root.EmbeddedInode()) })
	}
	return server, nil
}

// rootsWatch is how often a namespace or name mount looks for changed
// roots, to drop the listings the kernel keeps of its own directories.
const rootsWatch = namespaceTimeout / 4

// invalidate drops what the kernel keeps of namespace node in and of the
// namespace nodes below it (a name's directory, its latest link): their
// attributes and cached listings. Stored trees below never change.
func invalidate(in *gofs.Inode) {
	in.NotifyContent(0, 0)
	for _, c := range in.Children() {
		if n, ok := c.Operations().(*node); ok && !n.n.Immutable() {
			invalidate(c)
		}
	}
}

// noOpendir serves a view without OPENDIR and RELEASEDIR, the two round
// trips a warm walk still made per directory: OPENDIR answers ENOSYS,
// after which Linux opens directories without a message and keeps their
// listings cached (FOPEN_CACHE_DIR and FOPEN_KEEP_CACHE are its default
// then). Stored directories never change; the namespace's own are
// dropped from the kernel's cache whenever the roots change (Watch,
// invalidate). A READDIR without a handle opens one for that call, at the
// kernel's offset. A kernel without the capability (before Linux 5.1)
// would fail every directory open with that ENOSYS: it gets OPENDIR
// answered.
type noOpendir struct {
	gofuse.RawFileSystem
	on bool // the kernel opens directories without a message; set by Init
}

// Init implements gofuse.RawFileSystem; the server calls it after INIT,
// before any other request.
func (f *noOpendir) Init(s *gofuse.Server) {
	f.on = s.KernelSettings().Flags64()&noOpendirCap != 0
	f.RawFileSystem.Init(s)
}

// OpenDir implements gofuse.RawFileSystem.
func (f *noOpendir) OpenDir(cancel <-chan struct{}, in *gofuse.OpenIn, out *gofuse.OpenOut) gofuse.Status {
	if !f.on {
		return f.RawFileSystem.OpenDir(cancel, in, out)
	}
	return gofuse.ENOSYS
}

// ReadDir implements gofuse.RawFileSystem.
func (f *noOpendir) ReadDir(cancel <-chan struct{}, in *gofuse.ReadIn, out *gofuse.DirEntryList) gofuse.Status {
	return f.withHandle(cancel, in, func() gofuse.Status { return f.RawFileSystem.ReadDir(cancel, in, out) })
}

// ReadDirPlus implements gofuse.RawFileSystem.
func (f *noOpendir) ReadDirPlus(cancel <-chan struct{}, in *gofuse.ReadIn, out *gofuse.DirEntryList) gofuse.Status {
	return f.withHandle(cancel, in, func() gofuse.Status { return f.RawFileSystem.ReadDirPlus(cancel, in, out) })
}

// withHandle runs read with a directory handle in in.Fh, opened for it
// when the kernel sent none.
func (f *noOpendir) withHandle(cancel <-chan struct{}, in *gofuse.ReadIn, read func() gofuse.Status) gofuse.Status {
	if in.Fh != 0 {
		return read()
	}
	var out gofuse.OpenOut
	if st := f.RawFileSystem.OpenDir(cancel, &gofuse.OpenIn{InHeader: in.InHeader}, &out); !st.Ok() {
		return st
	}
	in.Fh = out.Fh
	defer f.RawFileSystem.ReleaseDir(&gofuse.ReleaseIn{InHeader: in.InHeader, Fh: out.Fh})
	return read()
}

// noXattrs decides whether xattr calls may answer ENOSYS, which Linux
// remembers for the whole mount: only for a view of one stored tree (it
// never changes) whose listing totals say nothing in it has xattrs. A
// namespace or name view can gain roots with xattrs, so its nodes answer
// every call from their own attributes, without store access (ENODATA
// when absent). A tree whose top listing cannot be read is mounted all the
// same, answering EIO where it is read, and xattr calls node by node.
func noXattrs(v *backend.View, log *slog.Logger) bool {
	has, err := v.HasXattrs(context.Background())
	if err != nil {
		log.Error("fuse: the top listing cannot be read; serving the tree anyway", "err", err)
		return false
	}
	return !has
}

// isMountPoint reports whether dir is the root of a mounted file system.
func isMountPoint(dir string) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		return false, err
	}
	if err := syscall.Stat(dir+"/..", &b); err != nil {
		return false, err
	}
	return a.Dev != b.Dev || a.Ino == b.Ino, nil
}

// errno maps a backend error to an errno, logging what the kernel's caller
// will only see as EIO.
func (m *mount) errno(op string, n *backend.Node, err error) syscall.Errno {
	e := backend.Errno(err)
	if e == syscall.EIO {
		m.log.Error("fuse: "+op+" failed", "name", n.Name, "ino", n.Ino, "err", err)
	}
	report.Failed(m.rep, err)
	return e
}

// done reports an operation that ended with *e.
func (m *mount) done(e *syscall.Errno) { m.rep.Request(report.Errno(*e)) }

func (m *mount) timeout(n *backend.Node) time.Duration {
	if n.Immutable() {
		return immutableTimeout
	}
	return namespaceTimeout
}

// fill sets the attributes of n in out.
func (m *mount) fill(n *backend.Node, out *gofuse.Attr) {
	out.Ino = n.Ino
	out.Mode = n.UnixMode()
	out.Nlink = n.Nlink
	out.Uid, out.Gid = n.UID, n.GID
	if m.opt.UID != nil {
		out.Uid = *m.opt.UID
	}
	if m.opt.GID != nil {
		out.Gid = *m.opt.GID
	}
	out.Size = uint64(n.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 64 << 10
	sec, nsec := uint64(n.MTime/1e9), uint32(n.MTime%1e9)
	if n.MTime < 0 {
		sec, nsec = 0, 0
	}
	out.Mtime, out.Mtimensec = sec, nsec
	out.Ctime, out.Ctimensec = sec, nsec
	out.Atime, out.Atimensec = sec, nsec
	out.Rdev = uint32(n.Rdev)
}

var (
	_ gofs.NodeLookuper       = (*node)(nil)
	_ gofs.NodeGetattrer      = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
	_ gofs.FileReleasedirer   = (*dirHandle)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeReader         = (*node)(nil)
	_ gofs.NodeReadlinker     = (*node)(nil)
	_ gofs.NodeGetxattrer     = (*node)(nil)
	_ gofs.NodeListxattrer    = (*node)(nil)
	_ gofs.NodeStatfser       = (*node)(nil)
	_ gofs.NodeFlusher        = (*node)(nil)
)

// Lookup implements gofs.NodeLookuper.
func (d *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (_ *gofs.Inode, e syscall.Errno) {
	defer d.m.done(&e)
	c, err := d.m.v.Lookup(ctx, d.n, name)
	if err != nil {
		return nil, d.m.errno("lookup", d.n, err)
	}
	d.m.fill(c, &out.Attr)
	out.SetEntryTimeout(d.m.timeout(d.n))
	out.SetAttrTimeout(d.m.timeout(c))
	child := &node{m: d.m, n: c}
	return d.NewInode(ctx, child, gofs.StableAttr{Mode: c.UnixMode() & syscall.S_IFMT, Ino: c.Ino}), 0
}

// Getattr implements gofs.NodeGetattrer. go-fuse keeps the node of an
// inode's first lookup, so the namespace's own nodes, which change with
// the roots, are asked for again.
func (n *node) Getattr(ctx context.Context, _ gofs.FileHandle, out *gofuse.AttrOut) (e syscall.Errno) {
	defer n.m.done(&e)
	c, err := n.m.v.Current(ctx, n.n)
	if err != nil {
		return n.m.errno("getattr", n.n, err)
	}
	n.m.fill(c, &out.Attr)
	out.SetTimeout(n.m.timeout(c))
	return 0
}

// OpendirHandle implements gofs.NodeOpendirHandler: the listing is read
// once per open, and for stored directories Linux may keep it cached
// (FOPEN_CACHE_DIR), since it never changes.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, e syscall.Errno) {
	defer n.m.done(&e)
	kids, err := n.m.v.ReadDir(ctx, n.n)
	if err != nil {
		return nil, 0, n.m.errno("readdir", n.n, err)
	}
	d := &dirHandle{entries: make([]gofuse.DirEntry, len(kids))}
	for i, k := range kids {
		// Off is the cookie of the entry after this one.
		d.entries[i] = gofuse.DirEntry{Name: k.Name, Ino: k.Ino, Mode: k.UnixMode() & syscall.S_IFMT, Off: uint64(i + 1)}
	}
	var fl uint32
	if n.n.Immutable() {
		fl = gofuse.FOPEN_CACHE_DIR | gofuse.FOPEN_KEEP_CACHE
	}
	return d, fl, 0
}

// dirHandle is an open directory: its entries and the read position.
// go-fuse serializes calls on one handle.
type dirHandle struct {
	entries []gofuse.DirEntry
	pos     int
}

// Readdirent implements gofs.FileReaddirenter.
func (d *dirHandle) Readdirent(context.Context) (*gofuse.DirEntry, syscall.Errno) {
	if d.pos >= len(d.entries) {
		return nil, 0
	}
	d.pos++
	return &d.entries[d.pos-1], 0
}

// Seekdir implements gofs.FileSeekdirer: a cookie is an entry index.
func (d *dirHandle) Seekdir(_ context.Context, off uint64) syscall.Errno {
	if off > uint64(len(d.entries)) {
		return syscall.EINVAL
	}
	d.pos = int(off)
	return 0
}

// Releasedir implements gofs.FileReleasedirer.
func (d *dirHandle) Releasedir(context.Context, uint32) {}

// Open implements gofs.NodeOpener. Opening a regular file for reading
// answers ENOSYS: Linux then stops sending OPEN, FLUSH and RELEASE for the
// whole mount (no-open support), keeps file pages cached across opens
// (FOPEN_KEEP_CACHE is its default then), and reads arrive without a
// handle. Content never changes, so there is nothing to open: measured on
// the gomod corpus, the three round trips per file were most of a warm
// read of every file.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, 0, syscall.ENOSYS
}

// Flush implements gofs.NodeFlusher: ENOSYS tells Linux never to send
// FLUSH again (there is nothing to flush).
func (n *node) Flush(context.Context, gofs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// Read implements gofs.NodeReader through one reader per inode, shared by
// every process reading it, so sequential reads are seen as such and read
// ahead.
func (n *node) Read(ctx context.Context, _ gofs.FileHandle, dest []byte, off int64) (_ gofuse.ReadResult, e syscall.Errno) {
	defer n.m.done(&e)
	r := n.reader.Load()
	if r == nil {
		var err error
		if r, err = n.m.v.Open(ctx, n.n); err != nil {
			return nil, n.m.errno("open", n.n, err)
		}
		if n.reader.CompareAndSwap(nil, r) {
			n.m.rep.Handles(1)
			runtime.AddCleanup(n, func(rep report.Reporter) { rep.Handles(-1) }, n.m.rep)
		} else {
			r = n.reader.Load()
		}
	}
	got, err := r.ReadAtContext(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, n.m.errno("read", n.n, err)
	}
	n.m.rep.Served(int64(got))
	return gofuse.ReadResultData(dest[:got]), 0
}

// Readlink implements gofs.NodeReadlinker.
func (n *node) Readlink(ctx context.Context) (_ []byte, e syscall.Errno) {
	defer n.m.done(&e)
	t, err := n.m.v.Readlink(ctx, n.n)
	if err != nil {
		return nil, n.m.errno("readlink", n.n, err)
	}
	return []byte(t), 0
}

// Getxattr implements gofs.NodeGetxattrer from the node's own attributes:
// no store access, so the kernel's probes for security labels and ACLs
// on every entry stay cheap. A tree without any xattrs answers ENOSYS, so
// Linux stops asking; namespace and name views never do, so roots ingested
// later show their xattrs at once.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (_ uint32, e syscall.Errno) {
	defer n.m.done(&e)
	if n.m.noXattrs {
		return 0, syscall.ENOSYS
	}
	for _, x := range n.n.Xattrs {
		if x.Name == attr {
			if len(dest) == 0 {
				return uint32(len(x.Value)), 0
			}
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, errNoXattr
}

// Listxattr implements gofs.NodeListxattrer.
func (n *node) Listxattr(ctx context.Context, dest []byte) (_ uint32, e syscall.Errno) {
	defer n.m.done(&e)
	if n.m.noXattrs {
		return 0, syscall.ENOSYS
	}
	size := 0
	for _, x := range n.n.Xattrs {
		size += len(x.Name) + 1
	}
	if len(dest) == 0 {
		return uint32(size), 0
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, x := range n.n.Xattrs {
		off += copy(dest[off:], x.Name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

// Statfs implements gofs.NodeStatfser.
func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) (e syscall.Errno) {
	defer n.m.done(&e)
	st, err := n.m.v.Statfs(ctx)
	if err != nil {
		return n.m.errno("statfs", n.n, err)
	}
	*out = gofuse.StatfsOut{Bsize: st.Bsize, Frsize: st.Bsize, Blocks: st.Blocks, Bfree: st.Free, Bavail: st.Avail,
		Files: st.Files, Ffree: st.FreeFiles, NameLen: st.NameLen}
	return 0
}
