//go:build !windows

package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// openFlags open a file to read without following a symlink that replaced
// it since the walk, and without blocking on a FIFO that did (O_NONBLOCK
// changes nothing for regular files).
const openFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// lstat fills st from lstat(2) of p.
func lstat(p string, st *fileStat) error {
	var u unix.Stat_t
	if err := unix.Lstat(p, &u); err != nil {
		return err
	}
	fromUnix(&u, st)
	return nil
}

// stat fills st from stat(2) of p.
func stat(p string, st *fileStat) error {
	var u unix.Stat_t
	if err := unix.Stat(p, &u); err != nil {
		return err
	}
	fromUnix(&u, st)
	return nil
}

// fstat fills st from fstat(2) of f.
func fstat(f *os.File, st *fileStat) error {
	var u unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &u); err != nil {
		return err
	}
	fromUnix(&u, st)
	return nil
}

// fromUnix converts the platform's Stat_t, whose field types differ
// between systems.
func fromUnix(u *unix.Stat_t, st *fileStat) {
	*st = fileStat{Mode: uint32(u.Mode), Uid: u.Uid, Gid: u.Gid, Size: u.Size, MTime: u.Mtim.Nano(), CTime: u.Ctim.Nano(),
		Dev: uint64(u.Dev), Ino: uint64(u.Ino), Nlink: uint64(u.Nlink)}
	if t := st.Mode & sIFMT; t == sIFCHR || t == sIFBLK {
		rdev := uint64(u.Rdev)
		st.Rdev = tree.Mkdev(unix.Major(rdev), unix.Minor(rdev))
	}
}

// warnDropped says what ingest cannot record here: on Unix, nothing.
func warnDropped(*slog.Logger) {}

// readXattrs returns a file's extended attributes sorted by name.
func readXattrs(p string) ([]tree.Xattr, error) {
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if errors.Is(err, unix.ENOTSUP) || n == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var out []tree.Xattr
	for _, name := range splitNul(buf[:n]) {
		sz, err := unix.Lgetxattr(p, name, nil)
		if errors.Is(err, errNoXattr) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xattr %s: %w", name, err)
		}
		val := make([]byte, sz)
		if sz > 0 {
			if sz, err = unix.Lgetxattr(p, name, val); err != nil {
				return nil, fmt.Errorf("xattr %s: %w", name, err)
			}
		}
		out = append(out, tree.Xattr{Name: name, Value: val[:sz]})
	}
	slices.SortFunc(out, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}
