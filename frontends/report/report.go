// Package report is how frontends tell an operator's metrics what they
// serve, without depending on a metrics library: each frontend is given a
// Reporter (the command's Prometheus metrics, or Nop).
package report

import (
	"errors"
	"strconv"

	"github.com/spraydryfs/spraydryfs/backend"
)

// Reporter receives one frontend's events. It must be safe for
// concurrent use.
type Reporter interface {
	// Request counts a finished request or operation by its status: the
	// HTTP status code, or the errno name ("OK" for success).
	Request(status string)
	// Served counts n bytes of file content (or listings) sent.
	Served(n int64)
	// Corrupt counts an error wrapping backend.ErrCorrupt that reached
	// the frontend.
	Corrupt()
	// Handles changes the count of open handles by delta.
	Handles(delta int)
}

// Nop is a Reporter that reports nothing.
type Nop struct{}

// Request implements Reporter.
func (Nop) Request(string) {}

// Served implements Reporter.
func (Nop) Served(int64) {}

// Corrupt implements Reporter.
func (Nop) Corrupt() {}

// Handles implements Reporter.
func (Nop) Handles(int) {}

// Or returns r, or Nop if r is nil.
func Or(r Reporter) Reporter {
	if r == nil {
		return Nop{}
	}
	return r
}

// Failed reports err's corruption, if it is corruption.
func Failed(r Reporter, err error) {
	if errors.Is(err, backend.ErrCorrupt) {
		r.Corrupt()
	}
}

// linuxErrnos names the Linux errno numbers a 9P2000.L server answers
// with (9P carries Linux numbers whatever the host).
var linuxErrnos = map[uint32]string{
	1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 13: "EACCES",
	17: "EEXIST", 18: "EXDEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 24: "EMFILE",
	30: "EROFS", 34: "ERANGE", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY",
	40: "ELOOP", 61: "ENODATA", 95: "EOPNOTSUPP",
}

// LinuxErrno is the status of a 9P2000.L request answered with Linux
// errno n (Rlerror): its name, or its number.
func LinuxErrno(n uint32) string {
	if s, ok := linuxErrnos[n]; ok {
		return s
	}
	return strconv.FormatUint(uint64(n), 10)
}
