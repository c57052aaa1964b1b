//go:build linux

package ninepfuse

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/hugelgupf/p9/linux"
)

// xattrConn sends the extended-attribute exchanges of Linux's v9fs, which
// p9's client cannot send, on a connection of its own: one request at a
// time, tag 1. Fid 1 is the attach point; each call walks fid 2 to the
// node by name and clunks it at the end.
//
//	getxattr/listxattr: Twalk 1→2, Txattrwalk 2→3 name ("" lists), Tread 3, Tclunk 3, Tclunk 2
//	setxattr/removexattr: Twalk 1→2, Txattrcreate 2 name size flags, Twrite 2, Tclunk 2
//
// A set takes effect, or fails, when fid 2 is clunked: its Rlerror is the
// answer. removexattr is a set of size 0 with XATTR_REPLACE.
type xattrConn struct {
	mu sync.Mutex
	c  net.Conn
}

// 9P2000.L message types used here; a reply is its request's type + 1.
const (
	rlerror      = 7
	txattrwalk   = 30
	txattrcreate = 32
	tversion     = 100
	tattach      = 104
	twalk        = 110
	tread        = 116
	twrite       = 118
	tclunk       = 120

	rootFid, walkFid, xattrFid = 1, 2, 3
	noFid                      = ^uint32(0)
	msize                      = 1 << 20
	maxWalk                    = 16 // names per Twalk, as Linux sends them
)

// dialXattr negotiates 9P2000.L on c and attaches aname as fid 1.
func dialXattr(c net.Conn, aname string) (*xattrConn, error) {
	x := &xattrConn{c: c}
	var b msg
	if _, err := x.rpc(tversion, b.u32(msize).str("9P2000.L")); err != nil {
		return nil, fmt.Errorf("9p version: %w", err)
	}
	b = nil
	if _, err := x.rpc(tattach, b.u32(rootFid).u32(noFid).str("").str(aname).u32(noFid)); err != nil {
		return nil, fmt.Errorf("9p attach %q: %w", aname, err)
	}
	return x, nil
}

func (x *xattrConn) close() error { return x.c.Close() }

// msg builds a message body.
type msg []byte

func (m msg) u32(v uint32) msg { return binary.LittleEndian.AppendUint32(m, v) }
func (m msg) u64(v uint64) msg { return binary.LittleEndian.AppendUint64(m, v) }
func (m msg) str(s string) msg {
	return append(binary.LittleEndian.AppendUint16(m, uint16(len(s))), s...)
}

// rpc sends one request and returns the body of its reply, or the
// server's errno as a linux.Errno.
func (x *xattrConn) rpc(typ byte, body msg) ([]byte, error) {
	m := binary.LittleEndian.AppendUint32(nil, uint32(7+len(body)))
	m = append(m, typ)
	tag := uint16(1)
	if typ == tversion {
		tag = ^uint16(0) // NOTAG
	}
	m = binary.LittleEndian.AppendUint16(m, tag)
	if _, err := x.c.Write(append(m, body...)); err != nil {
		return nil, err
	}
	var hdr [7]byte
	if _, err := io.ReadFull(x.c, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	if size < 7 || size > msize {
		return nil, fmt.Errorf("9p: reply of %d bytes", size)
	}
	resp := make([]byte, size-7)
	if _, err := io.ReadFull(x.c, resp); err != nil {
		return nil, err
	}
	switch {
	case hdr[4] == rlerror && len(resp) == 4:
		return nil, linux.Errno(binary.LittleEndian.Uint32(resp))
	case hdr[4] != typ+1:
		return nil, fmt.Errorf("9p: reply type %d to request type %d", hdr[4], typ)
	}
	return resp, nil
}

// walk walks fid 2 from the attach point to path; on failure fid 2 is
// free.
func (x *xattrConn) walk(path []string) error {
	from := uint32(rootFid)
	for first := true; first || len(path) > 0; first = false {
		k := min(len(path), maxWalk)
		b := msg(nil).u32(from).u32(walkFid)
		b = binary.LittleEndian.AppendUint16(b, uint16(k))
		for _, name := range path[:k] {
			b = b.str(name)
		}
		resp, err := x.rpc(twalk, b)
		if err == nil && (len(resp) < 2 || int(binary.LittleEndian.Uint16(resp)) != k) {
			err = linux.ENOENT // a partial walk: a name is missing
		}
		if err != nil {
			if from == walkFid {
				x.clunk(walkFid)
			}
			return err
		}
		from, path = walkFid, path[k:]
	}
	return nil
}

func (x *xattrConn) clunk(fid uint32) error {
	_, err := x.rpc(tclunk, msg(nil).u32(fid))
	return err
}

// get returns the value of attribute name of the node at path, or the
// NUL-terminated list of its attribute names when name is "".
func (x *xattrConn) get(path []string, name string) ([]byte, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.walk(path); err != nil {
		return nil, err
	}
	defer x.clunk(walkFid)
	resp, err := x.rpc(txattrwalk, msg(nil).u32(walkFid).u32(xattrFid).str(name))
	if err != nil {
		return nil, err
	}
	defer x.clunk(xattrFid)
	if len(resp) != 8 {
		return nil, fmt.Errorf("9p: Rxattrwalk of %d bytes", len(resp))
	}
	size := binary.LittleEndian.Uint64(resp)
	if size == 0 {
		return nil, nil
	}
	if size > msize-11 {
		return nil, linux.E2BIG
	}
	resp, err = x.rpc(tread, msg(nil).u32(xattrFid).u64(0).u32(uint32(size)))
	if err != nil {
		return nil, err
	}
	if len(resp) < 4 || uint64(binary.LittleEndian.Uint32(resp)) != size || len(resp) != 4+int(size) {
		return nil, fmt.Errorf("9p: short xattr read")
	}
	return resp[4:], nil
}

// set sets attribute name of the node at path to value with setxattr(2)
// flags; the server's answer comes with the clunk.
func (x *xattrConn) set(path []string, name string, value []byte, flags uint32) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.walk(path); err != nil {
		return err
	}
	if _, err := x.rpc(txattrcreate, msg(nil).u32(walkFid).str(name).u64(uint64(len(value))).u32(flags)); err != nil {
		x.clunk(walkFid)
		return err
	}
	if len(value) > 0 {
		if _, err := x.rpc(twrite, msg(nil).u32(walkFid).u64(0).u32(uint32(len(value))).append(value)); err != nil {
			x.clunk(walkFid)
			return err
		}
	}
	return x.clunk(walkFid)
}

func (m msg) append(p []byte) msg { return append(m, p...) }
