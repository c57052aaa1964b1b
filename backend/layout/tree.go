package layout

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// A tree object holds, in one object, the listings of a directory tree,
// so that a cold walk of a published root (ls -lR, find, tar) makes one
// request for its directories instead of one per directory, each after
// its parent's. It is named by the top listing's address
// (objects/tree/…), which a reader has from the roots index. Its members
// are listing objects, whole, each still verified against its own address
// when it is used; every member is also published on its own, so a tree
// object is only ever a shortcut.
//
//	header (kind Tree, the top listing's address) | uvarint count |
//	per member: uvarint length, a listing object
//
// The members are the tree's listings, depth first from the top, each
// once, until TreeMax bytes: a reader fetches the rest one by one.
const TreeMax = 2 << 20

// WholeRecord returns listing h's record as layouts publish it: whole. A
// record stored as a delta against a base listing is encoded again from
// its decoded form, so that a reader needs one request per listing, not
// one per step of a delta chain.
func WholeRecord(ctx context.Context, o *store.Objects, h hash.Hash) ([]byte, *tree.Dir, error) {
	rec, err := o.Source().Listing(ctx, h)
	if err != nil {
		return nil, nil, fmt.Errorf("directory %s: %w", h, err)
	}
	d, err := o.Dir(ctx, h) // verified
	if err != nil {
		return nil, nil, err
	}
	if base, err := store.ListingBase(rec); err != nil || !base.IsZero() {
		enc, err := d.Encode()
		if err != nil {
			return nil, nil, fmt.Errorf("directory %s: %w", h, err)
		}
		rec = store.PackListing(enc)
	}
	return rec, d, nil
}

// BuildTree returns the tree object of listing h, read through o.
func BuildTree(ctx context.Context, o *store.Objects, h hash.Hash) ([]byte, error) {
	t := newFilling(TreeMax)
	// add adds listing l and its subtree; it reports false once the
	// object is full.
	var add func(l hash.Hash) (bool, error)
	add = func(l hash.Hash) (bool, error) {
		if t.in[l] {
			return true, nil
		}
		rec, d, err := WholeRecord(ctx, o, l)
		if err != nil {
			return false, fmt.Errorf("tree %s: %w", h, err)
		}
		if !t.add(l, EncodeListing(l, rec)) {
			return false, nil
		}
		for i := range d.Entries {
			if e := &d.Entries[i]; e.Type == tree.TypeDir {
				if ok, err := add(e.Hash); !ok || err != nil {
					return ok, err
				}
			}
		}
		return true, nil
	}
	if _, err := add(h); err != nil {
		return nil, err
	}
	return EncodeTree(h, t.members), nil
}

// EncodeTree returns the tree object of listing h holding the encoded
// listing objects members.
func EncodeTree(h hash.Hash, members [][]byte) []byte {
	n := 16
	for _, m := range members {
		n += len(m) + binary.MaxVarintLen64
	}
	return encodeMembers(header(Tree, h, n), members)
}
