package ninep

import (
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hugelgupf/p9/fsimpl/templatefs"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// file is one fid's node. ReadOnlyFile answers EROFS for SetAttr, Remove,
// Rename, WriteAt and FSync; the directory and xattr calls it would
// answer otherwise are overridden below (readonly.go).
type file struct {
	templatefs.ReadOnlyFile

	srv    *Server
	v      *backend.View
	n      *backend.Node
	attach bool // the attach point: only the aname step walks from it
	fids   *fidCount
	refs   atomic.Int32 // Close calls to come: 1, plus 1 per xattr fid made of it

	mu   sync.Mutex
	r    *backend.Reader // open regular file
	list []*backend.Node // open directory: its entries, read on first Readdir
	read bool
	kept bool // list is kept between reads, counted in fids.listed
}

var _ p9.File = (*file)(nil)

// qid returns n's QID: its type and its stable inode number.
func qid(n *backend.Node) p9.QID {
	return p9.QID{Type: p9.FileMode(n.UnixMode()).QIDType(), Path: n.Ino}
}

// attrMask is what getattr fills in.
var attrMask = p9.AttrMask{Mode: true, NLink: true, UID: true, GID: true, RDev: true, ATime: true,
	MTime: true, CTime: true, INo: true, Size: true, Blocks: true}

// attr returns n's attributes: cheap, from the node alone, as v9fs asks
// for them once per directory entry.
func attr(n *backend.Node) p9.Attr {
	sec, nsec := uint64(n.MTime/1e9), uint64(n.MTime%1e9)
	if n.MTime < 0 {
		sec, nsec = 0, 0
	}
	size := uint64(n.Size)
	return p9.Attr{
		Mode: p9.FileMode(n.UnixMode()), UID: p9.UID(n.UID), GID: p9.GID(n.GID), NLink: p9.NLink(n.Nlink),
		RDev: p9.Dev(n.Rdev), Size: size, BlockSize: 64 << 10, Blocks: (size + 511) / 512,
		ATimeSeconds: sec, ATimeNanoSeconds: nsec, MTimeSeconds: sec, MTimeNanoSeconds: nsec,
		CTimeSeconds: sec, CTimeNanoSeconds: nsec,
	}
}

// direntType is the d_type byte of a directory entry. p9 names the field a
// QIDType, but Linux reads DT_* values from it; QID type bits would show
// symlinks as character devices.
func direntType(t tree.Type) p9.QIDType {
	switch t {
	case tree.TypeDir:
		return 4 // DT_DIR
	case tree.TypeFile:
		return 8 // DT_REG
	case tree.TypeSymlink:
		return 10 // DT_LNK
	case tree.TypeFIFO:
		return 1 // DT_FIFO
	case tree.TypeCharDev:
		return 2 // DT_CHR
	case tree.TypeBlockDev:
		return 6 // DT_BLK
	case tree.TypeSocket:
		return 12 // DT_SOCK
	}
	return 0 // DT_UNKNOWN
}

// newFile makes the file of a new fid, taking a slot of the connection's
// fids (EMFILE when none is left).
func newFile(srv *Server, fids *fidCount, v *backend.View, n *backend.Node, attach bool) (*file, error) {
	if err := fids.take(); err != nil {
		return nil, err
	}
	f := &file{srv: srv, v: v, n: n, attach: attach, fids: fids}
	f.refs.Store(1)
	return f, nil
}

// walk resolves names from f, one level at a time.
func (f *file) walk(names []string) ([]p9.QID, *file, error) {
	if len(names) == 0 {
		if f.attach {
			return nil, nil, linux.EINVAL
		}
		c, err := newFile(f.srv, f.fids, f.v, f.n, false)
		return nil, c, err
	}
	v, n := f.v, f.n
	qids := make([]p9.QID, 0, len(names))
	for i, name := range names {
		if i == 0 && f.attach {
			// The wire shim turned the aname into this one step.
			if !strings.HasPrefix(name, anameMark) {
				return nil, nil, linux.EINVAL
			}
			var err error
			if v, err = f.srv.openAname(strings.ReplaceAll(name[len(anameMark):], anameMark, "/")); err != nil {
				return nil, nil, err
			}
			n = v.Root()
		} else {
			var err error
			if n, err = v.Lookup(f.srv.ctx, n, name); err != nil {
				return nil, nil, f.srv.errno("walk", name, err)
			}
		}
		qids = append(qids, qid(n))
	}
	c, err := newFile(f.srv, f.fids, v, n, false)
	if err != nil {
		return nil, nil, err
	}
	return qids, c, nil
}

// Walk implements p9.File.Walk.
func (f *file) Walk(names []string) ([]p9.QID, p9.File, error) {
	qids, c, err := f.walk(names)
	if err != nil {
		return nil, nil, err
	}
	return qids, c, nil
}

// WalkGetAttr implements p9.File.WalkGetAttr: a walk and the attributes
// of where it ends in one call.
func (f *file) WalkGetAttr(names []string) ([]p9.QID, p9.File, p9.AttrMask, p9.Attr, error) {
	qids, c, err := f.walk(names)
	if err != nil {
		return nil, nil, p9.AttrMask{}, p9.Attr{}, err
	}
	return qids, c, attrMask, attr(c.n), nil
}

// GetAttr implements p9.File.GetAttr.
func (f *file) GetAttr(p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	return qid(f.n), attrMask, attr(f.n), nil
}

// StatFS implements p9.File.StatFS.
func (f *file) StatFS() (p9.FSStat, error) {
	st, err := f.v.Statfs(f.srv.ctx)
	if err != nil {
		return p9.FSStat{}, f.srv.errno("statfs", f.n.Name, err)
	}
	return p9.FSStat{Type: 0x01021997, BlockSize: st.Bsize, Blocks: st.Blocks, BlocksFree: st.Free, BlocksAvailable: st.Avail, // V9FS_MAGIC
		Files: st.Files, FilesFree: st.FreeFiles, NameLength: st.NameLen}, nil
}

// Close implements p9.File.Close: called once for the fid that made f and
// once per xattr fid made of it, each giving back its slot.
func (f *file) Close() error {
	if r := f.refs.Add(-1); r >= 0 {
		f.fids.release()
		if r == 0 {
			f.mu.Lock()
			f.dropList()
			f.mu.Unlock()
		}
	}
	return nil
}

// xattrFid takes the slot of the xattr fid p9 makes of f after a
// successful GetXattr or ListXattrs.
func (f *file) xattrFid() error {
	if err := f.fids.take(); err != nil {
		return err
	}
	f.refs.Add(1)
	return nil
}

// Open implements p9.File.Open: read-only opens of directories and
// regular files; iounit 0, so Linux reads msize-sized pieces.
func (f *file) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if mode.Mode() != p9.ReadOnly {
		return p9.QID{}, 0, linux.EROFS
	}
	if f.attach {
		return p9.QID{}, 0, linux.EINVAL
	}
	if f.n.Type == tree.TypeFile {
		r, err := f.v.Open(f.srv.ctx, f.n)
		if err != nil {
			return p9.QID{}, 0, f.srv.errno("open", f.n.Name, err)
		}
		f.mu.Lock()
		f.r = r
		f.mu.Unlock()
	}
	return qid(f.n), 0, nil
}

// ReadAt implements p9.File.ReadAt. A corrupt chunk fails this read with
// EIO and is logged with its hash; nothing else is affected.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	r := f.r
	f.mu.Unlock()
	if r == nil {
		if f.n.IsDir() {
			return 0, linux.EISDIR
		}
		return 0, linux.EBADF
	}
	n, err := r.ReadAtContext(f.srv.ctx, p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, f.srv.errno("read", f.n.Name, err)
	}
	f.srv.rep.Served(int64(n))
	return n, nil
}

// dirents fixed per entry: QID 13, offset 8, type 1, name length 2.
const direntFixed = 24

// Readdir implements p9.File.Readdir. Cookies are positions: the entry at
// index i of the listing (".", "..", then the view's entries in name
// order) has offset i+1, and a read at offset o resumes with entry o.
// Stored directories never change, so cookies stay valid across opens.
// Entries are returned up to count bytes; p9 drops any that do not fit,
// and the client asks again from the last offset it got. The listing is
// kept between reads while the connection's budget (Options.MaxListed)
// allows, and dropped once a read finds nothing left.
func (f *file) Readdir(offset uint64, count uint32) (p9.Dirents, error) {
	if !f.n.IsDir() {
		return nil, linux.ENOTDIR
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.read || offset == 0 {
		list, err := f.v.ReadDir(f.srv.ctx, f.n)
		if err != nil {
			return nil, f.srv.errno("readdir", f.n.Name, err)
		}
		f.dropList()
		f.list, f.read, f.kept = list, true, f.fids.keepListing(len(list))
	}
	if !f.kept || offset >= uint64(len(f.list))+2 {
		defer f.dropList() // read again next time
	}
	dot := qid(f.n)
	var out p9.Dirents
	used := 0
	for i := offset; i < uint64(len(f.list))+2; i++ {
		d := p9.Dirent{QID: dot, Offset: i + 1, Type: 4}
		switch i {
		case 0:
			d.Name = "."
		case 1:
			d.Name = ".."
		default:
			n := f.list[i-2]
			d.QID, d.Type, d.Name = qid(n), direntType(n.Type), n.Name
		}
		used += direntFixed + len(d.Name)
		if used > int(count) {
			break
		}
		out = append(out, d)
	}
	return out, nil
}

// dropList forgets the open directory's listing (f.mu held).
func (f *file) dropList() {
	if f.kept {
		f.fids.dropListing(len(f.list))
	}
	f.list, f.read, f.kept = nil, false, false
}

// Readlink implements p9.File.Readlink.
func (f *file) Readlink() (string, error) {
	t, err := f.v.Readlink(f.srv.ctx, f.n)
	if err != nil {
		return "", f.srv.errno("readlink", f.n.Name, err)
	}
	return t, nil
}

// GetXattr implements p9.File.GetXattr from the node's own attributes (no
// store access). Its errors are ENODATA for an absent attribute and EMFILE
// when the connection holds its maximum of fids; p9 sends EINVAL for
// either, and the wire shim restores them.
func (f *file) GetXattr(name string) ([]byte, error) {
	for _, x := range f.n.Xattrs {
		if x.Name == name {
			if err := f.xattrFid(); err != nil {
				return nil, err
			}
			return x.Value, nil
		}
	}
	return nil, linux.ENODATA
}

// ListXattrs implements p9.File.ListXattrs. It fails only when the
// connection holds its maximum of fids (EMFILE).
func (f *file) ListXattrs() ([]string, error) {
	if err := f.xattrFid(); err != nil {
		return nil, err
	}
	names := make([]string, len(f.n.Xattrs))
	for i, x := range f.n.Xattrs {
		names[i] = x.Name
	}
	return names, nil
}
