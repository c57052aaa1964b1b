package tree

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// ErrMalformed reports stored bytes that are not a canonical encoding.
var ErrMalformed = errors.New("malformed encoding")

// decoder reads canonical fields: minimal varints, bounded lengths.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	// A canonical varint is minimal: its last byte is non-zero unless it is
	// the single byte 0.
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint32(what string) uint32 {
	v := d.uvarint(what)
	if v > 1<<32-1 {
		d.fail(what)
	}
	return uint32(v)
}

func (d *decoder) varint(what string) int64 {
	u := d.uvarint(what)
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes reads a length-prefixed byte string of at most max bytes. The result
// aliases the input.
func (d *decoder) bytes(what string, max int) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) hash(what string) hash.Hash {
	if d.err != nil {
		return hash.Zero
	}
	if len(d.b) < hash.Size {
		d.fail(what)
		return hash.Zero
	}
	h, err := hash.FromBytes(d.b[:hash.Size])
	if err != nil {
		d.fail(what)
		return hash.Zero
	}
	d.b = d.b[hash.Size:]
	return h
}

func appendVarint(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
