package ninep

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/hugelgupf/p9/linux"

	"github.com/spraydryfs/spraydryfs/backend"
)

// TestLinuxErrno checks that what backend.Errno returns reaches 9P clients
// as Linux numbers on every platform.
func TestLinuxErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want linux.Errno
	}{
		{nil, 0},
		{fmt.Errorf("chunk: %w", backend.ErrCorrupt), linux.EIO},
		{fs.ErrNotExist, linux.ENOENT},
		{backend.ErrNotDir, linux.ENOTDIR},
		{backend.ErrIsDir, linux.EISDIR},
		{fs.ErrInvalid, linux.EINVAL},
		{fs.ErrPermission, linux.EACCES},
		{context.Canceled, linux.EINTR},
		{errors.New("anything else"), linux.EIO},
	} {
		if got := linuxErrno(backend.Errno(c.err)); got != c.want {
			t.Errorf("%v: %d, want %d", c.err, got, c.want)
		}
	}
}
