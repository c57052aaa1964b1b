//go:build linux

// Command agent describes a directory tree, one line per entry in path
// order: type, permissions, size (not for directories), link count,
// owner, mtime in ns, symlink target, extended attributes and the MD5 of
// regular files. The 9P VM test runs it in the guest on the mount and on
// the host on the source tree, and compares the two descriptions; it is
// a static binary so the busybox initramfs can run it.
//
//	agent DIR
package main

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: agent DIR")
		os.Exit(2)
	}
	root := os.Args[1]
	failed := false
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Printf("ERROR %s: %v\n", p, err)
			failed = true
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		line, err := describe(p)
		if err != nil {
			fmt.Printf("ERROR %s: %v\n", rel, err)
			failed = true
			return nil
		}
		fmt.Printf("%q %s\n", rel, line)
		return nil
	})
	if err != nil || failed {
		os.Exit(1)
	}
}

func describe(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	typ := st.Mode & unix.S_IFMT
	size := fmt.Sprint(st.Size)
	if typ == unix.S_IFDIR {
		size = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "type=%o perm=%o size=%s nlink=%d uid=%d gid=%d mtime=%d rdev=%d", typ>>12, st.Mode&07777, size,
		st.Nlink, st.Uid, st.Gid, st.Mtim.Nano(), st.Rdev)
	if typ == unix.S_IFLNK {
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " target=%q", t)
	}
	x, err := xattrs(p)
	if err != nil {
		return "", err
	}
	b.WriteString(" xattrs=" + x)
	if typ == unix.S_IFREG {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		h := md5.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		b.WriteString(" md5=" + hex.EncodeToString(h.Sum(nil)))
	}
	return b.String(), nil
}

// xattrs lists the user.* attributes with their values, and probes the
// names ls, cp and ACL tools ask for, which must be absent (ENODATA)
// rather than errors.
func xattrs(p string) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "", fmt.Errorf("llistxattr: %w", err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return "", fmt.Errorf("lgetxattr %s: %w", name, err)
		}
		out = append(out, name+"="+hex.EncodeToString(v[:m]))
	}
	sort.Strings(out)
	for _, name := range []string{"security.selinux", "system.posix_acl_access", "user.absent"} {
		if _, err := unix.Lgetxattr(p, name, buf); err != nil && err != unix.ENODATA && err != unix.ENOTSUP {
			return "", fmt.Errorf("lgetxattr %s: %w", name, err)
		}
	}
	return strings.Join(out, ","), nil
}
