// Package cache is the persistent local cache in front of a remote store
// (HTTP, S3: any layout.Fetcher). The cache is itself a layout directory
// (layout.Dir): objects under objects/<kind>/ab/cdef…, bounded in bytes
// with least-recently-used eviction. Objects are content-addressed, so one
// cache serves every remote; each remote's last good roots index is kept
// apart, under remotes/<id>/, so that a reader started while its remote is
// down still has its roots:
//
//	objects/…                the objects, as in any layout
//	remotes/<id>/index.json  the remote's last good roots index
//	remotes/<id>/url         the remote's address (without a password)
//	remotes/<id>/objects     a link to ../../objects: -s remotes/<id> reads
//	                         what is cached of that remote
//	tmp/                     files being written (stale ones go after an hour)
//
// Only verified objects enter the cache. The bytes fetched from the remote
// are handed to the reader and not stored; store.Objects verifies what it
// decoded and tells the layout.Source (store.Keeper), which encodes the
// verified object again for Keep (layout.Keeper), and only then is it
// written. A pack or a tree fetched whole is kept whole, one file, once
// every member has been verified (layout.Source's bundles). Objects read
// back from the cache are verified again as always; one that fails is
// refetched with fresh set, and a fresh fetch bypasses the cache and
// removes the cached copy first (for a member, the pack or tree it came
// in).
//
// Several processes may share one cache directory. Files are written to
// tmp/ and renamed into place, so a reader sees a whole object or none;
// eviction removes files, and a reader that then misses fetches the object
// again. Nothing is synced: a copy that a crash damaged fails verification
// and is refetched. Memory holds one small record per cached object (its
// key, size and last use), built by a scan in the background when the
// cache opens (reads need no record: the file system is the index) and
// again before an eviction (at most once a minute), so that what other
// processes wrote counts too. Last use is kept in each file's mtime,
// updated at most every 10 minutes (touchEvery).
package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
)

// DefaultSize is the cache's default budget: 2 GiB.
const DefaultSize = 2 << 30

const (
	// block is the unit objects are counted in: a file system allocates
	// whole blocks, and most objects are a few KiB.
	block = 4096
	// lowWater is the share of the budget eviction brings the cache down
	// to, so that it does not run again at every object.
	lowWater = 0.9
	// touchEvery bounds how often a hit updates a file's mtime.
	touchEvery = 10 * time.Minute
	// staleAfter is the age at which a file in tmp/ is a killed writer's.
	staleAfter = time.Hour
	// rescanAfter is how old the last scan may be for an eviction to go
	// by the records alone (a scan of 100,000 objects took 0.9 s here).
	rescanAfter = time.Minute
)

// DefaultDir returns the default cache directory: spraydryfs under the
// user's cache directory ($XDG_CACHE_HOME, else ~/.cache, on Linux).
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w (give one with --cache-dir)", err)
	}
	return filepath.Join(d, "spraydryfs"), nil
}

// Options tune a Cache.
type Options struct {
	// Size is the budget in bytes (DefaultSize when zero), counted in
	// 4 KiB blocks per object as a file system allocates them.
	Size int64
	// Log receives warnings; nil is slog.Default.
	Log *slog.Logger
}

// Cache is a cache directory shared by the remotes that Wrap puts it in
// front of. It is safe for concurrent use.
type Cache struct {
	dir  string
	objs *layout.Dir
	max  int64
	low  int64
	log  *slog.Logger

	mu       sync.Mutex
	recs     map[objKey]record
	used     int64 // the records' blocks, in bytes
	evicting bool
	scanned  time.Time           // when the last scan ended
	gone     map[objKey]struct{} // removed while a scan runs (nil otherwise): not the scan's to keep
	scanning sync.Mutex          // one scan at a time

	stop    chan struct{}
	closed  bool           // under mu: keep writes nothing more
	bg      sync.WaitGroup // the scan, evictions and the writers
	writes  counter        // keeps queued or writing
	queue   chan pendingWrite
	pending atomic.Int64 // bytes queued

	hits, misses, kept, evicted atomic.Int64
	hitBytes, missBytes         atomic.Int64
	writeWarned                 atomic.Bool
}

// pendingWrite is an object kept, waiting for a writer.
type pendingWrite struct {
	k objKey
	b []byte
}

// Writes are queued to writers goroutines, so that a reader never waits
// on the file system for what it keeps (a file created and renamed per
// object: a cold ls -lR of 4,000 listings through the cache took 6.5-8.4 s
// when each was written on the reading goroutine, 1.2-1.5 s without the
// cache). What does not fit in pendingMax bytes is not kept.
const (
	writers    = 2
	pendingMax = 16 << 20
)

// objKey names a cached object: a kind and an address.
type objKey struct {
	kind layout.Kind
	h    hash.Hash
}

func (k objKey) key() string { return layout.Key(k.kind, k.h) }

// record is what memory holds of a cached object.
type record struct {
	size  int64 // bytes on disk, in whole blocks
	used  int64 // last use, Unix nanoseconds
	touch int64 // the file's mtime as last set or seen, Unix nanoseconds
}

// Stats are a cache's counts since it was opened, and its size now.
type Stats struct {
	Hits, Misses        int64 // object reads served from the cache, and not
	HitBytes, MissBytes int64 // their bytes (misses: as fetched from the remote)
	Kept, Evicted       int64 // objects written, and removed to stay in budget
	Objects, Bytes      int64 // what the cache holds as far as known (Bytes in blocks)
	Limit               int64 // the budget
}

// Open opens (creating it) the cache in dir.
func Open(dir string, opt Options) (*Cache, error) {
	if opt.Size <= 0 {
		opt.Size = DefaultSize
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	for _, d := range []string{"objects", "tmp", "remotes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	c := &Cache{dir: dir, objs: layout.NewDir(dir), max: opt.Size, low: int64(float64(opt.Size) * lowWater),
		log: opt.Log, recs: map[objKey]record{}, stop: make(chan struct{}), queue: make(chan pendingWrite, 4096)}
	q := c.queue // Close sets the field to nil
	for range writers {
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			for w := range q {
				c.write(w.k, w.b)
				c.pending.Add(-int64(len(w.b)))
				c.writes.done()
			}
		}()
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.scan()
		c.evictIfFull()
	}()
	return c, nil
}

// Close stops the cache's background work and waits for writes under way;
// objects already written stay, and nothing more is written.
func (c *Cache) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
	wasOpen := c.queue != nil
	c.mu.Unlock()
	c.writes.wait()
	c.mu.Lock()
	if wasOpen && c.queue != nil {
		close(c.queue) // no keep sends once closed and drained
		c.queue = nil
	}
	c.mu.Unlock()
	c.bg.Wait()
	return nil
}

// Flush waits until every object kept so far is written.
func (c *Cache) Flush() { c.writes.wait() }

// Stats returns the counts so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	n, used := int64(len(c.recs)), c.used
	c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), HitBytes: c.hitBytes.Load(), MissBytes: c.missBytes.Load(),
		Kept: c.kept.Load(), Evicted: c.evicted.Load(), Objects: n, Bytes: used, Limit: c.max}
}

func blocks(n int) int64 { return (int64(n) + block - 1) / block * block }

func (c *Cache) path(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// get returns cached object k, or false on a miss (a damaged or unreadable
// copy is removed and is a miss).
func (c *Cache) get(k objKey, limit int64) ([]byte, bool) {
	key := k.key()
	b, err := readObject(c.path(key), limit)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: cannot read an object; fetching it from the remote", "object", key, "err", err)
			c.remove(k)
		}
		return nil, false
	}
	c.hits.Add(1)
	c.hitBytes.Add(int64(len(b)))
	now := time.Now().UnixNano()
	c.mu.Lock()
	r, known := c.recs[k]
	if !known {
		r.size = blocks(len(b))
		c.used += r.size
	}
	r.used = now
	touch := now-r.touch > int64(touchEvery)
	if touch {
		r.touch = now
	}
	c.recs[k] = r
	c.mu.Unlock()
	if touch { // the last use other processes see, and the next scan
		t := time.Unix(0, now)
		os.Chtimes(c.path(key), t, t)
	}
	return b, true
}

// readObject reads the object file at p, of at most limit bytes, in one
// read (layout.Dir's Fetch grows its buffer as it reads).
func readObject(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %d bytes, more than %d, or not a file", p, fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// holds reports whether object k is cached.
func (c *Cache) holds(k objKey) bool {
	c.mu.Lock()
	_, ok := c.recs[k]
	scanned := !c.scanned.IsZero()
	c.mu.Unlock()
	if ok || scanned {
		// After a scan the records are the cache, but for what other
		// processes wrote since: a false no costs a write or a probe.
		return ok
	}
	_, err := os.Lstat(c.path(k.key()))
	return err == nil
}

// keep queues object k to be written unless it is cached.
func (c *Cache) keep(k objKey, encode func() []byte) {
	if c.holds(k) {
		return
	}
	b := encode()
	if blocks(len(b)) > c.max/8 { // it would push out too much else
		return
	}
	if c.pending.Add(int64(len(b))) > pendingMax {
		c.pending.Add(-int64(len(b)))
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.pending.Add(-int64(len(b)))
		return
	}
	c.writes.add()
	select {
	case c.queue <- pendingWrite{k, b}:
	default:
		c.writes.done()
		c.pending.Add(-int64(len(b)))
	}
	c.mu.Unlock()
}

// write writes object k (a writer's work).
func (c *Cache) write(k objKey, b []byte) {
	size := blocks(len(b))
	if err := c.objs.Write(k.key(), b); err != nil {
		c.warnWrite(err)
		return
	}
	now := time.Now().UnixNano()
	c.mu.Lock()
	if _, ok := c.recs[k]; ok { // another reader kept it meanwhile
		c.mu.Unlock()
		return
	}
	c.recs[k] = record{size: size, used: now, touch: now}
	c.used += size
	full := c.used > c.max
	c.mu.Unlock()
	c.kept.Add(1)
	if full {
		c.evictIfFull()
	}
}

// warnWrite reports, once, that the cache cannot be written to.
func (c *Cache) warnWrite(err error) {
	if !c.writeWarned.Swap(true) {
		c.log.Warn("cache: cannot write; reading on without keeping what is fetched", "dir", c.dir, "err", err)
	}
}

// remove drops object k from the cache.
func (c *Cache) remove(k objKey) {
	if err := os.Remove(c.path(k.key())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("cache: cannot remove an object", "object", k.key(), "err", err)
	}
	c.mu.Lock()
	if r, ok := c.recs[k]; ok {
		c.used -= r.size
		delete(c.recs, k)
	}
	if c.gone != nil {
		c.gone[k] = struct{}{}
	}
	c.mu.Unlock()
}

// scan reads the sizes and mtimes of every cached object into the records,
// and removes killed writers' temporary files. Objects written while it
// runs keep their records.
func (c *Cache) scan() {
	c.scanning.Lock()
	defer c.scanning.Unlock()
	start := time.Now().UnixNano()
	c.mu.Lock()
	c.gone = map[objKey]struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.gone = nil
		c.mu.Unlock()
	}()
	found := map[objKey]record{}
	objects := filepath.Join(c.dir, "objects")
	kinds, _ := os.ReadDir(objects)
	for _, kd := range kinds {
		fans, _ := os.ReadDir(filepath.Join(objects, kd.Name()))
		for _, fan := range fans {
			select {
			case <-c.stop:
				return
			default:
			}
			dir := filepath.Join(objects, kd.Name(), fan.Name())
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				kind, h, err := layout.ParseKey("objects/" + kd.Name() + "/" + fan.Name() + "/" + e.Name())
				if err != nil {
					continue
				}
				fi, err := e.Info()
				if err != nil || !fi.Mode().IsRegular() {
					continue
				}
				t := fi.ModTime().UnixNano()
				found[objKey{kind, h}] = record{size: blocks(int(fi.Size())), used: t, touch: t}
			}
		}
	}
	c.mu.Lock()
	for k := range c.gone { // listed before it was removed
		delete(found, k)
	}
	for k, r := range c.recs {
		f, ok := found[k]
		switch {
		case ok:
			f.used = max(f.used, r.used)
			f.touch = max(f.touch, r.touch)
			found[k] = f
		case r.used >= start: // written or read during the scan
			found[k] = r
		}
	}
	c.recs = found
	c.used = 0
	for _, r := range found {
		c.used += r.size
	}
	c.scanned = time.Now()
	c.mu.Unlock()
	c.removeStale()
}

// removeStale removes temporary files that killed writers left behind.
func (c *Cache) removeStale() {
	tmps := filepath.Join(c.dir, "tmp")
	ents, _ := os.ReadDir(tmps)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			os.Remove(filepath.Join(tmps, e.Name()))
		}
	}
}

// evictIfFull starts an eviction in the background unless one is running.
func (c *Cache) evictIfFull() {
	c.mu.Lock()
	if c.evicting || c.closed || c.used <= c.max {
		c.mu.Unlock()
		return
	}
	c.evicting = true
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		c.evict()
		c.mu.Lock()
		c.evicting = false
		c.mu.Unlock()
	}()
}

// evict scans the cache unless it did lately (other processes write to it
// too) and removes the least recently used objects until it is down to
// the low-water mark.
func (c *Cache) evict() {
	c.mu.Lock()
	stale := time.Since(c.scanned) > rescanAfter
	c.mu.Unlock()
	if stale {
		c.scan()
	}
	type aged struct {
		k    objKey
		used int64
	}
	c.mu.Lock()
	if c.used <= c.max {
		c.mu.Unlock()
		return
	}
	over := c.used - c.low
	all := make([]aged, 0, len(c.recs))
	for k, r := range c.recs {
		all = append(all, aged{k, r.used})
	}
	c.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].used < all[j].used })
	var freed int64
	n := 0
	for _, a := range all {
		if freed >= over {
			break
		}
		c.mu.Lock()
		r, ok := c.recs[a.k]
		c.mu.Unlock()
		if !ok || r.used != a.used { // used since the sort: keep it
			continue
		}
		c.remove(a.k)
		freed += r.size
		n++
	}
	c.evicted.Add(int64(n))
	c.log.Debug("cache: evicted", "objects", n, "bytes", freed, "dir", c.dir)
}

// startWrite reports whether the cache is open, and if so counts a write
// that Close waits for (the caller then calls c.writes.done).
func (c *Cache) startWrite() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.writes.add()
	return true
}

// counter counts writes under way. Unlike a sync.WaitGroup, it may be
// added to while another goroutine waits for it to reach zero.
type counter struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
}

func (w *counter) add() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
}

func (w *counter) done() {
	w.mu.Lock()
	if w.n--; w.n == 0 && w.cond.L != nil {
		w.cond.Broadcast()
	}
	w.mu.Unlock()
}

// wait returns once no write is under way.
func (w *counter) wait() {
	w.mu.Lock()
	if w.cond.L == nil {
		w.cond.L = &w.mu
	}
	for w.n > 0 {
		w.cond.Wait()
	}
	w.mu.Unlock()
}
