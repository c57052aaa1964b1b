//go:build !windows

package report

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errno is the status of an operation that ended with e: "OK" for 0, else
// the errno's name ("ENOENT"), or its number if it has none.
func Errno(e syscall.Errno) string {
	if e == 0 {
		return "OK"
	}
	if s := unix.ErrnoName(e); s != "" {
		return s
	}
	return strconv.Itoa(int(e))
}
