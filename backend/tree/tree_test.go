package tree

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

func sampleDir() *Dir {
	d := &Dir{Files: 3, Bytes: 12345, Entries: []Entry{
		{Name: "z-file", Type: TypeFile, Mode: 04755, UID: 1000, GID: 100, MTime: -5, Size: 12345, Nlink: 2, LinkID: 77, Hash: hash.Sum([]byte("x")),
			Xattrs: []Xattr{{Name: "user.b", Value: []byte{0, 1}}, {Name: "user.a", Value: nil}}},
		{Name: "a\xffb", Type: TypeDir, Mode: 01777, Size: 3, Nlink: 3, MTime: 1700000000123456789, Hash: hash.Sum([]byte("d"))},
		{Name: "link", Type: TypeSymlink, Mode: 0777, Target: "../a\xffb"},
		{Name: "fifo", Type: TypeFIFO, Mode: 0644},
		{Name: "tty", Type: TypeCharDev, Mode: 0620, Rdev: 0x0405},
		{Name: "empty", Type: TypeFile, Mode: 0644, Nlink: 1, Hash: hash.Sum(nil), List: hash.Sum([]byte{0})},
	}}
	d.Sort()
	return d
}

func TestDirRoundTrip(t *testing.T) {
	d := sampleDir()
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeDir(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := got.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	e, ok := got.Lookup("z-file")
	if !ok || e.Size != 12345 || e.Mode != 04755 || e.LinkID != 77 || len(e.Xattrs) != 2 || e.Xattrs[0].Name != "user.a" {
		t.Fatalf("lookup z-file: %+v %v", e, ok)
	}
	if l, _ := got.Lookup("link"); l.Target != "../a\xffb" || l.Size != int64(len(l.Target)) {
		t.Fatalf("symlink: %+v", l)
	}
	if _, ok := got.Lookup("nope"); ok {
		t.Fatal("found a missing name")
	}
}

// TestDirEncodingStable pins the canonical encodings: a change here
// changes every directory hash in every store.
func TestDirEncodingStable(t *testing.T) {
	abc := hash.Sum([]byte("abc"))
	file := Entry{Name: "f", Type: TypeFile, Mode: 0644, UID: 1, GID: 2, MTime: 3, Size: 3, Nlink: 1, Hash: abc}
	listed := file
	listed.List = hash.Sum(nil)
	// 1 entry, 1 file, 3 bytes, 0 with xattrs; "f", file, 0644, uid 1,
	// gid 2, mtime 3 (zigzag 6), no xattrs, size 3, nlink 1, link 0,
	// sha256("abc").
	head, entry := "01010300", "0166"+"01"+"a403"+"01"+"02"+"06"+"00"+"03"+"01"+"00"+"01ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for _, c := range []struct {
		d    *Dir
		want string
	}{
		// version 1: nothing more.
		{&Dir{Unsealed: true, Files: 1, Bytes: 3, Entries: []Entry{file}}, "01" + head + entry},
		// version 2: stored as one chunk.
		{&Dir{Files: 1, Bytes: 3, Entries: []Entry{file}}, "02" + head + entry + "00"},
		// version 2: a chunk list, sha256("").
		{&Dir{Files: 1, Bytes: 3, Entries: []Entry{listed}}, "02" + head + entry + "01" + "01e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	} {
		b, err := c.d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", b); got != c.want {
			t.Errorf("directory encoding changed:\n got  %s\n want %s", got, c.want)
		}
		d, err := DecodeDir(b)
		if err != nil || d.Unsealed != c.d.Unsealed || d.Entries[0].List != c.d.Entries[0].List {
			t.Errorf("decode %s: %+v, %v", c.want, d, err)
		}
	}
}

func TestDirRejects(t *testing.T) {
	for _, d := range []*Dir{
		{Entries: []Entry{{Name: "a/b", Type: TypeFIFO}}},
		{Entries: []Entry{{Name: "..", Type: TypeFIFO}}},
		{Entries: []Entry{{Name: "b", Type: TypeFIFO}, {Name: "a", Type: TypeFIFO}}},
		{Entries: []Entry{{Name: "a", Type: TypeFIFO}, {Name: "a", Type: TypeFIFO}}},
		{Entries: []Entry{{Name: "a", Type: TypeFile, Nlink: 1}}},
		{Entries: []Entry{{Name: "a", Type: TypeFIFO, Mode: 0100644}}},
		{Entries: []Entry{{Name: "a", Type: TypeSymlink}}},
		{Entries: []Entry{{Name: "a", Type: TypeDir, Nlink: 2, Hash: hash.Sum(nil), List: hash.Sum(nil)}}},
		{Unsealed: true, Entries: []Entry{{Name: "a", Type: TypeFile, Nlink: 1, Hash: hash.Sum(nil), List: hash.Sum(nil)}}},
	} {
		if _, err := d.Encode(); err == nil {
			t.Errorf("Encode accepted %+v", d.Entries)
		}
	}
	b, _ := sampleDir().Encode()
	flag2 := append(append([]byte{}, b[:len(b)-1]...), 2) // sampleDir's last entry is a one-chunk file
	zero := append(append(append([]byte{}, b[:len(b)-1]...), 1), make([]byte, hash.Size)...)
	for _, bad := range [][]byte{nil, {2}, {3, 0, 0, 0, 0}, b[:len(b)-1], append(append([]byte{}, b...), 0), flag2, zero} {
		if _, err := DecodeDir(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeDir(%d bytes) = %v, want ErrMalformed", len(bad), err)
		}
	}
}

func TestChunkList(t *testing.T) {
	refs := []ChunkRef{{hash.Sum([]byte("a")), 10}, {hash.Sum([]byte("b")), 5}, {hash.Sum([]byte("c")), 7}}
	b := EncodeChunkList(refs)
	l, err := DecodeChunkList(b, 22)
	if err != nil {
		t.Fatal(err)
	}
	for off, want := range map[int64]int{0: 0, 9: 0, 10: 1, 14: 1, 15: 2, 21: 2, 22: 3} {
		if got := l.Find(off); got != want {
			t.Errorf("Find(%d) = %d, want %d", off, got, want)
		}
	}
	if l.Start(2) != 15 || l.Size() != 22 {
		t.Fatal("offsets wrong")
	}
	if _, err := DecodeChunkList(b, 21); err == nil {
		t.Error("accepted a wrong total size")
	}
	b[3] ^= 1
	if _, err := DecodeChunkList(b, 22); !errors.Is(err, ErrMalformed) {
		t.Errorf("damaged list: %v", err)
	}
	e, err := DecodeChunkList(EncodeChunkList(nil), 0)
	if err != nil || len(e.Chunks) != 0 || e.Find(0) != 0 {
		t.Fatalf("empty list: %v", err)
	}
}

func FuzzDecodeDir(f *testing.F) {
	b, _ := sampleDir().Encode()
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0})
	old := sampleDir()
	old.Unsealed = true
	for i := range old.Entries {
		old.Entries[i].List = hash.Zero
	}
	b, err := old.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDir(b)
		if err != nil {
			return
		}
		again, err := d.Encode()
		if err != nil {
			t.Fatalf("decoded listing does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("non-canonical encoding accepted:\n in  %x\n out %x", b, again)
		}
	})
}

func FuzzDecodeChunkList(f *testing.F) {
	f.Add(EncodeChunkList([]ChunkRef{{hash.Sum([]byte("a")), 10}}), int64(10))
	f.Add(EncodeChunkList(nil), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		l, err := DecodeChunkList(b, size)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeChunkList(l.Chunks), b) || l.Size() != size {
			t.Fatal("non-canonical chunk list accepted")
		}
	})
}
