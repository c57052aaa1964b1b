// Package push copies roots from a store into a published layout
// (package layout): every object the roots need, only those the target
// lacks, verified on the way, in parallel; then the roots index, last.
package push

import (
	"context"
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
}

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
		var have []store.Root
		if old != nil {
			var err error
			if have, err = layout.DecodeIndex(old); err != nil {
				return nil, fmt.Errorf("existing index: %w", err)
			}
		}
		all, err := layout.MergeIndex(have, roots)
		if err != nil {
			return nil, err
		}
		return layout.EncodeIndex(all)
	})
	if err != nil {
		return rep, fmt.Errorf("push: index: %w", err)
	}
	return rep, nil
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

type object struct {
	kind layout.Kind
	hash hash.Hash
}

// pusher walks the roots' trees (listings and chunk lists, decoded and
// verified through Objects) and hands each object to workers that copy
// what the target lacks.
type pusher struct {
	o   *store.Objects
	src store.Source
	t   layout.Target

	mu   sync.Mutex
	seen map[object]struct{}

	jobs chan object
	rep  struct{ objects, present, sent, bytes atomic.Int64 }
}

func copyAll(ctx context.Context, o *store.Objects, t layout.Target, roots []store.Root, opt Options) (Report, error) {
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &pusher{o: o, src: o.Source(), t: t, seen: map[object]struct{}{}, jobs: make(chan object, 256)}
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
					fail(p.copy(ctx, j))
				}
			}
		}()
	}
	stopProgress := p.progress(opt.Progress, len(roots))
	go func() {
		defer close(p.jobs)
		for _, r := range roots {
			if err := p.walkDir(ctx, r.Top.Hash); err != nil {
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

// mark records that object x is taken care of; it reports false if it
// already was.
func (p *pusher) mark(x object) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[x]; ok {
		return false
	}
	p.seen[x] = struct{}{}
	p.rep.objects.Add(1)
	return true
}

func (p *pusher) send(ctx context.Context, x object) error {
	select {
	case p.jobs <- x:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// walkDir hands listing h and everything under it to the workers.
func (p *pusher) walkDir(ctx context.Context, h hash.Hash) error {
	if !p.mark(object{layout.Listing, h}) {
		return nil
	}
	d, err := p.o.Dir(ctx, h)
	if err != nil {
		return err
	}
	if err := p.send(ctx, object{layout.Listing, h}); err != nil {
		return err
	}
	for _, e := range d.Entries {
		switch {
		case e.Type == tree.TypeDir:
			err = p.walkDir(ctx, e.Hash)
		case e.Type == tree.TypeFile:
			err = p.walkFile(ctx, e.Hash)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// walkFile hands file h's chunk list and chunks to the workers.
func (p *pusher) walkFile(ctx context.Context, h hash.Hash) error {
	if !p.mark(object{layout.ChunkList, h}) {
		return nil
	}
	f, err := p.o.File(ctx, h)
	if err != nil {
		return err
	}
	if len(f.List.Chunks) != 1 || f.List.Chunks[0].Hash != h {
		if err := p.send(ctx, object{layout.ChunkList, h}); err != nil {
			return err
		}
	} else {
		p.rep.objects.Add(-1) // a one-chunk file is its chunk
	}
	for _, c := range f.List.Chunks {
		if p.mark(object{layout.Chunk, c.Hash}) {
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

// also copies a dependency of an object being copied, unless another
// worker has it in hand.
func (p *pusher) also(ctx context.Context, x object) error {
	if !p.mark(x) {
		return nil
	}
	return p.copy(ctx, x)
}

func (p *pusher) listing(ctx context.Context, h hash.Hash) ([]byte, error) {
	rec, err := p.src.Listing(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", h, err)
	}
	if _, err := p.o.Dir(ctx, h); err != nil {
		return nil, err
	}
	base, err := store.ListingBase(rec)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", h, err)
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
