package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/layout"
)

// Remote is a remote's fetcher behind the cache: a layout.Fetcher, and a
// layout.Keeper for the Source over it. Objects come from the cache when
// it has them and from the remote otherwise; the roots index always comes
// from the remote, and from the last good copy kept in the cache when the
// remote cannot be reached. It is safe for concurrent use.
type Remote struct {
	c   *Cache
	f   layout.Fetcher
	id  string
	dir string // remotes/<id>/

	mu      sync.Mutex
	saved   []byte // the index as last written to dir
	offline bool   // the last index fetch failed and the copy was served
}

var _ layout.Keeper = (*Remote)(nil)

// Wrap puts the cache in front of remote f, whose address id (a URL
// without a password) names its roots index in the cache. A cache that
// cannot be written to is still read; what cannot be kept is warned about
// once.
func (c *Cache) Wrap(f layout.Fetcher, id string) *Remote {
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(c.dir, "remotes", hex.EncodeToString(sum[:8]))
	r := &Remote{c: c, f: f, id: id, dir: dir}
	err := os.MkdirAll(dir, 0o755)
	if b, rerr := os.ReadFile(filepath.Join(dir, "url")); err == nil && (rerr != nil || string(b) != id+"\n") {
		err = c.writeFile(filepath.Join(dir, "url"), []byte(id+"\n"))
	}
	if err != nil {
		c.warnWrite(err)
		return r
	}
	// The link makes remotes/<id> a layout of its own (-s reads it); a file
	// system without symbolic links only loses that.
	if _, err := os.Lstat(filepath.Join(dir, "objects")); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..", "..", "objects"), filepath.Join(dir, "objects")); err != nil {
			c.log.Debug("cache: no objects link", "dir", dir, "err", err)
		}
	}
	return r
}

// IndexPath returns where the remote's last good roots index is kept.
func (r *Remote) IndexPath() string { return filepath.Join(r.dir, layout.IndexKey) }

// Fetch implements layout.Fetcher. With fresh set an object is fetched
// from the remote, and the cached copy (which failed verification) is
// removed first.
func (r *Remote) Fetch(ctx context.Context, key string, limit int64, fresh bool) ([]byte, error) {
	if key == layout.IndexKey {
		return r.index(ctx, limit, fresh)
	}
	kind, h, err := layout.ParseKey(key)
	if err != nil { // not an object: nothing to cache
		return r.f.Fetch(ctx, key, limit, fresh)
	}
	k := objKey{kind, h}
	if fresh {
		r.c.remove(k)
	} else if b, ok := r.c.get(k, limit); ok {
		return b, nil
	}
	b, err := r.f.Fetch(ctx, key, limit, fresh)
	if err == nil {
		r.c.misses.Add(1)
		r.c.missBytes.Add(int64(len(b)))
	}
	return b, err
}

// Keep implements layout.Keeper.
func (r *Remote) Keep(key string, encode func() []byte) {
	if kind, h, err := layout.ParseKey(key); err == nil {
		r.c.keep(objKey{kind, h}, encode)
	}
}

// Holds implements layout.Keeper.
func (r *Remote) Holds(key string) bool {
	kind, h, err := layout.ParseKey(key)
	return err == nil && r.c.holds(objKey{kind, h})
}

// Drop implements layout.Keeper.
func (r *Remote) Drop(key string) {
	if kind, h, err := layout.ParseKey(key); err == nil {
		r.c.remove(objKey{kind, h})
	}
}

// KeepIndex implements layout.IndexKeeper: the index the Source accepted
// (decoded, trusted, no rollback) is kept. An index that is merely served
// is not: an untrusted or older one would replace the good copy.
func (r *Remote) KeepIndex(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if bytes.Equal(b, r.saved) || !r.c.startWrite() {
		return
	}
	defer r.c.writes.done()
	if err := r.c.writeFile(r.IndexPath(), b); err != nil {
		r.c.warnWrite(err)
		return
	}
	r.saved = bytes.Clone(b)
}

// SavedIndex implements layout.IndexKeeper.
func (r *Remote) SavedIndex() []byte {
	b, err := os.ReadFile(r.IndexPath())
	if err != nil {
		return nil
	}
	return b
}

// index fetches the roots index from the remote; if the remote cannot give
// one (a missing index is an answer, not an outage), the copy kept by
// KeepIndex is returned, with a warning once per outage.
func (r *Remote) index(ctx context.Context, limit int64, fresh bool) ([]byte, error) {
	b, err := r.f.Fetch(ctx, layout.IndexKey, limit, fresh)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if r.offline {
			r.c.log.Info("cache: the remote answers again", "remote", r.id)
			r.offline = false
		}
		return b, nil
	}
	if layout.IsNotFound(err) || ctx.Err() != nil {
		return nil, err
	}
	saved, rerr := os.ReadFile(r.IndexPath())
	if rerr != nil {
		return nil, err
	}
	if !r.offline {
		when := ""
		if fi, err := os.Stat(r.IndexPath()); err == nil {
			when = fi.ModTime().UTC().Format(time.RFC3339)
		}
		r.c.log.Warn("cache: the remote is unavailable; using its roots index kept in the cache (what is not cached fails)",
			"remote", r.id, "index_saved", when, "err", err)
		r.offline = true
	}
	r.saved = saved
	return saved, nil
}

// writeFile writes p atomically: a temporary file in tmp/, renamed.
func (c *Cache) writeFile(p string, data []byte) error {
	if err := layout.WriteAtomic(filepath.Join(c.dir, "tmp"), p, data, false); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}
