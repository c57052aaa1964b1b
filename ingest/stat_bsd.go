//go:build darwin || freebsd

package ingest

import "golang.org/x/sys/unix"

// errNoXattr is getxattr's error for a name that is not set.
const errNoXattr = unix.ENOATTR
