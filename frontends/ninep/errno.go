package ninep

import (
	"syscall"

	"github.com/hugelgupf/p9/linux"
)

// linuxErrno converts an errno of this platform (from backend.Errno) to
// the Linux number 9P2000.L carries: the two differ beyond the first few
// on macOS and FreeBSD, and entirely on Windows.
func linuxErrno(e syscall.Errno) linux.Errno {
	switch e {
	case 0:
		return 0
	case syscall.EIO:
		return linux.EIO
	case syscall.ENOENT:
		return linux.ENOENT
	case syscall.ENOTDIR:
		return linux.ENOTDIR
	case syscall.EISDIR:
		return linux.EISDIR
	case syscall.EINVAL:
		return linux.EINVAL
	case syscall.EACCES:
		return linux.EACCES
	case syscall.EINTR:
		return linux.EINTR
	}
	return linux.ExtractErrno(e) // p9's own per-platform mapping
}
