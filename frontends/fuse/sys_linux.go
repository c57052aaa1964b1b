package fuse

import (
	"syscall"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
)

// directMountFlags make a direct mount(2) read-only, without setuid and
// device files, as the "ro" option and default_permissions do for
// fusermount3.
const directMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV

// errNoXattr is getxattr's error for a name that is not set.
const errNoXattr = syscall.ENODATA

// noOpendirCap is the capability of opening directories without a
// message (Linux 5.1 on), which noOpendir relies on.
const noOpendirCap uint64 = gofuse.CAP_NO_OPENDIR_SUPPORT
