package push

import (
	"context"
	"fmt"
	"sync"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// StoreTarget is a layout.Target that writes into a store file: what pull
// copies into. Objects keep their stored form (no drying again); the
// roots are added in one transaction after every object is committed.
type StoreTarget struct {
	s *store.Store
	// Source is recorded as each added root's source.
	Source string

	mu    sync.Mutex
	w     *store.Writer
	added []store.Root
}

// NewStoreTarget returns the target writing into s, opened for writing.
func NewStoreTarget(s *store.Store, source string) *StoreTarget {
	return &StoreTarget{s: s, Source: source}
}

var storeKinds = map[layout.Kind]store.ObjectKind{
	layout.Chunk: store.ObjectChunk, layout.Listing: store.ObjectListing,
	layout.ChunkList: store.ObjectList, layout.Dict: store.ObjectDict,
}

// Has implements layout.Target.
func (t *StoreTarget) Has(ctx context.Context, key string) (bool, error) {
	k, h, err := storeKey(key)
	if err != nil {
		return false, err
	}
	return t.s.Has(ctx, k, h)
}

// storeKey parses key, which must name a kind of object a store holds.
func storeKey(key string) (store.ObjectKind, hash.Hash, error) {
	k, h, err := layout.ParseKey(key)
	if err != nil {
		return 0, h, err
	}
	sk, ok := storeKinds[k]
	if !ok {
		return 0, h, fmt.Errorf("%s: a store file holds no %s objects", key, k)
	}
	return sk, h, nil
}

func (t *StoreTarget) writer() (*store.Writer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		w, err := t.s.NewWriter()
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", t.s.Path(), err)
		}
		t.w = w
	}
	return t.w, nil
}

// Put implements layout.Target.
func (t *StoreTarget) Put(_ context.Context, key string, data []byte) error {
	if _, _, err := storeKey(key); err != nil {
		return err
	}
	k, h, _ := layout.ParseKey(key)
	o, err := layout.Decode(data, k, h)
	if err != nil {
		return err
	}
	w, err := t.writer()
	if err != nil {
		return err
	}
	switch k {
	case layout.Chunk:
		return w.PutFrame(h, o.Frame)
	case layout.Listing:
		return w.PutListing(h, o.Record)
	case layout.ChunkList:
		return w.PutFile(h, o.File.Size, o.File.List)
	}
	return w.PutDict(h, o.Data)
}

// UpdateIndex implements layout.Target: the roots update adds to the
// store's are added, after everything put so far is committed.
func (t *StoreTarget) UpdateIndex(ctx context.Context, update func(old []byte) ([]byte, error)) error {
	have, err := t.s.Roots(ctx)
	if err != nil {
		return err
	}
	var live []store.Root
	for _, r := range have {
		if r.Damaged == nil {
			live = append(live, r)
		}
	}
	old, err := layout.EncodeIndex(live)
	if err != nil {
		return err
	}
	b, err := update(old)
	if err != nil {
		return err
	}
	roots, err := layout.DecodeIndex(b)
	if err != nil {
		return err
	}
	for i := range roots {
		roots[i].Source = t.Source
	}
	w, err := t.writer()
	if err != nil {
		return err
	}
	added, err := w.AddRoots(roots)
	t.added = added
	return err
}

// WholeListings tells Run that a delta listing whose base is not part of
// the copy must come whole: a store's check holds every listing's entries
// to be present, and a base from a root not pulled would be a listing
// without its subtree.
func (t *StoreTarget) WholeListings() bool { return true }

// Published tells Run that a store file is no published layout: it takes
// no packs, and listings as stored.
func (t *StoreTarget) Published() bool { return false }

// Added returns the roots the last UpdateIndex added.
func (t *StoreTarget) Added() []store.Root { return t.added }

// Close commits and releases the store's writer.
func (t *StoreTarget) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return nil
	}
	err := t.w.Close()
	t.w = nil
	return err
}
