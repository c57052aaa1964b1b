package ninep

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// wire is a connection as the p9 server sees it, with three corrections
// made on the 9P framing (headers: size[4] type[1] tag[2], little endian)
// rather than in a copy of p9's handlers:
//
//   - Tattach: the aname becomes one walk step, anameMark followed by the
//     aname with its slashes turned into anameMark, so the attach point
//     can open the view it names as a whole (p9's Attacher never sees the
//     aname and would otherwise walk it name by name from one root);
//   - Rlerror to a Txattrwalk: p9 answers every GetXattr and ListXattrs
//     error with EINVAL; ours only fail with EMFILE when the connection
//     holds its maximum of fids, and otherwise (GetXattr) with ENODATA,
//     so the reply gets that back (ls, getfattr and ACL probes then see
//     "no such attribute" instead of "Invalid argument");
//   - Rxattrwalk to a Txattrwalk listing names: p9 sizes an empty list as
//     one NUL byte; it is sized 0, so listxattr returns an empty list.
//
// Everything else passes through unchanged. The shim also bounds the
// requests in flight: p9 handles each request it reads on a goroutine of
// its own with a reply buffer of up to msize, so a client sending reads
// and never reading the replies would grow the server without limit; at
// maxInFlight requests read and not yet answered, the next is not read.
type wire struct {
	c    net.Conn
	fids *fidCount // the connection's fids: full means EMFILE

	inFlight  chan struct{} // one token per request read and not yet answered
	done      chan struct{} // closed by Close or a failed send
	closeOnce sync.Once

	mu     sync.Mutex
	xattrs map[uint16]bool // tags of Txattrwalk in flight: true when getting a name

	rbuf  []byte // bytes of a rewritten or inspected request still to deliver
	rleft int    // bytes of the current request still to pass through

	whdr  []byte // header bytes of the current reply collected so far
	wleft int    // bytes of the current reply's body still to come
	hold  []byte // the current reply, held to be corrected
	pend  []byte // bytes of the current reply not yet sent

	r *bufio.Reader // c, buffered: p9 reads a request in two or three pieces
}

// 9P message types the shim looks at.
const (
	rlerror     = 7
	txattrwalk  = 30
	rxattrwalk  = 31
	tattach     = 104
	headerLen   = 7
	maxInspect  = 64 << 10 // largest Tattach or Txattrwalk accepted
	errEINVAL   = 22
	errEMFILE   = 24
	errENODATA  = 61
	maxHeldBody = 8 // Rlerror: ecode[4]; Rxattrwalk: size[8]
	// maxInFlight bounds the requests of one connection handled at once:
	// reply buffers of at most 64 × msize (64 MiB at Linux's largest TCP
	// msize), far more concurrency than one v9fs mount uses.
	maxInFlight = 64
)

func newWire(c net.Conn, fids *fidCount) *wire {
	return &wire{c: c, fids: fids, xattrs: make(map[uint16]bool), r: bufio.NewReaderSize(c, 64<<10),
		inFlight: make(chan struct{}, maxInFlight), done: make(chan struct{})}
}

// answered gives back the token of a request whose reply has been sent.
// A request p9 never answers (a bogus client's duplicate tag) keeps its
// token: only that connection slows.
func (w *wire) answered() {
	select {
	case <-w.inFlight:
	default:
	}
}

// Read implements io.Reader for p9's receiving side.
func (w *wire) Read(p []byte) (int, error) {
	if len(w.rbuf) > 0 {
		n := copy(p, w.rbuf)
		w.rbuf = w.rbuf[n:]
		return n, nil
	}
	if w.rleft > 0 {
		n, err := w.r.Read(p[:min(len(p), w.rleft)])
		w.rleft -= n
		return n, err
	}
	select {
	case w.inFlight <- struct{}{}:
	case <-w.done:
		return 0, net.ErrClosed
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(w.r, hdr[:]); err != nil {
		return 0, err
	}
	size := int(binary.LittleEndian.Uint32(hdr[:]))
	typ, tag := hdr[4], binary.LittleEndian.Uint16(hdr[5:])
	if size < headerLen {
		return 0, fmt.Errorf("9p: message of %d bytes", size)
	}
	if typ != tattach && typ != txattrwalk {
		w.rbuf = append(w.rbuf[:0], hdr[:]...)
		w.rleft = size - headerLen
		return w.Read(p)
	}
	if size > maxInspect {
		return 0, fmt.Errorf("9p: message type %d of %d bytes", typ, size)
	}
	msg := make([]byte, size)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(w.r, msg[headerLen:]); err != nil {
		return 0, err
	}
	switch typ {
	case tattach:
		msg = rewriteAttach(msg)
	case txattrwalk:
		// fid[4] newfid[4] name[s]
		if len(msg) >= headerLen+10 {
			get := binary.LittleEndian.Uint16(msg[headerLen+8:]) > 0
			w.mu.Lock()
			w.xattrs[tag] = get
			w.mu.Unlock()
		}
	}
	w.rbuf = msg
	return w.Read(p)
}

// rewriteAttach turns a Tattach's aname into the attach point's walk
// step; a malformed message passes unchanged for p9 to refuse.
func rewriteAttach(msg []byte) []byte {
	// fid[4] afid[4] uname[s] aname[s] n_uname[4]
	off := headerLen + 8
	if len(msg) < off+2 {
		return msg
	}
	off += 2 + int(binary.LittleEndian.Uint16(msg[off:]))
	if len(msg) < off+2 {
		return msg
	}
	alen := int(binary.LittleEndian.Uint16(msg[off:]))
	if len(msg) < off+2+alen {
		return msg
	}
	aname := string(msg[off+2 : off+2+alen])
	step := anameMark + strings.ReplaceAll(strings.Trim(aname, "/"), "/", anameMark)
	if strings.Contains(aname, anameMark) {
		step = anameMark + "." // refused with EINVAL
	}
	if len(step) > 0xffff {
		return msg
	}
	out := make([]byte, 0, len(msg)-alen+len(step))
	out = append(out, msg[:off]...)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(step)))
	out = append(out, step...)
	out = append(out, msg[off+2+alen:]...)
	binary.LittleEndian.PutUint32(out, uint32(len(out)))
	return out
}

// Write implements io.Writer for p9's sending side (one reply at a time:
// p9 serialises its sends). p9 writes a reply as header, fixed part and
// payload; they go out in one writev per reply (and in large pieces for
// large payloads), not as three TCP segments.
func (w *wire) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if w.wleft == 0 && w.hold == nil {
			k := min(headerLen-len(w.whdr), len(p))
			w.whdr = append(w.whdr, p[:k]...)
			p = p[k:]
			if len(w.whdr) < headerLen {
				continue
			}
			size := int(binary.LittleEndian.Uint32(w.whdr))
			typ := w.whdr[4]
			w.wleft = max(size-headerLen, 0)
			if typ != rlerror {
				w.fids.rep.Request("OK")
			}
			if (typ == rlerror || typ == rxattrwalk) && w.wleft <= maxHeldBody {
				w.hold = append([]byte(nil), w.whdr...)
			} else {
				w.pend = append(w.pend, w.whdr...)
			}
			w.whdr = w.whdr[:0]
		} else {
			k := min(w.wleft, len(p))
			w.wleft -= k
			switch {
			case w.hold != nil:
				w.hold = append(w.hold, p[:k]...)
			case w.wleft > 0 && k < 4096:
				w.pend = append(w.pend, p[:k]...)
			default:
				bufs := net.Buffers{w.pend, p[:k]}
				if _, err := bufs.WriteTo(w.c); err != nil {
					w.Close()
					return 0, err
				}
				w.pend = w.pend[:0]
			}
			p = p[k:]
		}
		if w.wleft == 0 && len(w.whdr) == 0 {
			if w.hold != nil {
				msg := w.fix(w.hold)
				if msg[4] == rlerror && len(msg) >= headerLen+4 {
					w.fids.rep.Request(report.LinuxErrno(binary.LittleEndian.Uint32(msg[headerLen:])))
				}
				w.pend = append(w.pend, msg...)
				w.hold = nil
			}
			if len(w.pend) > 0 {
				if _, err := w.c.Write(w.pend); err != nil {
					w.Close()
					return 0, err
				}
				w.pend = w.pend[:0]
			}
			w.answered()
		}
	}
	return total, nil
}

// fix corrects a held reply to a Txattrwalk.
func (w *wire) fix(msg []byte) []byte {
	tag := binary.LittleEndian.Uint16(msg[5:])
	w.mu.Lock()
	get, ok := w.xattrs[tag]
	delete(w.xattrs, tag)
	w.mu.Unlock()
	if !ok {
		return msg
	}
	switch {
	case msg[4] == rlerror && len(msg) == headerLen+4 &&
		binary.LittleEndian.Uint32(msg[headerLen:]) == errEINVAL:
		// At the maximum, the refusal was (almost surely) ours; a clunk
		// racing with it can at worst turn one answer into the other.
		switch {
		case w.fids.full():
			binary.LittleEndian.PutUint32(msg[headerLen:], errEMFILE)
		case get:
			binary.LittleEndian.PutUint32(msg[headerLen:], errENODATA)
		}
	case msg[4] == rxattrwalk && len(msg) == headerLen+8 && !get &&
		binary.LittleEndian.Uint64(msg[headerLen:]) == 1:
		binary.LittleEndian.PutUint64(msg[headerLen:], 0)
	}
	return msg
}

// Close implements io.Closer; p9 closes both sides, and Server.Close
// closes every connection's wire, waking a Read waiting for a token.
func (w *wire) Close() error {
	w.closeOnce.Do(func() { close(w.done) })
	return w.c.Close()
}
