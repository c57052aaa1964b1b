//go:build linux

// Package ninepfuse is a test bridge: a FUSE file system
// (github.com/hanwen/go-fuse/v2) that forwards every call to a 9P2000.L
// server through the p9 Go client (github.com/hugelgupf/p9), so that
// suites written against a local directory (integration/conformance) can
// check a 9P server on a host whose kernel has no 9p module.
//
// The bridge keeps nothing of its own: attributes, listings (with the
// server's cookies as offsets and its DT_* dirent types), contents, link
// targets, errors and inode numbers (QID paths) are the server's. Each
// FUSE inode holds a walked, never opened fid; opens and creates use a
// clone of it, since a 9P fid is opened once and p9's server refuses
// creating, unlinking and renaming calls on an opened directory fid. The
// mount is not read-only for the kernel, so writes (open for writing,
// setattr, create, mkdir, mknod, symlink, link, unlink, rmdir, rename,
// setxattr, removexattr) reach the server and its own answer (EROFS for
// a read-only server) is what callers see.
//
// Two kinds of call do not go through p9.Client, which cannot express
// them:
//
//   - extended attributes: p9 v0.4.1's client answers ENOSYS to GetXattr,
//     ListXattrs, SetXattr and RemoveXattr without sending anything, so
//     the bridge sends Txattrwalk, Txattrcreate, Tread, Twrite and Tclunk
//     itself, as Linux's v9fs does, on a second connection (xattr.go);
//   - rename flags (RENAME_NOREPLACE, RENAME_EXCHANGE): 9P2000.L has no
//     field for them; the bridge answers EINVAL, as v9fs does.
//
// Locks, fsync and fallocate are not forwarded (go-fuse's defaults apply).
//
// It is meant for tests only: it trusts the server and is not tuned.
package ninepfuse

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// Mount is a mounted bridge.
type Mount struct {
	srv    *gofuse.Server
	client *p9.Client
	x      *xattrConn
	once   sync.Once
	err    error
}

// cacheTimeout is how long the kernel may keep entries and attributes.
// The trees tests serve do not change while mounted.
const cacheTimeout = time.Minute

// New mounts at dir the tree the server behind dial serves for attach
// name aname. dial is called twice: one connection carries p9.Client, the
// other the extended-attribute calls. Unmount undoes it.
func New(dir string, dial func() (net.Conn, error), aname string) (*Mount, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	client, err := p9.NewClient(c, p9.WithMessageSize(1<<20))
	if err != nil {
		c.Close()
		return nil, err
	}
	m := &Mount{client: client}
	fail := func(err error) (*Mount, error) {
		m.close()
		return nil, err
	}
	xc, err := dial()
	if err != nil {
		return fail(err)
	}
	if m.x, err = dialXattr(xc, aname); err != nil {
		xc.Close()
		return fail(err)
	}
	rootFile, err := client.Attach(aname)
	if err != nil {
		return fail(err)
	}
	qid, _, _, err := rootFile.GetAttr(p9.AttrMaskAll)
	if err != nil {
		rootFile.Close()
		return fail(err)
	}
	root := &node{m: m, f: rootFile}
	timeout := cacheTimeout
	m.srv, err = gofs.Mount(dir, root, &gofs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		RootStableAttr:  &gofs.StableAttr{Ino: qid.Path, Mode: syscall.S_IFDIR},
		MountOptions: gofuse.MountOptions{
			// Not "ro": writes must reach the 9P server. No
			// default_permissions: the server decides.
			FsName:             "ninepfuse",
			Name:               "ninepfuse",
			DirectMount:        true,
			DisableReadDirPlus: true,
			MaxReadAhead:       1 << 20,
		},
	})
	if err != nil {
		return fail(err)
	}
	return m, nil
}

// Unmount unmounts, waits for the FUSE server to stop and closes both
// connections.
func (m *Mount) Unmount() error {
	err := m.srv.Unmount()
	m.srv.Wait()
	return errors.Join(err, m.close())
}

func (m *Mount) close() error {
	m.once.Do(func() {
		m.err = m.client.Close()
		if m.x != nil {
			m.err = errors.Join(m.err, m.x.close())
		}
	})
	return m.err
}

// errno is the errno a p9 error stands for: the server's for an Rlerror,
// EIO for a broken connection.
func errno(err error) syscall.Errno {
	var e linux.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return syscall.Errno(e)
	}
	return syscall.EIO
}

// node is one inode: a fid walked to it, and the names that lead to it
// from the attach point (for the xattr connection). The fid is not
// clunked when the kernel forgets the inode (go-fuse's OnForget can race
// with a lookup reviving it): p9's client clunks it when the node is
// garbage, and closing the connection drops the rest.
type node struct {
	gofs.Inode
	m    *Mount
	f    p9.File
	path []string
}

var (
	_ gofs.NodeLookuper       = (*node)(nil)
	_ gofs.NodeGetattrer      = (*node)(nil)
	_ gofs.NodeSetattrer      = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeReadlinker     = (*node)(nil)
	_ gofs.NodeStatfser       = (*node)(nil)
	_ gofs.NodeGetxattrer     = (*node)(nil)
	_ gofs.NodeListxattrer    = (*node)(nil)
	_ gofs.NodeSetxattrer     = (*node)(nil)
	_ gofs.NodeRemovexattrer  = (*node)(nil)
	_ gofs.NodeCreater        = (*node)(nil)
	_ gofs.NodeMkdirer        = (*node)(nil)
	_ gofs.NodeMknoder        = (*node)(nil)
	_ gofs.NodeSymlinker      = (*node)(nil)
	_ gofs.NodeLinker         = (*node)(nil)
	_ gofs.NodeUnlinker       = (*node)(nil)
	_ gofs.NodeRmdirer        = (*node)(nil)
	_ gofs.NodeRenamer        = (*node)(nil)
)

// fill copies a 9P getattr reply into a FUSE attribute.
func fill(out *gofuse.Attr, qid p9.QID, a p9.Attr) {
	out.Ino = qid.Path
	out.Mode = uint32(a.Mode)
	out.Nlink = uint32(a.NLink)
	out.Uid, out.Gid = uint32(a.UID), uint32(a.GID)
	out.Rdev = uint32(a.RDev)
	out.Size, out.Blocks, out.Blksize = a.Size, a.Blocks, uint32(a.BlockSize)
	out.Atime, out.Atimensec = a.ATimeSeconds, uint32(a.ATimeNanoSeconds)
	out.Mtime, out.Mtimensec = a.MTimeSeconds, uint32(a.MTimeNanoSeconds)
	out.Ctime, out.Ctimensec = a.CTimeSeconds, uint32(a.CTimeNanoSeconds)
}

// Lookup implements gofs.NodeLookuper with one Twalkgetattr.
func (n *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	qids, f, _, a, err := n.f.WalkGetAttr([]string{name})
	if err != nil {
		return nil, errno(err)
	}
	fill(&out.Attr, qids[len(qids)-1], a)
	path := append(append(make([]string, 0, len(n.path)+1), n.path...), name)
	child := &node{m: n.m, f: f, path: path}
	ino := n.NewInode(ctx, child, gofs.StableAttr{Mode: uint32(a.Mode.FileType()), Ino: out.Ino})
	if ino.Operations() != gofs.InodeEmbedder(child) {
		f.Close() // a known inode (another name of a hard link): it has its fid
	}
	return ino, 0
}

// Getattr implements gofs.NodeGetattrer.
func (n *node) Getattr(ctx context.Context, _ gofs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	qid, _, a, err := n.f.GetAttr(p9.AttrMaskAll)
	if err != nil {
		return errno(err)
	}
	fill(&out.Attr, qid, a)
	return 0
}

// Setattr implements gofs.NodeSetattrer with Tsetattr (chmod, chown,
// truncate, utimes).
func (n *node) Setattr(ctx context.Context, _ gofs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	v := in.Valid
	mask := p9.SetAttrMask{
		Permissions:        v&gofuse.FATTR_MODE != 0,
		UID:                v&gofuse.FATTR_UID != 0,
		GID:                v&gofuse.FATTR_GID != 0,
		Size:               v&gofuse.FATTR_SIZE != 0,
		ATime:              v&(gofuse.FATTR_ATIME|gofuse.FATTR_ATIME_NOW) != 0,
		MTime:              v&(gofuse.FATTR_MTIME|gofuse.FATTR_MTIME_NOW) != 0,
		CTime:              v&gofuse.FATTR_CTIME != 0,
		ATimeNotSystemTime: v&gofuse.FATTR_ATIME != 0 && v&gofuse.FATTR_ATIME_NOW == 0,
		MTimeNotSystemTime: v&gofuse.FATTR_MTIME != 0 && v&gofuse.FATTR_MTIME_NOW == 0,
	}
	attr := p9.SetAttr{
		Permissions: p9.FileMode(in.Mode), UID: p9.UID(in.Uid), GID: p9.GID(in.Gid), Size: in.Size,
		ATimeSeconds: in.Atime, ATimeNanoSeconds: uint64(in.Atimensec),
		MTimeSeconds: in.Mtime, MTimeNanoSeconds: uint64(in.Mtimensec),
	}
	if err := n.f.SetAttr(mask, attr); err != nil {
		return errno(err)
	}
	return n.Getattr(ctx, nil, out)
}

// clone walks a new fid to n, for an open or a create.
func (n *node) clone() (p9.File, syscall.Errno) {
	_, f, err := n.f.Walk(nil)
	return f, errno(err)
}

// openFlags are the open(2) flags Tlopen carries: the access mode and
// O_TRUNC, O_APPEND (9P2000.L uses Linux's values).
func openFlags(flags uint32) p9.OpenFlags {
	return p9.OpenFlags(flags & (syscall.O_ACCMODE | syscall.O_TRUNC | syscall.O_APPEND))
}

// Open implements gofs.NodeOpener with Tlopen on a clone.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f, e := n.clone()
	if e != 0 {
		return nil, 0, e
	}
	if _, _, err := f.Open(openFlags(flags)); err != nil {
		f.Close()
		return nil, 0, errno(err)
	}
	return &handle{f: f}, 0, 0
}

// handle is an open file: an opened fid.
type handle struct{ f p9.File }

var (
	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileWriter   = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
)

// Read implements gofs.FileReader with Tread.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	got, err := h.f.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, errno(err)
	}
	return gofuse.ReadResultData(dest[:got]), 0
}

// Write implements gofs.FileWriter with Twrite.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	got, err := h.f.WriteAt(data, off)
	return uint32(got), errno(err)
}

// Release implements gofs.FileReleaser: Tclunk.
func (h *handle) Release(context.Context) syscall.Errno { return errno(h.f.Close()) }

// OpendirHandle implements gofs.NodeOpendirHandler with Tlopen on a
// clone; entries are read as the kernel asks for them.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f, e := n.clone()
	if e != 0 {
		return nil, 0, e
	}
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		f.Close()
		return nil, 0, errno(err)
	}
	return &dirHandle{f: f}, 0, 0
}

// dirHandle is an open directory: Treaddir pages, resumed at the server's
// cookies, which are also the FUSE offsets. go-fuse serialises calls on
// one handle.
type dirHandle struct {
	f    p9.File
	page p9.Dirents // entries fetched, not yet returned
	next uint64     // cookie to read from when page is empty
	eof  bool
}

var (
	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
)

// Readdirent implements gofs.FileReaddirenter. The server sends DT_*
// values in the dirent type byte, as Linux's v9fs reads it (p9 calls it
// a QIDType); S_IFMT is DT_* << 12.
func (d *dirHandle) Readdirent(ctx context.Context) (*gofuse.DirEntry, syscall.Errno) {
	if len(d.page) == 0 && !d.eof {
		page, err := d.f.Readdir(d.next, 64<<10)
		if err != nil {
			return nil, errno(err)
		}
		d.page, d.eof = page, len(page) == 0
	}
	if len(d.page) == 0 {
		return nil, 0
	}
	e := d.page[0]
	d.page, d.next = d.page[1:], e.Offset
	return &gofuse.DirEntry{Name: e.Name, Ino: e.QID.Path, Mode: uint32(e.Type) << 12, Off: e.Offset}, 0
}

// Seekdir implements gofs.FileSeekdirer: off is a server cookie (0 the
// start).
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.page, d.next, d.eof = nil, off, false
	return 0
}

// Releasedir implements gofs.FileReleasedirer: Tclunk.
func (d *dirHandle) Releasedir(context.Context, uint32) { d.f.Close() }

// Readlink implements gofs.NodeReadlinker with Treadlink.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.f.Readlink()
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}

// Statfs implements gofs.NodeStatfser with Tstatfs.
func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) syscall.Errno {
	st, err := n.f.StatFS()
	if err != nil {
		return errno(err)
	}
	*out = gofuse.StatfsOut{Blocks: st.Blocks, Bfree: st.BlocksFree, Bavail: st.BlocksAvailable, Files: st.Files,
		Ffree: st.FilesFree, Bsize: st.BlockSize, Frsize: st.BlockSize, NameLen: st.NameLength}
	return 0
}

// caller is the uid and gid of the process making the call, which 9P's
// creating calls carry.
func caller(ctx context.Context) (p9.UID, p9.GID) {
	if c, ok := gofuse.FromContext(ctx); ok {
		return p9.UID(c.Uid), p9.GID(c.Gid)
	}
	return p9.NoUID, p9.NoGID
}

// created answers a creating call that the server accepted: the new
// entry, looked up as any other.
func (n *node) created(ctx context.Context, err error, name string, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if err != nil {
		return nil, errno(err)
	}
	return n.Lookup(ctx, name, out)
}

// Create implements gofs.NodeCreater with Tlcreate on a clone, which
// then is the new file's open fid.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *gofuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f, e := n.clone()
	if e != 0 {
		return nil, nil, 0, e
	}
	uid, gid := caller(ctx)
	if _, _, _, err := f.Create(name, openFlags(flags), p9.FileMode(mode&0o7777), uid, gid); err != nil {
		f.Close()
		return nil, nil, 0, errno(err)
	}
	ino, e := n.created(ctx, nil, name, out)
	if e != 0 {
		f.Close()
		return nil, nil, 0, e
	}
	return ino, &handle{f: f}, 0, 0
}

// Mkdir implements gofs.NodeMkdirer with Tmkdir.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	uid, gid := caller(ctx)
	_, err := n.f.Mkdir(name, p9.FileMode(mode), uid, gid)
	return n.created(ctx, err, name, out)
}

// Mknod implements gofs.NodeMknoder with Tmknod.
func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	uid, gid := caller(ctx)
	_, err := n.f.Mknod(name, p9.FileMode(mode), unix.Major(uint64(dev)), unix.Minor(uint64(dev)), uid, gid)
	return n.created(ctx, err, name, out)
}

// Symlink implements gofs.NodeSymlinker with Tsymlink.
func (n *node) Symlink(ctx context.Context, target, name string, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	uid, gid := caller(ctx)
	_, err := n.f.Symlink(target, name, uid, gid)
	return n.created(ctx, err, name, out)
}

// Link implements gofs.NodeLinker with Tlink.
func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	err := n.f.Link(target.(*node).f, name)
	return n.created(ctx, err, name, out)
}

// Unlink implements gofs.NodeUnlinker with Tunlinkat.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return errno(n.f.UnlinkAt(name, 0))
}

// Rmdir implements gofs.NodeRmdirer with Tunlinkat(AT_REMOVEDIR).
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return errno(n.f.UnlinkAt(name, unix.AT_REMOVEDIR))
}

// Rename implements gofs.NodeRenamer with Trenameat; 9P has no rename
// flags.
func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags != 0 {
		return syscall.EINVAL
	}
	return errno(n.f.RenameAt(name, newParent.(*node).f, newName))
}

// Getxattr implements gofs.NodeGetxattrer on the xattr connection.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	v, err := n.m.x.get(n.path, attr)
	return sized(dest, v, err)
}

// Listxattr implements gofs.NodeListxattrer on the xattr connection: the
// value of the empty name is the NUL-terminated names.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	v, err := n.m.x.get(n.path, "")
	return sized(dest, v, err)
}

// sized answers a getxattr or listxattr of a value: its size when dest is
// empty, ERANGE when too small.
func sized(dest, v []byte, err error) (uint32, syscall.Errno) {
	switch {
	case err != nil:
		return 0, errno(err)
	case len(dest) == 0:
		return uint32(len(v)), 0
	case len(dest) < len(v):
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr implements gofs.NodeSetxattrer on the xattr connection.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return errno(n.m.x.set(n.path, attr, data, flags))
}

// Removexattr implements gofs.NodeRemovexattrer on the xattr connection,
// as v9fs does: a set of no value with XATTR_REPLACE.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return errno(n.m.x.set(n.path, attr, nil, unix.XATTR_REPLACE))
}
