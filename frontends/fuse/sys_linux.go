package fuse

import "syscall"

// directMountFlags make a direct mount(2) read-only, without setuid and
// device files, as the "ro" option and default_permissions do for
// fusermount3.
const directMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV

// errNoXattr is getxattr's error for a name that is not set.
const errNoXattr = syscall.ENODATA
