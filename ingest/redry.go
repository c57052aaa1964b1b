package ingest

import (
	"context"
	"fmt"
	"slices"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/walk"
)

// RedryStats counts what Redry did.
type RedryStats struct {
	Roots     int   // roots walked
	Chunks    int64 // changed files' chunks looked at
	Rewritten int64 // chunks now stored as deltas
	Before    int64 // their stored bytes before
	After     int64 // and after
}

// redryBatch is how many rewritten chunks one transaction holds.
const redryBatch = 256

// Redry re-dries stored roots with references, as ingest would have: each
// root, taken in creation order, against the previous version of its name
// (the newest one created before it). A chunk of a file that changed from
// that version is rewritten as a delta against the aligned chunk when that
// is smaller, if it has no reference and nothing depends on it. Each batch
// is one transaction, so readers keep reading and a killed run leaves a
// consistent store that a second run finishes.
func Redry(ctx context.Context, s *store.Store, roots []store.Root, level chunk.Level, maxDepth int, progress func(done, total int64)) (RedryStats, error) {
	var st RedryStats
	if maxDepth == 0 {
		maxDepth = DefaultMaxDepth
	}
	if err := CheckDepth(maxDepth); err != nil {
		return st, err
	}
	all, err := s.Roots(ctx)
	if err != nil {
		return st, err
	}
	slices.SortStableFunc(roots, func(a, b store.Root) int { return a.Created.Compare(b.Created) })
	r := &redryer{s: s, delta: chunk.NewDeltaDryer(level), maxDepth: maxDepth, st: &st}
	for i, root := range roots {
		var parent *store.Root
		for _, o := range all {
			if o.Name == root.Name && o.Created.Before(root.Created) && (parent == nil || o.Created.After(parent.Created)) {
				parent = &o
			}
		}
		if parent != nil {
			if err := r.dir(ctx, root.Top.Hash, parent.Top.Hash); err != nil {
				return st, fmt.Errorf("re-dry %s against %s: %w", root.ID(), parent.ID(), err)
			}
			if err := r.flush(); err != nil {
				return st, err
			}
		}
		st.Roots++
		if progress != nil {
			progress(int64(i+1), int64(len(roots)))
		}
	}
	return st, nil
}

type redryer struct {
	s        *store.Store
	delta    *chunk.DeltaDryer
	maxDepth int
	st       *RedryStats
	pending  []store.Redried
	before   []int
}

// dir walks listing h against the parent version's listing base and
// re-dries the files that changed between them.
func (r *redryer) dir(ctx context.Context, h, base hash.Hash) error {
	return walk.Compare(ctx, r.s.Objects, h, base, func(c walk.Change) error {
		e, be := c.A, c.B
		if e == nil || be == nil || e.Type != tree.TypeFile || be.Type != tree.TypeFile || e.Hash == be.Hash || be.Size == 0 || e.Size == 0 {
			return nil
		}
		return r.file(ctx, e.Hash, be.Hash)
	})
}

// file re-dries the chunks of file h against the parent version's file base.
func (r *redryer) file(ctx context.Context, h, base hash.Hash) error {
	f, err := r.s.File(ctx, h)
	if err != nil {
		return err
	}
	bf, err := r.s.File(ctx, base)
	if err != nil {
		return err
	}
	picker := newRefPicker(bf.List)
	for i, c := range f.List.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		off := f.List.Start(i)
		picker.saw(c.Hash, off)
		parent := picker.pick(off)
		if parent == c.Hash {
			continue
		}
		r.st.Chunks++
		info, err := r.s.ChunkInfo(ctx, c.Hash)
		if err != nil {
			return err
		}
		if info.Codec.HasRef() || info.Deps > 0 {
			continue
		}
		ref, depth, err := chainRef(ctx, r.s, parent, r.maxDepth)
		if err != nil {
			return err
		}
		raw, err := r.s.Chunk(ctx, c.Hash)
		if err != nil {
			return err
		}
		refData, err := r.s.Chunk(ctx, ref)
		if err != nil {
			return err
		}
		out, err := r.delta.Dry(nil, raw, refData)
		if err != nil {
			return err
		}
		if len(out) >= info.Stored {
			continue
		}
		r.pending = append(r.pending, store.Redried{Hash: c.Hash, Dried: store.Dried{Codec: chunk.Delta, Ref: ref, Depth: depth, Data: out}})
		r.before = append(r.before, info.Stored)
		if len(r.pending) >= redryBatch {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush commits the pending rewrites.
func (r *redryer) flush() error {
	done, err := r.s.Redry(r.pending)
	if err != nil {
		return err
	}
	for i, ok := range done {
		if ok {
			r.st.Rewritten++
			r.st.Before += int64(r.before[i])
			r.st.After += int64(len(r.pending[i].Data))
		}
	}
	r.pending, r.before = r.pending[:0], r.before[:0]
	return nil
}
