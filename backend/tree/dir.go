// Package tree defines the canonical encodings of SprayDryFS metadata: a
// directory listing and a file's chunk list. Both are content: they are
// hashed, stored once, and decoded strictly so that one listing has exactly
// one encoding.
package tree

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Type is the kind of a directory entry.
type Type uint8

// Entry types. Devices, FIFOs and sockets are recorded, never read.
const (
	TypeFile Type = iota + 1
	TypeDir
	TypeSymlink
	TypeFIFO
	TypeSocket
	TypeCharDev
	TypeBlockDev
)

// Limits enforced by the encoder's callers and by the decoder.
const (
	MaxNameLen   = 1024
	MaxTargetLen = 4096
	MaxXattrName = 255
	MaxXattrVal  = 64 << 10
)

// Listing encoding versions. Version 2 adds to each file entry the hash of
// its stored chunk list, so that a verified listing authenticates the list
// too; listings of version 1 (stores written before it) say nothing of it.
const (
	dirUnsealed = 1
	dirSealed   = 2
)

// FileMode returns the io/fs type bits of t.
func (t Type) FileMode() fs.FileMode {
	switch t {
	case TypeDir:
		return fs.ModeDir
	case TypeSymlink:
		return fs.ModeSymlink
	case TypeFIFO:
		return fs.ModeNamedPipe
	case TypeSocket:
		return fs.ModeSocket
	case TypeCharDev:
		return fs.ModeDevice | fs.ModeCharDevice
	case TypeBlockDev:
		return fs.ModeDevice
	}
	return 0
}

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	case TypeCharDev:
		return "chardev"
	case TypeBlockDev:
		return "blockdev"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is one name in a directory with its attributes.
type Entry struct {
	Name   string // raw name bytes, not necessarily UTF-8
	Type   Type
	Mode   uint32 // permission bits with setuid, setgid and sticky (07777)
	UID    uint32
	GID    uint32
	MTime  int64  // nanoseconds since the Unix epoch
	Size   int64  // files: content bytes; symlinks: target length; dirs: entry count
	Nlink  uint32 // files: links within the root; dirs: 2 + subdirectories
	LinkID uint64 // hard-link group within the root; 0 if not hard linked
	Rdev   uint64 // devices only, in Linux's encoding (see Mkdev)
	Target string // symlinks only
	Xattrs []Xattr
	Hash   hash.Hash // regular files: content; directories: listing
	// List, for a regular file in a sealed listing, is the hash of its
	// encoded chunk list; zero for a file stored as one chunk, which has no
	// list (its address is its chunk's).
	List hash.Hash
}

// SameXattrs reports whether two sorted attribute lists are equal.
func SameXattrs(a, b []Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

// Dir is a decoded directory listing, entries sorted by name bytes.
type Dir struct {
	Entries []Entry
	// Files and Bytes total the regular files below this directory;
	// Xattrs counts the entries below it that have extended attributes.
	Files  uint64
	Bytes  uint64
	Xattrs uint64
	// Unsealed marks a listing of version 1: its file entries carry no
	// List, so their chunk lists are verified only by reading whole files.
	Unsealed bool
}

// Lookup returns the entry called name.
func (d *Dir) Lookup(name string) (*Entry, bool) {
	i := sort.Search(len(d.Entries), func(i int) bool { return d.Entries[i].Name >= name })
	if i < len(d.Entries) && d.Entries[i].Name == name {
		return &d.Entries[i], true
	}
	return nil, false
}

// MemSize estimates the bytes a decoded listing occupies, for cache accounting.
func (d *Dir) MemSize() int64 {
	n := int64(64)
	for i := range d.Entries {
		e := &d.Entries[i]
		n += 160 + int64(len(e.Name)+len(e.Target))
		for _, x := range e.Xattrs {
			n += 40 + int64(len(x.Name)+len(x.Value))
		}
	}
	return n
}

// ValidName reports whether name can be a directory entry.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= MaxNameLen &&
		!strings.ContainsAny(name, "/\x00")
}

// Sort orders entries by name bytes and xattrs by name, as the encoding requires.
func (d *Dir) Sort() {
	sort.Slice(d.Entries, func(i, j int) bool { return d.Entries[i].Name < d.Entries[j].Name })
	for i := range d.Entries {
		x := d.Entries[i].Xattrs
		sort.Slice(x, func(i, j int) bool { return x[i].Name < x[j].Name })
	}
}

// Encode returns the canonical encoding of a sorted listing:
//
//	byte version (2; 1 if Unsealed), uvarint count, uvarint files, uvarint bytes,
//	uvarint entries with xattrs (all three total the whole subtree), then per entry:
//	bytes name, byte type, uvarint mode, uvarint uid, uvarint gid,
//	zigzag-varint mtime ns, uvarint xattr count, (bytes name, bytes value)...,
//	then by type — file: uvarint size, uvarint nlink, uvarint link id, hash,
//	and in version 2 a byte 0 (stored as one chunk) or 1 followed by the
//	chunk list's hash; dir: uvarint entry count, uvarint nlink, hash; symlink: bytes target;
//	char/block device: uvarint rdev.
//
// "bytes" is a uvarint length and the raw bytes; "hash" is 33 bytes. All
// varints are minimal. Entries are sorted by raw name bytes, xattrs by name.
// It fails on an entry the decoder would refuse.
func (d *Dir) Encode() ([]byte, error) {
	b := make([]byte, 0, 16+len(d.Entries)*64)
	version := byte(dirSealed)
	if d.Unsealed {
		version = dirUnsealed
	}
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(d.Entries)))
	b = binary.AppendUvarint(b, d.Files)
	b = binary.AppendUvarint(b, d.Bytes)
	b = binary.AppendUvarint(b, d.Xattrs)
	for i := range d.Entries {
		e := &d.Entries[i]
		if err := e.check(); err != nil {
			return nil, err
		}
		if i > 0 && d.Entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("directory entries not sorted or duplicate at %q", e.Name)
		}
		if d.Unsealed && !e.List.IsZero() {
			return nil, fmt.Errorf("entry %q: a chunk list hash in an unsealed listing", e.Name)
		}
		b = appendBytes(b, []byte(e.Name))
		b = append(b, byte(e.Type))
		b = binary.AppendUvarint(b, uint64(e.Mode))
		b = binary.AppendUvarint(b, uint64(e.UID))
		b = binary.AppendUvarint(b, uint64(e.GID))
		b = appendVarint(b, e.MTime)
		b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
		for _, x := range e.Xattrs {
			b = appendBytes(b, []byte(x.Name))
			b = appendBytes(b, x.Value)
		}
		switch e.Type {
		case TypeFile:
			b = binary.AppendUvarint(b, uint64(e.Size))
			b = binary.AppendUvarint(b, uint64(e.Nlink))
			b = binary.AppendUvarint(b, e.LinkID)
			b = append(b, e.Hash[:]...)
			switch {
			case d.Unsealed:
			case e.List.IsZero():
				b = append(b, 0)
			default:
				b = append(b, 1)
				b = append(b, e.List[:]...)
			}
		case TypeDir:
			b = binary.AppendUvarint(b, uint64(e.Size))
			b = binary.AppendUvarint(b, uint64(e.Nlink))
			b = append(b, e.Hash[:]...)
		case TypeSymlink:
			b = appendBytes(b, []byte(e.Target))
		case TypeCharDev, TypeBlockDev:
			b = binary.AppendUvarint(b, e.Rdev)
		}
	}
	return b, nil
}

// check reports an entry that cannot be encoded canonically.
func (e *Entry) check() error {
	switch {
	case !ValidName(e.Name):
		return fmt.Errorf("invalid entry name %q", e.Name)
	case e.Type < TypeFile || e.Type > TypeBlockDev:
		return fmt.Errorf("entry %q: invalid type %d", e.Name, e.Type)
	case e.Mode&^07777 != 0:
		return fmt.Errorf("entry %q: mode %o has type bits", e.Name, e.Mode)
	case e.Type == TypeFile && (e.Size < 0 || e.Nlink == 0 || (e.Nlink > 1) != (e.LinkID != 0)):
		return fmt.Errorf("entry %q: inconsistent size or links", e.Name)
	case e.Type == TypeDir && (e.Size < 0 || e.Nlink < 2):
		return fmt.Errorf("entry %q: inconsistent directory counts", e.Name)
	case (e.Type == TypeFile || e.Type == TypeDir) && e.Hash.IsZero():
		return fmt.Errorf("entry %q: missing hash", e.Name)
	case e.Type != TypeFile && !e.List.IsZero():
		return fmt.Errorf("entry %q: a chunk list hash on a %s", e.Name, e.Type)
	case e.Type == TypeSymlink && (e.Target == "" || len(e.Target) > MaxTargetLen):
		return fmt.Errorf("entry %q: invalid symlink target", e.Name)
	}
	for i, x := range e.Xattrs {
		if x.Name == "" || len(x.Name) > MaxXattrName || len(x.Value) > MaxXattrVal || strings.ContainsRune(x.Name, 0) {
			return fmt.Errorf("entry %q: invalid xattr %q", e.Name, x.Name)
		}
		if i > 0 && e.Xattrs[i-1].Name >= x.Name {
			return fmt.Errorf("entry %q: xattrs not sorted or duplicate", e.Name)
		}
	}
	return nil
}

// DecodeDir parses a canonical listing, refusing anything Encode would not
// produce.
func DecodeDir(b []byte) (*Dir, error) {
	d := decoder{b: b}
	v := d.byte1("version")
	if d.err == nil && v != dirSealed && v != dirUnsealed {
		return nil, fmt.Errorf("%w: directory encoding version %d", ErrMalformed, v)
	}
	n := d.uvarint("entry count")
	dir := &Dir{Files: d.uvarint("file total"), Bytes: d.uvarint("byte total"), Xattrs: d.uvarint("xattr total"), Unsealed: v == dirUnsealed}
	// Each entry takes at least 8 bytes, which bounds the allocation.
	if d.err == nil && n > uint64(len(d.b)/8) {
		d.fail("entry count")
	}
	if d.err != nil {
		return nil, d.err
	}
	dir.Entries = make([]Entry, n)
	for i := range dir.Entries {
		e := &dir.Entries[i]
		e.Name = string(d.bytes("name", MaxNameLen))
		e.Type = Type(d.byte1("type"))
		e.Mode = d.uvarint32("mode")
		e.UID = d.uvarint32("uid")
		e.GID = d.uvarint32("gid")
		e.MTime = d.varint("mtime")
		nx := d.uvarint("xattr count")
		if d.err == nil && nx > uint64(len(d.b)/2) {
			d.fail("xattr count")
		}
		if d.err == nil && nx > 0 {
			e.Xattrs = make([]Xattr, nx)
			for j := range e.Xattrs {
				e.Xattrs[j].Name = string(d.bytes("xattr name", MaxXattrName))
				v := d.bytes("xattr value", MaxXattrVal)
				e.Xattrs[j].Value = append([]byte{}, v...)
			}
		}
		switch e.Type {
		case TypeFile:
			size := d.uvarint("size")
			if size > 1<<62 {
				d.fail("size")
			}
			e.Size = int64(size)
			e.Nlink = d.uvarint32("nlink")
			e.LinkID = d.uvarint("link id")
			e.Hash = d.hash("file hash")
			if !dir.Unsealed {
				switch d.byte1("chunk list flag") {
				case 0:
				case 1:
					e.List = d.hash("chunk list hash")
				default:
					d.fail("chunk list flag")
				}
			}
		case TypeDir:
			size := d.uvarint("entry count")
			if size > 1<<40 {
				d.fail("entry count")
			}
			e.Size = int64(size)
			e.Nlink = d.uvarint32("dir nlink")
			e.Hash = d.hash("dir hash")
		case TypeSymlink:
			e.Target = string(d.bytes("symlink target", MaxTargetLen))
			e.Size = int64(len(e.Target))
		case TypeCharDev, TypeBlockDev:
			e.Rdev = d.uvarint("rdev")
		}
		if d.err != nil {
			return nil, d.err
		}
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if i > 0 && dir.Entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("%w: entries not sorted at %q", ErrMalformed, e.Name)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after directory", ErrMalformed)
	}
	return dir, nil
}
