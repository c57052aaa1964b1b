package report

import (
	"strconv"
	"syscall"
)

// Errno is the status of an operation that ended with e: "OK" for 0, else
// its number (Windows has no errno names).
func Errno(e syscall.Errno) string {
	if e == 0 {
		return "OK"
	}
	return strconv.Itoa(int(e))
}
