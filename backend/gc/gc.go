// Package gc collects a store's garbage: it marks what the live roots need
// and sweeps everything else, while mounts, servers and ingests keep
// running.
//
// Mark walks every root (with walk) and marks the listings, chunk lists
// and chunks below it. A live listing or chunk that is delta-coded against
// a dead one (its base or reference belongs only to removed roots) is
// re-dried first: against the nearest live object of its chain, or alone,
// whichever is smaller, so that the dead one can go (Options.Keep keeps
// such references instead). Trained dictionaries are all kept: they are
// named, and `dicts rm` removes them.
//
// Sweep deletes the dead objects in batches, each its own transaction that
// leaves a store passing check: all dead listings first (in one), then
// chunk lists, then chunks, dependants before their references. Each
// batch first spares what roots committed since the mark need, and runs
// only while no ingest holds a lease (see store.Lease): while one does,
// the sweep waits. A killed collection leaves a consistent store, and
// the next run frees the rest. Last, where the store has auto_vacuum,
// chunk data left on sparse pages is moved off them (store.Defrag), the
// tables keyed by hash that the deletions left part empty are rebuilt
// (store.Repack), and the freed pages go back to the file system
// (store.Shrink).
package gc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/walk"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// Options tune Collect.
type Options struct {
	// DryRun marks and reports what would be freed, and changes nothing.
	DryRun bool
	// Keep keeps dead references of live delta chunks (and their chains)
	// instead of re-drying the live chunks. Listings are always re-packed:
	// a dead base would keep its whole subtree.
	Keep bool
	// Level is the zstd level of re-dried chunks; zero: the default.
	Level chunk.Level
	// MaxDepth bounds the reference chains of re-dried chunks; zero:
	// ingest.DefaultMaxDepth.
	MaxDepth int
	// RepackLimit is the largest table (in bytes of its pages) that is
	// rebuilt when deletions left it part empty: the rebuild holds the
	// write lock while it copies the table (on the gomod store, 55 MiB
	// took 0.25 s). Zero: DefaultRepackLimit.
	RepackLimit int64
	// NoShrink leaves freed pages in the file (for a VACUUM after).
	// Otherwise a store with auto_vacuum is defragmented and shrunk.
	NoShrink bool
	// Progress is told the phase ("mark", "re-dry", "sweep",
	// "defragment", "repack", "shrink"), items done and the phase's total.
	Progress func(phase string, done, total int64)
	// Wait is called when the sweep waits for a running ingest.
	Wait func(err error)
	Log  *slog.Logger
}

// Report is what Collect found and did.
type Report struct {
	Roots   int   // live roots marked
	Objects int64 // objects in the store at the mark
	Stored  int64 // their stored bytes
	// Dead objects and their bytes: what the sweep deletes (or would).
	DeadListings, DeadLists, DeadChunks int64
	DeadBytes                           int64
	// Re-dried live objects whose reference or base was dead, with their
	// stored bytes before and after (with DryRun: to be re-dried, and
	// RedryAt is zero).
	Redried              int64
	RedryBefore, RedryAt int64
	// Kept dead objects that live ones are still decoded against, and
	// their bytes (with Keep, or where re-drying did not apply).
	Kept      int64
	KeptBytes int64
	// Freed objects and bytes (the sweep's), and Held chunks it could not
	// delete because chunks written since depend on them.
	Freed      int64
	FreedBytes int64
	Held       int64
	// IndexRows is the reuse-index rows of ingests that never committed.
	IndexRows int64
	// Moved is the chunks whose data was moved off pages the sweep left
	// sparse, so that those pages could be given back.
	Moved int64
	// Repacked is the tables rebuilt because deletions left their pages
	// part empty (see store.Repack), and Unpacked those that would have
	// been but are larger than Options.RepackLimit (gc --compact packs
	// them).
	Repacked, Unpacked []Repacked
	// FileBefore and FileAfter are the store file's size; FreeAfter the
	// free space left inside it (without auto_vacuum: until gc --compact).
	FileBefore, FileAfter, FreeAfter int64
	Waited                           time.Duration // waiting for ingests
}

// Repacked is one table Collect rebuilt (or left, in Report.Unpacked).
type Repacked struct {
	Table         string
	Before, After int64         // its pages
	PageSize      int64         // the store's
	Held          time.Duration // how long the rebuild held the write lock
}

// DefaultRepackLimit is the default Options.RepackLimit: at the speed
// measured on the gomod store, about a second of holding the write lock,
// a tenth of the time an ingest's write waits for it.
const DefaultRepackLimit = 256 << 20

type key struct {
	kind store.ObjectKind
	h    hash.Hash
}

// object is one stored object at the mark.
type object struct {
	stored int64
	ref    hash.Hash // its reference or base, of the same kind; zero: none
	live   bool      // needed by a root directly
	kept   bool      // needed as a reference or base of a live object
	refd   bool      // in a live object's chain before re-drying
	gone   bool      // swept
	depth  int32     // chain length, computed for dead chunks
}

// sweepBatch is how many chunk lists or chunks one sweep transaction
// deletes.
const sweepBatch = 1000

// Collect collects the garbage of s.
func Collect(ctx context.Context, s *store.Store, opt Options) (*Report, error) {
	if opt.Progress == nil {
		opt.Progress = func(string, int64, int64) {}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Level == 0 {
		opt.Level = chunk.Level(2)
	}
	if opt.MaxDepth == 0 {
		opt.MaxDepth = ingest.DefaultMaxDepth
	}
	if opt.RepackLimit == 0 {
		opt.RepackLimit = DefaultRepackLimit
	}
	var lease *store.Lease
	if !opt.DryRun {
		var err error
		if lease, err = s.AcquireLease(store.LeaseGC); err != nil {
			return nil, err
		}
		defer lease.Release()
	}
	// With debug logging, the time from each phase's start to the next's.
	progress, phase, since := opt.Progress, "start", time.Now()
	opt.Progress = func(p string, done, total int64) {
		if p != phase {
			opt.Log.Debug("gc: phase done", "phase", phase, "took", time.Since(since))
			phase, since = p, time.Now()
		}
		progress(p, done, total)
	}
	defer func() { opt.Log.Debug("gc: phase done", "phase", phase, "took", time.Since(since)) }()
	g := &collector{s: s, opt: opt, objs: map[key]*object{}, walked: map[string]bool{}, rep: &Report{}}
	sp, err := s.Pages(ctx)
	if err != nil {
		return nil, err
	}
	g.rep.FileBefore = sp.FileBytes
	if err := g.mark(ctx); err != nil {
		return nil, err
	}
	if !opt.DryRun {
		// First what no live object is decoded against, so that re-drying
		// writes into the space it frees rather than growing the file.
		if err := g.markChains(ctx, func(o *object) { o.refd = true }); err != nil {
			return nil, err
		}
		if err := g.sweep(ctx, func(o *object) bool { return !o.refd }); err != nil {
			return g.rep, err
		}
	}
	if err := g.redry(ctx); err != nil {
		return g.rep, err
	}
	err = g.markChains(ctx, func(o *object) {
		o.kept = true
		g.rep.Kept++
		g.rep.KeptBytes += o.stored
	})
	if err != nil {
		return g.rep, err
	}
	g.count()
	if opt.DryRun {
		g.rep.FileAfter, g.rep.FreeAfter = sp.FileBytes, sp.FreeBytes
		return g.rep, nil
	}
	if err := g.sweep(ctx, func(*object) bool { return true }); err != nil {
		return g.rep, err
	}
	n, err := g.swept(ctx, func() (int64, error) { return g.s.DropOrphanIndexes(ctx) })
	g.rep.IndexRows = n
	if err != nil {
		return g.rep, err
	}
	if !opt.NoShrink && sp.AutoVacuum {
		if g.rep.Moved, err = s.Defrag(ctx, func(d, t int64) { opt.Progress("defragment", d, t) }); err != nil {
			return g.rep, err
		}
		if err := g.repack(ctx); err != nil {
			return g.rep, err
		}
		if err := s.Shrink(ctx, func(d, t int64) { opt.Progress("shrink", d, t) }); err != nil {
			return g.rep, err
		}
	}
	if sp, err = s.Pages(ctx); err != nil {
		return g.rep, err
	}
	g.rep.FileAfter, g.rep.FreeAfter = sp.FileBytes, sp.FreeBytes
	return g.rep, nil
}

type collector struct {
	s      *store.Store
	opt    Options
	objs   map[key]*object
	walked map[string]bool // roots marked, by rootKey
	rep    *Report
}

func rootKey(r store.Root) string { return r.ID() + " " + r.Top.Hash.String() }

// mark scans the store's objects, then walks every root, marking what it
// needs directly; reference chains are handled after (redry, keepChains).
func (g *collector) mark(ctx context.Context) error {
	// Objects first, then roots: everything a listed root needs is in
	// the scan, and objects written after it are never swept.
	err := g.s.StoredObjects(ctx, func(o store.StoredObject) error {
		g.objs[key{o.Kind, o.Hash}] = &object{stored: o.Stored, ref: o.Ref}
		g.rep.Objects++
		g.rep.Stored += o.Stored
		return nil
	})
	if err != nil {
		return err
	}
	roots, err := g.s.Roots(ctx)
	if err != nil {
		return err
	}
	w := g.walker(false)
	for i, r := range roots {
		g.opt.Progress("mark", int64(i), int64(len(roots)))
		if err := w.Tree(ctx, r.Top.Hash); err != nil {
			return fmt.Errorf("mark root %s: %w", r.ID(), err)
		}
		g.walked[rootKey(r)] = true
	}
	g.opt.Progress("mark", int64(len(roots)), int64(len(roots)))
	g.rep.Roots = len(roots)
	return nil
}

// walker marks what it walks as live; with chains, also the whole
// reference chains and base chains, reading the bases of listings written
// after the mark from the store.
func (g *collector) walker(chains bool) *walk.Walker {
	var markKey func(ctx context.Context, k key) error
	markKey = func(ctx context.Context, k key) error {
		for !k.h.IsZero() {
			o := g.objs[k]
			if o == nil {
				if !chains || k.kind != store.ObjectListing {
					return nil // written after the mark: never swept; a chunk's chain is held by deps
				}
				base, err := g.s.ListingBase(ctx, k.h)
				if err != nil {
					return err
				}
				k.h = base
				continue
			}
			if chains && o.kept && o.live {
				return nil
			}
			o.live = true
			if !chains {
				return nil
			}
			o.kept = true
			k.h = o.ref
		}
		return nil
	}
	ctx := context.Background()
	return walk.New(g.s.Objects, walk.Visitor{
		Dir:   func(h hash.Hash, _ *tree.Dir) error { return markKey(ctx, key{store.ObjectListing, h}) },
		File:  func(e *tree.Entry, _ *store.File) error { return markKey(ctx, key{store.ObjectList, e.Hash}) },
		Chunk: func(c tree.ChunkRef) error { return markKey(ctx, key{store.ObjectChunk, c.Hash}) },
	})
}

// liveAncestor returns the nearest live object in o's reference chain
// beyond its dead reference, or zero.
func (g *collector) liveAncestor(kind store.ObjectKind, o *object) hash.Hash {
	h := o.ref
	for n := 0; !h.IsZero() && n <= store.MaxChainDepth; n++ {
		r := g.objs[key{kind, h}]
		if r == nil {
			return hash.Zero
		}
		if r.live {
			return h
		}
		h = r.ref
	}
	return hash.Zero
}

// redryBatch is how many objects one re-dry transaction rewrites.
const redryBatch = 256

// redry rewrites every live chunk and listing whose reference or base is
// dead against the nearest live object of its chain, or alone.
func (g *collector) redry(ctx context.Context) error {
	var todo []store.Rebase
	var kinds []store.ObjectKind
	for k, o := range g.objs {
		if !o.live || o.ref.IsZero() || k.kind == store.ObjectList || k.kind == store.ObjectChunk && g.opt.Keep {
			continue
		}
		if r := g.objs[key{k.kind, o.ref}]; r != nil && r.live {
			continue
		}
		todo = append(todo, store.Rebase{Hash: k.h, Old: o.ref, Ref: g.liveAncestor(k.kind, o)})
		kinds = append(kinds, k.kind)
	}
	total := int64(len(todo))
	if !g.opt.DryRun {
		order, err := g.candidates(ctx, todo, kinds)
		if err != nil {
			return err
		}
		// Chunks in walk order, so that a candidate is re-dried before
		// the chunks tried against it (RebaseChunks reads its depth then).
		rank := make([]int, len(todo))
		for i := range rank {
			rank[i] = len(todo)
		}
		for n, i := range order {
			rank[i] = n
		}
		idx := make([]int, len(todo))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(rank[a], rank[b]) })
		sorted, sortedKinds := make([]store.Rebase, len(todo)), make([]store.ObjectKind, len(todo))
		for i, j := range idx {
			sorted[i], sortedKinds[i] = todo[j], kinds[j]
		}
		todo, kinds = sorted, sortedKinds
	}
	if g.opt.DryRun {
		// What re-drying would cut loose; the bytes after are unknown.
		for i, r := range todo {
			o := g.objs[key{kinds[i], r.Hash}]
			g.rep.RedryBefore += o.stored
			o.ref = r.Ref
		}
		g.rep.Redried = total
		return nil
	}
	dry, err := store.NewDryers(g.opt.Level)
	if err != nil {
		return err
	}
	var done int64
	progress := func(n int) {
		done += int64(n)
		g.opt.Progress("re-dry", done, total)
	}
	for _, kind := range []store.ObjectKind{store.ObjectListing, store.ObjectChunk} {
		var batch []store.Rebase
		for i, r := range todo {
			if kinds[i] == kind {
				batch = append(batch, r)
			}
		}
		var ok []bool
		var st store.RebaseStats
		var err error
		if kind == store.ObjectChunk {
			ok, st, err = g.s.RebaseChunks(ctx, batch, dry, g.opt.MaxDepth, redryBatch, progress)
		} else {
			ok, st, err = g.s.RebaseListings(ctx, batch, redryBatch, progress)
		}
		if err != nil {
			return fmt.Errorf("re-dry: %w", err)
		}
		for i, r := range batch {
			if ok[i] {
				g.objs[key{kind, r.Hash}].ref = r.Ref
			}
		}
		g.rep.Redried += st.Done
		g.rep.RedryBefore += st.Before
		g.rep.RedryAt += st.After
	}
	return nil
}

// candidates picks, for each chunk to re-dry, besides the nearest live
// chunk of its chain: the chunk at its offset in the older version of its
// path met last (as ingest dries against the parent version), and the
// neighbours ingest tries for new content: the previous chunk of its
// file, or for a first chunk the first chunk of the last file met with
// the same name, of the previous file in its directory, and of the last
// one with its extension (chunks without a reference, or re-dried). The
// nearest live chunk of a chain is often versions older. On the gomod
// corpus, without candidates the chunks after gc were 23.1 MiB, with
// them 20.6 MiB (a fresh store of the live versions: 19.5 MiB).
// It returns the indexes of todo's chunks in the order the walk met them.
func (g *collector) candidates(ctx context.Context, todo []store.Rebase, kinds []store.ObjectKind) ([]int, error) {
	at := map[hash.Hash]int{}
	for i, r := range todo {
		if kinds[i] == store.ObjectChunk {
			at[r.Hash] = i
		}
	}
	if len(at) == 0 {
		return nil, nil
	}
	var order []int
	redried := make(map[hash.Hash]bool, len(at))
	for h := range at {
		redried[h] = true
	}
	plain := func(h hash.Hash) bool {
		o := g.objs[key{store.ObjectChunk, h}]
		return o != nil && o.live && (o.ref.IsZero() || redried[h])
	}
	roots, err := g.s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(roots, func(a, b store.Root) int { return a.Created.Compare(b.Created) })
	byName, byExt := map[string]hash.Hash{}, map[string]hash.Hash{}
	byPath := map[string]*tree.ChunkList{} // the last version of each path met
	seen := map[hash.Hash]bool{}
	var dir func(h hash.Hash, p string) error
	dir = func(h hash.Hash, p string) error {
		if seen[h] {
			return nil
		}
		seen[h] = true
		d, err := g.s.Dir(ctx, h)
		if err != nil {
			return err
		}
		var sibling hash.Hash
		for _, e := range d.Entries {
			switch e.Type {
			case tree.TypeDir:
				if err := dir(e.Hash, p+"/"+e.Name); err != nil {
					return err
				}
				continue
			case tree.TypeFile:
			default:
				continue
			}
			if e.Size == 0 || seen[e.Hash] {
				continue
			}
			seen[e.Hash] = true
			f, err := g.s.File(ctx, e.Hash)
			if err != nil {
				return err
			}
			ext := path.Ext(e.Name)
			prev := byPath[p+"/"+e.Name]
			byPath[p+"/"+e.Name] = f.List
			for i, c := range f.List.Chunks {
				if j, ok := at[c.Hash]; ok {
					order = append(order, j)
					delete(at, c.Hash)
					var cands []hash.Hash
					if prev != nil && prev.Size() > 0 { // the chunk at its offset in the path's older version
						cands = append(cands, prev.Chunks[prev.Find(min(f.List.Start(i), prev.Size()-1))].Hash)
					}
					if i > 0 {
						cands = append(cands, f.List.Chunks[i-1].Hash)
					} else {
						cands = append(cands, byName[e.Name], sibling)
						if ext != "" {
							cands = append(cands, byExt[ext])
						}
					}
					for _, h := range cands {
						if !h.IsZero() && h != c.Hash && plain(h) && !slices.Contains(todo[j].Cands, h) {
							todo[j].Cands = append(todo[j].Cands, h)
						}
					}
				}
			}
			first := f.List.Chunks[0].Hash
			if plain(first) {
				byName[e.Name], sibling = first, first
				if ext != "" {
					byExt[ext] = first
				}
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := dir(r.Top.Hash, r.Name); err != nil {
			return nil, fmt.Errorf("re-dry candidates in %s: %w", r.ID(), err)
		}
	}
	return order, nil
}

// markChains calls f on every dead object in the chain of a live one:
// what re-drying did not (or, with Keep, was not asked to) cut loose. A
// dead listing's entries must stay with it (check looks at what every
// stored listing names), so f is called on its subtree's dead objects too.
func (g *collector) markChains(ctx context.Context, f func(*object)) error {
	seen := map[key]bool{}
	var lists []hash.Hash
	for k, o := range g.objs {
		if !o.live {
			continue
		}
		for r := o.ref; !r.IsZero(); {
			rk := key{k.kind, r}
			ro := g.objs[rk]
			if ro == nil || ro.live || seen[rk] {
				break
			}
			seen[rk] = true
			f(ro)
			if k.kind == store.ObjectListing {
				lists = append(lists, r)
			}
			r = ro.ref
		}
	}
	if len(lists) == 0 {
		return nil
	}
	mark := func(k key) error {
		if o := g.objs[k]; o != nil && !o.live && !seen[k] {
			seen[k] = true
			f(o)
		}
		return nil
	}
	w := walk.New(g.s.Objects, walk.Visitor{
		Dir:   func(h hash.Hash, _ *tree.Dir) error { return mark(key{store.ObjectListing, h}) },
		File:  func(e *tree.Entry, _ *store.File) error { return mark(key{store.ObjectList, e.Hash}) },
		Chunk: func(c tree.ChunkRef) error { return mark(key{store.ObjectChunk, c.Hash}) },
	})
	for _, h := range lists {
		if err := w.Tree(ctx, h); err != nil {
			return fmt.Errorf("listings kept as bases: %w", err)
		}
	}
	return nil
}

// count totals the dead objects.
func (g *collector) count() {
	for k, o := range g.objs {
		if o.live || o.kept {
			continue
		}
		switch k.kind {
		case store.ObjectListing:
			g.rep.DeadListings++
		case store.ObjectList:
			g.rep.DeadLists++
		case store.ObjectChunk:
			g.rep.DeadChunks++
		}
		g.rep.DeadBytes += o.stored
	}
}

// dead returns the dead objects of kind not swept yet that pick accepts,
// chunks deepest first.
func (g *collector) dead(kind store.ObjectKind, pick func(*object) bool) []store.Object {
	var out []store.Object
	for k, o := range g.objs {
		if k.kind == kind && !o.live && !o.kept && !o.gone && pick(o) {
			out = append(out, store.Object{Kind: kind, Hash: k.h})
		}
	}
	if kind == store.ObjectChunk {
		depth := func(h hash.Hash) int32 { return g.depth(h) }
		slices.SortFunc(out, func(a, b store.Object) int { return cmp.Compare(depth(b.Hash), depth(a.Hash)) })
	}
	return out
}

// depth returns a chunk's chain length as the mark saw it.
func (g *collector) depth(h hash.Hash) int32 {
	o := g.objs[key{store.ObjectChunk, h}]
	if o == nil || o.ref.IsZero() {
		return 0
	}
	if o.depth == 0 {
		o.depth = -1 // a damaged store's cycle ends here
		o.depth = g.depth(o.ref) + 1
	}
	return o.depth
}

// sweep deletes the dead objects pick accepts: listings in one
// transaction, then chunk lists and chunks in batches, chunks deepest
// first, so that dependants go before their references. A dead chunk that
// a chunk written since the mark depends on is held, and left to a later
// collection.
func (g *collector) sweep(ctx context.Context, pick func(*object) bool) error {
	var total int64
	batches := [][]store.Object{g.dead(store.ObjectListing, pick)}
	total += int64(len(batches[0]))
	for _, l := range [][]store.Object{g.dead(store.ObjectList, pick), g.dead(store.ObjectChunk, pick)} {
		total += int64(len(l))
		for len(l) > 0 {
			n := min(sweepBatch, len(l))
			batches = append(batches, l[:n])
			l = l[n:]
		}
	}
	var done int64
	g.rep.Held = 0
	for _, b := range batches {
		st, err := g.sweepOne(ctx, b)
		if err != nil {
			return err
		}
		for _, o := range b {
			g.objs[key{o.Kind, o.Hash}].gone = true
		}
		for _, o := range st.Held {
			g.objs[key{o.Kind, o.Hash}].gone = false
		}
		g.rep.Freed += st.Objects
		g.rep.FreedBytes += st.Bytes
		g.rep.Held += int64(len(st.Held))
		done += int64(len(b))
		g.opt.Progress("sweep", done, total)
	}
	return nil
}

// sweepOne deletes one batch, less what roots committed since the mark
// need, waiting while an ingest holds a lease.
func (g *collector) sweepOne(ctx context.Context, batch []store.Object) (store.SweepStats, error) {
	var st store.SweepStats
	_, err := g.swept(ctx, func() (int64, error) {
		var err error
		st, err = g.s.Sweep(ctx, func(ctx context.Context, roots []store.Root) ([]store.Object, error) {
			if err := g.spare(ctx, roots); err != nil {
				return nil, err
			}
			out := batch[:0:0]
			for _, o := range batch {
				if x := g.objs[key{o.Kind, o.Hash}]; x != nil && !x.live && !x.kept {
					out = append(out, o)
				}
			}
			return out, nil
		})
		return 0, err
	})
	return st, err
}

// swept runs a sweep step, waiting and retrying while an ingest runs.
func (g *collector) swept(ctx context.Context, f func() (int64, error)) (int64, error) {
	for {
		n, err := f()
		if !errors.Is(err, store.ErrLeased) {
			return n, err
		}
		if g.opt.Wait != nil {
			g.opt.Wait(err)
		}
		start := time.Now()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		g.rep.Waited += time.Since(start)
	}
}

// spare marks live what roots committed since the mark need, with their
// whole chains.
func (g *collector) spare(ctx context.Context, roots []store.Root) error {
	var w *walk.Walker
	for _, r := range roots {
		if g.walked[rootKey(r)] {
			continue
		}
		if w == nil {
			w = g.walker(true)
		}
		g.opt.Log.Info("gc: sparing a root committed during collection", "root", r.ID())
		if err := w.Tree(ctx, r.Top.Hash); err != nil {
			return fmt.Errorf("mark root %s: %w", r.ID(), err)
		}
		g.walked[rootKey(r)] = true
	}
	return nil
}

// repackWorth is the share of a table's pages (in percent) a rebuild must
// be expected to free: rebuilding costs a copy of the table.
const repackWorth = 10

// repack rebuilds the tables whose pages deletions left part empty, each
// in one transaction (store.Repack), so that Shrink can give their pages
// back; those larger than Options.RepackLimit are left.
func (g *collector) repack(ctx context.Context) error {
	for i, t := range store.RepackTables {
		g.opt.Progress("repack", int64(i), int64(len(store.RepackTables)))
		u, err := g.s.TableUse(ctx, t)
		switch {
		case errors.Is(err, store.ErrNoPageStats): // every platform spraydryfs ships for has it
			g.opt.Log.Info("gc: tables not repacked", "err", err)
			return nil
		case err != nil:
			return err
		case u.Leaves-u.Packed() < max(1, u.Pages*repackWorth/100):
			continue
		case u.Pages*u.PageSize > g.opt.RepackLimit:
			g.rep.Unpacked = append(g.rep.Unpacked, Repacked{Table: t, Before: u.Pages, After: u.Pages, PageSize: u.PageSize})
			g.opt.Log.Info("gc: table too large to repack online; gc --compact packs it", "table", t, "pages", u.Pages, "limit", g.opt.RepackLimit)
			continue
		}
		held, err := g.s.Repack(ctx, t)
		if err != nil {
			return err
		}
		after, err := g.s.TableUse(ctx, t)
		if err != nil {
			return err
		}
		g.rep.Repacked = append(g.rep.Repacked, Repacked{Table: t, Before: u.Pages, After: after.Pages, PageSize: u.PageSize, Held: held})
		g.opt.Log.Debug("gc: repacked", "table", t, "pages", u.Pages, "after", after.Pages, "held", held)
	}
	g.opt.Progress("repack", int64(len(store.RepackTables)), int64(len(store.RepackTables)))
	return nil
}
