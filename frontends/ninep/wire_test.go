//go:build linux

package ninep

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// fakeConn is a net.Conn reading from a byte string and writing to a
// buffer.
type fakeConn struct {
	r   io.Reader
	out bytes.Buffer
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return nil }
func (c *fakeConn) RemoteAddr() net.Addr             { return nil }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// frame builds one 9P message.
func frame(typ byte, tag uint16, body []byte) []byte {
	msg := binary.LittleEndian.AppendUint32(nil, uint32(headerLen+len(body)))
	msg = append(msg, typ)
	msg = binary.LittleEndian.AppendUint16(msg, tag)
	return append(msg, body...)
}

// frames splits a stream into its messages as the size fields say; the
// last may be cut short.
func frames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= headerLen {
		n := int(binary.LittleEndian.Uint32(b))
		if n < headerLen {
			break
		}
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// FuzzWireRead feeds a request stream through the shim as p9 reads it,
// in pieces of varied size: it must not panic or loop, every message it
// hands on must carry its true size, messages other than Tattach must
// pass unchanged and in order, and a rewritten Tattach must name its
// aname as one marked walk step.
func FuzzWireRead(f *testing.F) {
	attach := func(aname string) []byte {
		body := append(u32(1), u32(^uint32(0))...)
		body = append(append(append(body, str("root")...), str(aname)...), u32(0)...)
		return frame(tattach, 1, body)
	}
	f.Add(attach("t@1/sub"), uint8(7))
	f.Add(append(attach(""), frame(txattrwalk, 2, append(append(u32(1), u32(2)...), str("user.x")...))...), uint8(3))
	f.Add(append(frame(110, 3, append(append(u32(1), u32(2)...), 0, 0)), attach("a\x00b")...), uint8(200))
	f.Add(frame(tattach, 1, []byte{1, 2, 3}), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, piece uint8) {
		c := &fakeConn{r: bytes.NewReader(in)}
		w := newWire(c, &fidCount{max: 10, rep: report.Nop{}})
		var got []byte
		buf := make([]byte, int(piece)+1)
		for i := 0; i < len(in)+100; i++ {
			w.answered() // as if every request had its reply
			n, err := w.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			if n == 0 {
				t.Fatalf("Read returned nothing and no error")
			}
		}
		gotF, inF := frames(got), frames(in)
		if len(gotF) > len(inF) {
			t.Fatalf("%d messages out of %d", len(gotF), len(inF))
		}
		for i, g := range gotF {
			m := inF[i]
			if g[4] != m[4] || !bytes.Equal(g[5:7], m[5:7]) {
				t.Fatalf("message %d: type/tag %x, want %x", i, g[4:7], m[4:7])
			}
			if g[4] != tattach { // a Tattach is handed on only whole
				if !bytes.Equal(g, m[:len(g)]) {
					t.Fatalf("message %d (type %d) changed:\n in  %x\n out %x", i, g[4], m, g)
				}
				continue
			}
			if int(binary.LittleEndian.Uint32(g)) != len(g) {
				t.Fatalf("Tattach of %d bytes says %d", len(g), binary.LittleEndian.Uint32(g))
			}
			if bytes.Equal(g, m) {
				continue
			}
			// fid[4] afid[4] uname[s] aname[s] n_uname[4]
			off := headerLen + 8
			off += 2 + int(binary.LittleEndian.Uint16(g[off:]))
			alen := int(binary.LittleEndian.Uint16(g[off:]))
			step := string(g[off+2 : off+2+alen])
			if !strings.HasPrefix(step, anameMark) || strings.Contains(step, "/") {
				t.Fatalf("Tattach rewritten to step %q", step)
			}
		}
	})
}

// FuzzWireWrite writes a reply stream through the shim in pieces of
// varied size after a request stream recorded its xattr walks: every
// byte goes out in order, and only the error code of an Rlerror or the
// size of an Rxattrwalk may change.
func FuzzWireWrite(f *testing.F) {
	xw := frame(txattrwalk, 5, append(append(u32(1), u32(2)...), str("user.x")...))
	xl := frame(txattrwalk, 6, append(append(u32(1), u32(2)...), str("")...))
	f.Add(append(xw, xl...), append(frame(rlerror, 5, u32(errEINVAL)), frame(rxattrwalk, 6, binary.LittleEndian.AppendUint64(nil, 1))...), uint16(3))
	f.Add([]byte{}, frame(117, 9, append(u32(5000), bytes.Repeat([]byte{7}, 5000)...)), uint16(4095))
	f.Add(xw, frame(rlerror, 5, nil), uint16(1))
	f.Fuzz(func(t *testing.T, reqs, replies []byte, piece uint16) {
		c := &fakeConn{r: bytes.NewReader(reqs)}
		w := newWire(c, &fidCount{max: 10, rep: report.Nop{}})
		buf := make([]byte, 1<<16)
		for {
			w.answered()
			if _, err := w.Read(buf); err != nil {
				break
			}
		}
		for p := replies; len(p) > 0; {
			k := min(len(p), int(piece)+1)
			if n, err := w.Write(p[:k]); err != nil || n != k {
				t.Fatalf("Write: %d, %v", n, err)
			}
			p = p[k:]
		}
		out := c.out.Bytes()
		if len(out) > len(replies) {
			t.Fatalf("%d bytes out of %d", len(out), len(replies))
		}
		// Messages as the shim delimits them: a size below the header's
		// is a header alone.
		for off := 0; off < len(replies); {
			n := len(replies) - off
			whole := false
			if n >= headerLen {
				n = max(int(binary.LittleEndian.Uint32(replies[off:])), headerLen)
				whole = off+n <= len(replies)
			}
			end := off + n
			if whole && len(out) < end {
				t.Fatalf("a complete message (bytes %d to %d) not all sent: %d bytes out", off, end, len(out))
			}
			m, o := replies[off:min(end, len(replies))], out[min(off, len(out)):min(end, len(out))]
			held := len(m) >= headerLen && (m[4] == rlerror && n == headerLen+4 || m[4] == rxattrwalk && n == headerLen+8)
			for i := range o {
				if o[i] != m[i] && !(held && i >= headerLen) {
					t.Fatalf("byte %d of the message at %d changed: %x, want %x", i, off, o, m)
				}
			}
			off = end
		}
	})
}
