package ninep

import (
	"sync/atomic"

	"github.com/hugelgupf/p9/linux"
)

// DefaultMaxFids is the default bound on the fids one connection holds.
// p9 keeps every fid a client never clunks, with its walk path and our
// node (measured: 514 bytes of heap per walked name, 105 per clone; 631 MB
// of RSS for 1,000,000), so without a bound a hostile client grows the
// server without limit. Linux's v9fs holds one fid per cached dentry; with
// cache=loose it keeps them until the guest's dentry cache shrinks, so a
// guest walking a large tree needs many. 262,144 covers a guest caching a
// quarter of a million names (its own dentries and inodes for them take
// about 200 MB) and bounds one connection at about 165 MB; Options.MaxFids
// (serve 9p --max-fids) changes it.
const DefaultMaxFids = 1 << 18

// fidCount counts the files (fids) one connection holds against its
// bound. A file takes one slot when made and one more for each xattr fid
// p9 makes of it (they share the file and each close it once); every
// Close gives one back.
type fidCount struct {
	max  int64
	live atomic.Int64
}

// take reserves a slot, or fails with EMFILE when the connection holds
// its maximum.
func (c *fidCount) take() error {
	if c.live.Add(1) > c.max {
		c.live.Add(-1)
		return linux.EMFILE
	}
	return nil
}

func (c *fidCount) release() { c.live.Add(-1) }

// full reports whether the connection holds its maximum.
func (c *fidCount) full() bool { return c.live.Load() >= c.max }
