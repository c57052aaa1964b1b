//go:build darwin || freebsd

package fuse

import "golang.org/x/sys/unix"

// directMountFlags: go-fuse mounts through mount_macfuse or mount_fusefs
// here, never with mount(2), so only the "ro" option applies.
const directMountFlags = 0

// errNoXattr is getxattr's error for a name that is not set.
const errNoXattr = unix.ENOATTR

// noOpendirCap is zero: zero-message directory opens are tested on Linux
// only, so every mount here opens directories.
const noOpendirCap uint64 = 0
