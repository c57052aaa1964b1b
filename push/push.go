// Package push copies roots from a store into a published layout
// (package layout): every object the roots need, only those the target
// lacks, verified on the way, in parallel; then the roots index, last.
package push

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Options tune Run.
type Options struct {
	// Workers copy objects in parallel (default 8).
	Workers int
	// Progress, if set, is called about ten times a second and at the end.
	Progress func(Report)
	// Sign, if set, signs the merged index with this key. The target's
	// index must then be absent or signed by this key or one of Trust:
	// re-signing roots nobody trusted signed would vouch for them.
	Sign ed25519.PrivateKey
	// Trust are other keys whose signature on the target's index is
	// accepted by a signing push.
	Trust []ed25519.PublicKey
	// TakeOver lets a push replace an index it would refuse: sign one that
	// is unsigned or signed by an unknown key, or (without Sign) replace a
	// signed index by an unsigned one.
	TakeOver bool
	// NoPacks sends no packs (layout.BuildPack) and no trees
	// (layout.BuildTree): each small file and each listing is then one
	// request for a cold reader, and the layout is that much smaller.
	NoPacks bool
}

// ErrIndexRefused reports a push that would sign an index it cannot vouch
// for, or drop the signature of a signed one (see Options.TakeOver).
var ErrIndexRefused = errors.New("the target's index is refused")

// Report counts what a push did.
type Report struct {
	Roots   int
	Objects int64 // objects the roots need
	Present int64 // of which the target had already
	Sent    int64 // of which were written
	Bytes   int64 // bytes written
	Done    bool  // every object is there (the index is next)
}

// Run copies roots and every object they need from o to t, then merges
// the roots into t's index. Objects already in t are not read or sent;
// every object sent is verified against its address first. A run that is
// killed leaves the index as it was; running it again sends what is
// missing.
func Run(ctx context.Context, o *store.Objects, t layout.Target, roots []store.Root, opt Options) (Report, error) {
	rep, err := copyAll(ctx, o, t, roots, opt)
	if err != nil {
		return rep, err
	}
	err = t.UpdateIndex(ctx, func(old []byte) ([]byte, error) {
		var have layout.Index
		if old != nil {
			var err error
			if have, err = layout.ReadIndex(old, nil); err != nil {
				return nil, fmt.Errorf("existing index: %w", err)
			}
			if err := opt.accepts(have); err != nil {
				return nil, err
			}
		}
		all, err := layout.MergeIndex(have.Roots, roots)
		if err != nil {
			return nil, err
		}
		if opt.Sign == nil {
			return layout.EncodeIndex(all)
		}
		return layout.SignIndex(all, publishedAfter(have.Published, time.Now()), opt.Sign)
	})
	if err != nil {
		return rep, fmt.Errorf("push: index: %w", err)
	}
	return rep, nil
}

// accepts checks that the target's existing index x may be merged into
// the index this push writes.
func (opt Options) accepts(x layout.Index) error {
	if opt.TakeOver {
		return nil
	}
	switch {
	case opt.Sign == nil && x.Signer != nil:
		return fmt.Errorf("%w: it is signed (by %s), and this push does not sign: give the secret key with --sign, or --take-over to publish it unsigned",
			ErrIndexRefused, layout.FormatPublicKey(x.Signer))
	case opt.Sign == nil:
		return nil
	case x.Signer == nil:
		return fmt.Errorf("%w: it is not signed, so signing it would vouch for roots nobody signed: check them and push again with --take-over",
			ErrIndexRefused)
	case !x.SignedBy(append([]ed25519.PublicKey{opt.Sign.Public().(ed25519.PublicKey)}, opt.Trust...)):
		return fmt.Errorf("%w: it is signed by %s, neither the signing key nor a trusted one: give that key with --trust to keep its roots, or --take-over",
			ErrIndexRefused, layout.FormatPublicKey(x.Signer))
	}
	return nil
}

// publishedAfter is the publication time of an index replacing one
// published at prev: now, unless the clock says prev is not earlier.
func publishedAfter(prev, now time.Time) time.Time {
	if !now.After(prev) {
		return prev.Add(time.Nanosecond)
	}
	return now
}

// Verify reads, decodes and verifies every object roots need from o, as
// Run would before sending them, and sends nothing.
func Verify(ctx context.Context, o *store.Objects, roots []store.Root, opt Options) (Report, error) {
	return copyAll(ctx, o, discard{}, roots, opt)
}

// discard is a target that has nothing and keeps nothing.
type discard struct{}

func (discard) Has(context.Context, string) (bool, error)                       { return false, nil }
func (discard) Put(context.Context, string, []byte) error                       { return nil }
func (discard) UpdateIndex(context.Context, func([]byte) ([]byte, error)) error { return nil }
func (discard) Published() bool                                                 { return false }

type object struct {
	kind layout.Kind
	hash hash.Hash
}

// pusher walks the roots' trees (listings and chunk lists, decoded and
// verified through Objects) and hands each object to workers that copy
// what the target lacks. An object is put only after the objects it
// depends on (references, delta bases, dictionaries), so a target that
// checks them (a store file) accepts it.
type pusher struct {
	o   *store.Objects
	src store.Source
	t   layout.Target
	// published: the target is a layout, which readers fetch object by
	// object (not a store file): it takes packs, and listings whole, so
	// that a cold reader makes one request per listing, not one per step
	// of its delta chain.
	published bool
	// noPacks: the options or the target want no packs.
	noPacks bool

	mu     sync.Mutex
	walked map[object]struct{} // listings and files the walk has entered
	copies map[object]*copying // objects handed to workers or copied

	jobs chan object
	rep  struct{ objects, present, sent, bytes atomic.Int64 }
}

// copying is the state of one object's copy: queued until a worker (or a
// dependant that needs it first) takes it, then done is closed when it is
// in the target.
type copying struct {
	taken bool
	done  chan struct{}
}

func copyAll(ctx context.Context, o *store.Objects, t layout.Target, roots []store.Root, opt Options) (Report, error) {
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w, ok := t.(interface{ Published() bool })
	published := !ok || w.Published()
	p := &pusher{o: o, src: o.Source(), t: t, published: published, noPacks: opt.NoPacks || !published, walked: map[object]struct{}{}, copies: map[object]*copying{}, jobs: make(chan object, 256)}
	fail := func(err error) {
		if err != nil {
			cancel(err)
		}
	}
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range p.jobs {
				if ctx.Err() == nil {
					fail(p.take(ctx, j, false))
				}
			}
		}()
	}
	stopProgress := p.progress(opt.Progress, len(roots))
	go func() {
		defer close(p.jobs)
		for _, r := range newestFirst(roots) {
			shortcuts := r.newest && !p.noPacks
			if shortcuts && p.queue(object{layout.Tree, r.Top.Hash}) {
				if err := p.send(ctx, object{layout.Tree, r.Top.Hash}); err != nil {
					return
				}
			}
			if err := p.walkDir(ctx, r.Top.Hash, shortcuts); err != nil {
				fail(fmt.Errorf("root %s: %w", r.ID(), err))
				return
			}
		}
	}()
	wg.Wait()
	err := context.Cause(ctx)
	rep := p.report(len(roots), err == nil)
	stopProgress(rep)
	if err != nil {
		return rep, fmt.Errorf("push: %w", err)
	}
	return rep, nil
}

func (p *pusher) report(roots int, done bool) Report {
	return Report{Roots: roots, Objects: p.rep.objects.Load(), Present: p.rep.present.Load(),
		Sent: p.rep.sent.Load(), Bytes: p.rep.bytes.Load(), Done: done}
}

// progress calls f every 100 ms until the returned function is called
// with the final report.
func (p *pusher) progress(f func(Report), roots int) func(Report) {
	if f == nil {
		return func(Report) {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				f(p.report(roots, false))
			}
		}
	}()
	return func(r Report) {
		close(stop)
		wg.Wait()
		f(r)
	}
}

// enter records that the walk reached listing or file x; it reports
// false if it had.
func (p *pusher) enter(x object) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.walked[x]; ok {
		return false
	}
	p.walked[x] = struct{}{}
	return true
}

// entered reports whether the walk has reached listing or file x.
func (p *pusher) entered(x object) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.walked[x]
	return ok
}

// wholeListings reports whether the target takes a delta listing only
// with its base's subtree (see StoreTarget.WholeListings).
func (p *pusher) wholeListings() bool {
	w, ok := p.t.(interface{ WholeListings() bool })
	return ok && w.WholeListings()
}

// queue records object x as needed; it reports false if it already was
// (queued, being copied or copied).
func (p *pusher) queue(x object) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.copies[x]; ok {
		return false
	}
	p.copies[x] = &copying{done: make(chan struct{})}
	p.rep.objects.Add(1)
	return true
}

// take copies object x unless another worker has taken it. A worker
// (wait false) skips an object taken already; a dependant (wait true)
// waits until it is in the target, or takes it itself if it is only
// queued, so that workers never all wait on queued objects.
func (p *pusher) take(ctx context.Context, x object, wait bool) error {
	p.mu.Lock()
	c, ok := p.copies[x]
	if !ok {
		c = &copying{done: make(chan struct{})}
		p.copies[x] = c
		p.rep.objects.Add(1)
	}
	mine := !c.taken
	c.taken = true
	p.mu.Unlock()
	if mine {
		err := p.copy(ctx, x)
		if err == nil {
			close(c.done)
		}
		return err
	}
	if !wait {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (p *pusher) send(ctx context.Context, x object) error {
	select {
	case p.jobs <- x:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// rootWalk is a root to walk, and whether it is the newest of its name
// that this push sends.
type rootWalk struct {
	store.Root
	newest bool
}

// newestFirst orders the roots to walk: the newest of each name first, so
// that the listings they share with older versions are walked from them.
func newestFirst(roots []store.Root) []rootWalk {
	newest := map[string]int{}
	for i, r := range roots {
		if j, ok := newest[r.Name]; !ok || r.Created.After(roots[j].Created) {
			newest[r.Name] = i
		}
	}
	var first, rest []rootWalk
	for i, r := range roots {
		if newest[r.Name] == i {
			first = append(first, rootWalk{r, true})
		} else {
			rest = append(rest, rootWalk{r, false})
		}
	}
	return append(first, rest...)
}

// walkDir hands listing h and everything under it to the workers, with
// a pack for each listing that has one if packs is set.
func (p *pusher) walkDir(ctx context.Context, h hash.Hash, packs bool) error {
	if !p.enter(object{layout.Listing, h}) {
		return nil
	}
	d, err := p.o.Dir(ctx, h)
	if err != nil {
		return err
	}
	if p.queue(object{layout.Listing, h}) {
		if err := p.send(ctx, object{layout.Listing, h}); err != nil {
			return err
		}
	}
	if packs && layout.HasPack(d) && p.queue(object{layout.Pack, h}) {
		if err := p.send(ctx, object{layout.Pack, h}); err != nil {
			return err
		}
	}
	for i := range d.Entries {
		e := &d.Entries[i]
		switch {
		case e.Type == tree.TypeDir:
			err = p.walkDir(ctx, e.Hash, packs)
		case e.Type == tree.TypeFile:
			err = p.walkFile(ctx, store.ListedEntry(d, e))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// walkFile hands file l's chunk list and chunks to the workers.
func (p *pusher) walkFile(ctx context.Context, l store.Listed) error {
	h := l.Hash
	if !p.enter(object{layout.ChunkList, h}) {
		return nil
	}
	f, err := p.o.ListedFile(ctx, l)
	if err != nil {
		return err
	}
	// A one-chunk file has no list: it is its chunk.
	if len(f.List.Chunks) != 1 || f.List.Chunks[0].Hash != h {
		if p.queue(object{layout.ChunkList, h}) {
			if err := p.send(ctx, object{layout.ChunkList, h}); err != nil {
				return err
			}
		}
	}
	for _, c := range f.List.Chunks {
		if p.queue(object{layout.Chunk, c.Hash}) {
			if err := p.send(ctx, object{layout.Chunk, c.Hash}); err != nil {
				return err
			}
		}
	}
	return nil
}

// copy writes object x to the target unless it is there, verified, and
// with the objects it depends on (references, delta bases, dictionary).
func (p *pusher) copy(ctx context.Context, x object) error {
	key := layout.Key(x.kind, x.hash)
	ok, err := p.t.Has(ctx, key)
	if err != nil {
		return err
	}
	if ok {
		p.rep.present.Add(1)
		return nil
	}
	var data []byte
	switch x.kind {
	case layout.Listing:
		data, err = p.listing(ctx, x.hash)
	case layout.ChunkList:
		data, err = p.chunkList(ctx, x.hash)
	case layout.Chunk:
		data, err = p.chunk(ctx, x.hash)
	case layout.Dict:
		data, err = p.dict(ctx, x.hash)
	case layout.Pack:
		data, err = p.pack(ctx, x.hash)
	case layout.Tree:
		data, err = layout.BuildTree(ctx, p.o, x.hash)
	}
	if err != nil {
		return err
	}
	if err := p.t.Put(ctx, key, data); err != nil {
		return err
	}
	p.rep.sent.Add(1)
	p.rep.bytes.Add(int64(len(data)))
	return nil
}

// also copies a dependency of an object being copied, or waits for the
// worker copying it, so that it is in the target before its dependant.
func (p *pusher) also(ctx context.Context, x object) error { return p.take(ctx, x, true) }

func (p *pusher) listing(ctx context.Context, h hash.Hash) ([]byte, error) {
	if p.published {
		rec, _, err := layout.WholeRecord(ctx, p.o, h)
		return layout.EncodeListing(h, rec), err
	}
	rec, err := p.src.Listing(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", h, err)
	}
	d, err := p.o.Dir(ctx, h)
	if err != nil {
		return nil, err
	}
	base, err := store.ListingBase(rec)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", h, err)
	}
	if !base.IsZero() && p.wholeListings() && !p.entered(object{layout.Listing, base}) {
		enc, err := d.Encode()
		if err != nil {
			return nil, fmt.Errorf("directory %s: %w", h, err)
		}
		rec, base = store.PackListing(enc), hash.Zero
	}
	if !base.IsZero() {
		if err := p.also(ctx, object{layout.Listing, base}); err != nil {
			return nil, err
		}
	}
	return layout.EncodeListing(h, rec), nil
}

func (p *pusher) chunkList(ctx context.Context, h hash.Hash) ([]byte, error) {
	rec, err := p.src.ChunkList(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", h, err)
	}
	if rec.List == nil {
		return nil, fmt.Errorf("%w: file %s has no chunk list", store.ErrCorrupt, h)
	}
	return layout.EncodeChunkList(h, rec), nil
}

func (p *pusher) chunk(ctx context.Context, h hash.Hash) ([]byte, error) {
	f, err := p.src.Frame(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", h, err)
	}
	if _, err := p.o.Chunk(ctx, h); err != nil {
		return nil, err
	}
	for _, r := range f.Refs {
		if err := p.also(ctx, object{layout.Chunk, r}); err != nil {
			return nil, err
		}
	}
	if !f.Dict.IsZero() {
		if err := p.also(ctx, object{layout.Dict, f.Dict}); err != nil {
			return nil, err
		}
	}
	return layout.EncodeChunk(h, f), nil
}

// pack returns listing h's pack, its members verified. They are sent on
// their own too, by the walk.
func (p *pusher) pack(ctx context.Context, h hash.Hash) ([]byte, error) {
	d, err := p.o.Dir(ctx, h)
	if err != nil {
		return nil, err
	}
	return layout.BuildPack(ctx, p.o, h, d, func(ctx context.Context, c hash.Hash) (store.Frame, error) {
		if _, err := p.o.Chunk(ctx, c); err != nil {
			return store.Frame{}, err
		}
		return p.src.Frame(ctx, c)
	})
}

func (p *pusher) dict(ctx context.Context, h hash.Hash) ([]byte, error) {
	data, err := p.src.Dict(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("dictionary %s: %w", h, err)
	}
	if hash.Sum(data) != h {
		return nil, fmt.Errorf("%w: dictionary %s does not match its hash", store.ErrCorrupt, h)
	}
	return layout.EncodeDict(h, data), nil
}
