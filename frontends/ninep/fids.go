package ninep

import (
	"sync/atomic"

	"github.com/hugelgupf/p9/linux"

	"github.com/spraydryfs/spraydryfs/frontends/report"
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

// DefaultMaxListed is the default bound on the directory entries the open
// directories of one connection keep between reads (measured: 200 bytes
// each, so 262,144 keep at most about 50 MB). Each open directory keeps its
// listing so that pages continue where the last ended; past the bound a
// directory reads its listing again for every page instead.
const DefaultMaxListed = 1 << 18

// fidCount counts the files (fids) one connection holds against its
// bound, and the entries their open listings keep. A file takes one slot
// when made and one more for each xattr fid p9 makes of it (they share
// the file and each close it once); every Close gives one back.
type fidCount struct {
	max  int64
	live atomic.Int64

	maxListed int64
	listed    atomic.Int64

	rep report.Reporter // the server's: fids are its open handles
}

// keepListing reserves room for a listing of n entries between reads, or
// reports that there is none.
func (c *fidCount) keepListing(n int) bool {
	if c.listed.Add(int64(n)) > c.maxListed {
		c.listed.Add(-int64(n))
		return false
	}
	return true
}

func (c *fidCount) dropListing(n int) { c.listed.Add(-int64(n)) }

// take reserves a slot, or fails with EMFILE when the connection holds
// its maximum.
func (c *fidCount) take() error {
	if c.live.Add(1) > c.max {
		c.live.Add(-1)
		return linux.EMFILE
	}
	c.rep.Handles(1)
	return nil
}

func (c *fidCount) release() {
	c.live.Add(-1)
	c.rep.Handles(-1)
}

// full reports whether the connection holds its maximum.
func (c *fidCount) full() bool { return c.live.Load() >= c.max }
