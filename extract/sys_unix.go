//go:build !windows

package extract

import (
	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// windowsNames: Unix file names hold anything but '/' and NUL.
const windowsNames = false

// unsupported names the entry types this platform cannot create: none.
func unsupported(tree.Type) string { return "" }

func mkfifo(path string) error { return unix.Mkfifo(path, 0o600) }

// mknod creates a device node from a stored (Linux-encoded) device number.
func mknod(path string, block bool, rdev uint64) error {
	kind := uint32(unix.S_IFCHR)
	if block {
		kind = unix.S_IFBLK
	}
	return callMknod(unix.Mknod, path, kind|0o600, unix.Mkdev(tree.Major(rdev), tree.Minor(rdev)))
}

// callMknod calls mknod(2) whose device argument is an int on Linux and
// macOS and a uint64 on FreeBSD.
func callMknod[D int | uint64](mknod func(string, uint32, D) error, path string, mode uint32, dev uint64) error {
	return mknod(path, mode, D(dev))
}

func lchown(path string, uid, gid uint32) error { return unix.Lchown(path, int(uid), int(gid)) }

func lsetxattr(path, name string, value []byte) error { return unix.Lsetxattr(path, name, value, 0) }

func chmod(path string, mode uint32) error { return unix.Chmod(path, mode) }

// setMtime sets path's access and modification times, not following a
// symlink.
func setMtime(path string, ns int64) error {
	ts := unix.NsecToTimespec(ns)
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// symlinkDenied reports whether a symlink could not be created for lack of
// a right the user may not have: never on Unix.
func symlinkDenied(error) bool { return false }
