// Package walk is the one store walker: it visits the listings, files and
// chunks below stored trees, each once however many trees share it, and
// compares two trees entry by entry, skipping identical subtrees by hash.
// Recompress, training's sampler, re-drying, and the administrative
// commands build on it.
package walk

import (
	"context"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Visitor says what a Walker reports; a nil func is not called. Files'
// chunk lists are read only when File or Chunk is set.
type Visitor struct {
	// Dir is told of each listing once, before its entries.
	Dir func(h hash.Hash, d *tree.Dir) error
	// File is told of each distinct file once, with the first entry met
	// that names it.
	File func(e *tree.Entry, f *store.File) error
	// Chunk is told of each distinct chunk once, in file order.
	Chunk func(c tree.ChunkRef) error
}

// Walker walks trees of one Objects. What it has visited it skips in
// later calls too, so walking several roots visits shared objects once.
// Its memory is the addresses it has seen. It is not safe for concurrent
// use.
type Walker struct {
	o                   *store.Objects
	v                   Visitor
	dirs, files, chunks map[hash.Hash]struct{}
}

// New returns a walker over o reporting to v.
func New(o *store.Objects, v Visitor) *Walker {
	return &Walker{o: o, v: v, dirs: map[hash.Hash]struct{}{}, files: map[hash.Hash]struct{}{}, chunks: map[hash.Hash]struct{}{}}
}

// Roots walks the top listing of every root given.
func (w *Walker) Roots(ctx context.Context, roots []store.Root) error {
	for _, r := range roots {
		if err := w.Tree(ctx, r.Top.Hash); err != nil {
			return err
		}
	}
	return nil
}

// Tree walks the listing with address top and everything below it.
func (w *Walker) Tree(ctx context.Context, top hash.Hash) error {
	if _, ok := w.dirs[top]; ok {
		return nil
	}
	w.dirs[top] = struct{}{}
	if err := ctx.Err(); err != nil {
		return err
	}
	d, err := w.o.Dir(ctx, top)
	if err != nil {
		return err
	}
	if w.v.Dir != nil {
		if err := w.v.Dir(top, d); err != nil {
			return err
		}
	}
	for i := range d.Entries {
		e := &d.Entries[i]
		switch e.Type {
		case tree.TypeDir:
			err = w.Tree(ctx, e.Hash)
		case tree.TypeFile:
			err = w.file(ctx, d, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *Walker) file(ctx context.Context, d *tree.Dir, e *tree.Entry) error {
	if w.v.File == nil && w.v.Chunk == nil {
		return nil
	}
	if _, ok := w.files[e.Hash]; ok {
		return nil
	}
	w.files[e.Hash] = struct{}{}
	f, err := w.o.ListedFile(ctx, store.ListedEntry(d, e))
	if err != nil {
		return err
	}
	if w.v.File != nil {
		if err := w.v.File(e, f); err != nil {
			return err
		}
	}
	if w.v.Chunk == nil {
		return nil
	}
	for _, c := range f.List.Chunks {
		if _, ok := w.chunks[c.Hash]; ok {
			continue
		}
		w.chunks[c.Hash] = struct{}{}
		if err := w.v.Chunk(c); err != nil {
			return err
		}
	}
	return nil
}

// Chunks returns the distinct chunks below the roots given; the slice is
// never nil.
func Chunks(ctx context.Context, o *store.Objects, roots []store.Root) ([]hash.Hash, error) {
	out := []hash.Hash{}
	w := New(o, Visitor{Chunk: func(c tree.ChunkRef) error { out = append(out, c.Hash); return nil }})
	return out, w.Roots(ctx, roots)
}

// Change is one name that differs between two listings: A is its entry in
// the first (nil if only in the second), B in the second (nil if only in
// the first). Dir is the slash-separated path of the listing, "" at the top.
type Change struct {
	Dir  string
	A, B *tree.Entry
}

// Path returns the slash-separated path of the changed name.
func (c Change) Path() string {
	e := c.A
	if e == nil {
		e = c.B
	}
	return join(c.Dir, e.Name)
}

// Compare walks listings a and b side by side and tells fn of every name
// whose entries differ, in name order, depth first. Where both entries are
// directories with different listings it descends, after fn; identical
// listings (same address) are skipped without being read, and so is a pair
// of listings already compared.
func Compare(ctx context.Context, o *store.Objects, a, b hash.Hash, fn func(Change) error) error {
	c := &comparer{o: o, fn: fn, seen: map[[2]hash.Hash]struct{}{}}
	return c.dirs(ctx, "", a, b)
}

// ComparePaths is Compare for callers that need every path that differs:
// a pair of listings met again at another path is compared again there
// (identical listings are still skipped unread).
func ComparePaths(ctx context.Context, o *store.Objects, a, b hash.Hash, fn func(Change) error) error {
	c := &comparer{o: o, fn: fn}
	return c.dirs(ctx, "", a, b)
}

type comparer struct {
	o    *store.Objects
	fn   func(Change) error
	seen map[[2]hash.Hash]struct{} // nil: compare pairs again at every path
}

func (c *comparer) dirs(ctx context.Context, path string, a, b hash.Hash) error {
	if a == b {
		return nil
	}
	if c.seen != nil {
		if _, ok := c.seen[[2]hash.Hash{a, b}]; ok {
			return nil
		}
		c.seen[[2]hash.Hash{a, b}] = struct{}{}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	da, err := c.o.Dir(ctx, a)
	if err != nil {
		return err
	}
	db, err := c.o.Dir(ctx, b)
	if err != nil {
		return err
	}
	// Entries are sorted by raw name bytes: merge the two lists.
	i, j := 0, 0
	for i < len(da.Entries) || j < len(db.Entries) {
		var ea, eb *tree.Entry
		switch {
		case j == len(db.Entries) || i < len(da.Entries) && da.Entries[i].Name < db.Entries[j].Name:
			ea, i = &da.Entries[i], i+1
		case i == len(da.Entries) || db.Entries[j].Name < da.Entries[i].Name:
			eb, j = &db.Entries[j], j+1
		default:
			ea, eb, i, j = &da.Entries[i], &db.Entries[j], i+1, j+1
			if sameEntry(ea, eb) {
				continue
			}
		}
		if err := c.fn(Change{Dir: path, A: ea, B: eb}); err != nil {
			return err
		}
		if ea != nil && eb != nil && ea.Type == tree.TypeDir && eb.Type == tree.TypeDir {
			if err := c.dirs(ctx, join(path, ea.Name), ea.Hash, eb.Hash); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameEntry reports whether two entries of one name are identical in
// content and every attribute.
func sameEntry(a, b *tree.Entry) bool {
	return a.Type == b.Type && a.Hash == b.Hash && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.MTime == b.MTime && a.Size == b.Size && a.Nlink == b.Nlink && a.Rdev == b.Rdev && a.Target == b.Target &&
		tree.SameXattrs(a.Xattrs, b.Xattrs)
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
