// Package usage attributes a store's bytes to its roots: per root, the
// stored bytes it needs, how many of them other roots need too, and how
// many only it needs (what removing it and collecting garbage would free),
// like borg's "unique size".
//
// A root needs the listings, chunk lists and chunks below its top (found
// with walk), and everything those are decoded against: the base chains
// of delta listings and the reference chains of delta chunks, wherever
// they came from. Sizes come from one scan of the store's metadata.
// Trained dictionaries are not counted. Memory is one entry per stored
// object.
package usage

import (
	"context"
	"fmt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/walk"
)

// Root is one root's share of the store.
type Root struct {
	store.Root
	// Needed is the bytes of every object the root needs: what a store of
	// it alone would hold. Needed = Shared + Unique.
	Needed int64
	// Shared is the part of Needed that other roots need too.
	Shared int64
	// Unique is the part only this root needs: what removing it and then
	// collecting garbage frees.
	Unique int64
}

// Report is the usage of every root and of the store.
type Report struct {
	Roots []Root // every root, by name, then oldest first
	// Needed is the bytes of the objects any root needs; Shared those that
	// two roots or more need, Unique those that one needs (the sum of the
	// roots' Unique). Needed = Shared + Unique.
	Needed, Shared, Unique int64
	// Unreferenced is the bytes of objects no root needs (left by removed
	// roots or interrupted ingests, or written by one still running): what
	// collecting garbage frees now.
	Unreferenced int64
	// Total is the bytes of every stored object: Needed + Unreferenced.
	Total int64
	// Freed is the bytes that only selected roots need: what removing all
	// of them and collecting garbage frees (besides Unreferenced).
	Freed int64
}

type key struct {
	kind store.ObjectKind
	h    hash.Hash
}

// object is the accounting of one stored object.
type object struct {
	stored int64
	ref    hash.Hash // of the same kind; zero for none
	last   int32     // 1 + index of the last root that counted it
	owner  int32     // index of the first root that needs it
	roots  int32     // roots that need it
	sel    int32     // selected roots that need it
}

// Compute walks every root of s and attributes the stored objects to them.
// Roots for which selected returns true count towards Freed; selected may
// be nil.
func Compute(ctx context.Context, s *store.Store, selected func(store.Root) bool) (*Report, error) {
	roots, err := s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	// Roots first, then the scan: every object of a listed root is in it.
	objs := map[key]*object{}
	rep := &Report{Roots: make([]Root, len(roots))}
	err = s.StoredObjects(ctx, func(o store.StoredObject) error {
		objs[key{o.Kind, o.Hash}] = &object{stored: o.Stored, ref: o.Ref}
		rep.Total += o.Stored
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, r := range roots {
		rep.Roots[i].Root = r
		sel := selected != nil && selected(r)
		a := &accountant{objs: objs, idx: int32(i), sel: sel}
		w := walk.New(s.Objects, walk.Visitor{
			Dir: func(h hash.Hash, _ *tree.Dir) error { return a.need(key{store.ObjectListing, h}, true) },
			File: func(e *tree.Entry, _ *store.File) error {
				return a.need(key{store.ObjectList, e.Hash}, false) // none for one-chunk files
			},
			Chunk: func(c tree.ChunkRef) error { return a.need(key{store.ObjectChunk, c.Hash}, true) },
		})
		if err := w.Tree(ctx, r.Top.Hash); err != nil {
			return nil, fmt.Errorf("root %s: %w", r.ID(), err)
		}
		rep.Roots[i].Needed = a.stored
	}
	for _, o := range objs {
		switch {
		case o.roots == 0:
			rep.Unreferenced += o.stored
			continue
		case o.roots == 1:
			rep.Roots[o.owner].Unique += o.stored
			rep.Unique += o.stored
		default:
			rep.Shared += o.stored
		}
		if o.sel == o.roots {
			rep.Freed += o.stored
		}
	}
	rep.Needed = rep.Shared + rep.Unique
	for i := range rep.Roots {
		rep.Roots[i].Shared = rep.Roots[i].Needed - rep.Roots[i].Unique
	}
	return rep, nil
}

// accountant counts the objects one root needs.
type accountant struct {
	objs   map[key]*object
	idx    int32
	sel    bool
	stored int64
}

// need counts object k and its reference chain for the root, each once.
// An object that must be stored but is not is an error.
func (a *accountant) need(k key, must bool) error {
	for {
		o := a.objs[k]
		if o == nil {
			if !must {
				return nil
			}
			return fmt.Errorf("%w: %s %s is missing (run check)", store.ErrCorrupt, kindName(k.kind), k.h)
		}
		if o.last == a.idx+1 {
			return nil // counted for this root, and so is its chain
		}
		o.last = a.idx + 1
		if o.roots == 0 {
			o.owner = a.idx
		}
		o.roots++
		if a.sel {
			o.sel++
		}
		a.stored += o.stored
		if o.ref.IsZero() {
			return nil
		}
		k, must = key{k.kind, o.ref}, true
	}
}

func kindName(k store.ObjectKind) string {
	switch k {
	case store.ObjectChunk:
		return "chunk"
	case store.ObjectList:
		return "chunk list"
	}
	return "listing"
}
