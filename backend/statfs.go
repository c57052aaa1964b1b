package backend

import (
	"context"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// Statfs is what a view reports to statfs(2), in blocks of Bsize bytes.
// Nothing can be written through a view, so no block is free; but the
// store grows on its disk with every ingest, so Avail is the room it has
// there, and df shows how full that disk would be rather than 100%.
type Statfs struct {
	Bsize     uint32
	Blocks    uint64 // the store: its file and write-ahead log (0 for a remote)
	Free      uint64 // always 0
	Avail     uint64 // free space on the disk that holds the store (0 for a remote)
	Files     uint64 // the regular files the view serves, plus FreeFiles
	FreeFiles uint64 // a bound on files ingest could still add: one per Avail block
	NameLen   uint32
}

// statfsBsize is the block size a view reports.
const statfsBsize = 4096

// Statfs describes the view for statfs(2); frontends report it as it is.
func (v *View) Statfs(ctx context.Context) (Statfs, error) {
	out := Statfs{Bsize: statfsBsize, NameLen: 255}
	if used, avail, ok := v.s.Space(); ok {
		out.Blocks = uint64(used+statfsBsize-1) / statfsBsize
		out.Avail = uint64(avail) / statfsBsize
	}
	files, err := v.files(ctx)
	if err != nil {
		return out, err
	}
	out.FreeFiles = out.Avail
	out.Files = files + out.FreeFiles
	return out, nil
}

// files counts the regular files the view serves.
func (v *View) files(ctx context.Context) (uint64, error) {
	if v.root.level == levelStored {
		d, err := v.s.Dir(ctx, v.root.Hash)
		if err != nil {
			return 0, err
		}
		return d.Files, nil
	}
	roots, err := v.s.Roots(ctx)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, r := range roots {
		if v.root.level == levelTop || r.Name == v.root.name {
			n += uint64(r.Files)
		}
	}
	return n, nil
}

// topAttr sets a namespace or name view's top directory as its roots make
// it: modified when the newest of them was created, and linked from each
// subdirectory (a name, or a version) besides "." and its parent.
func topAttr(top *Node, roots []store.Root) {
	subdirs := map[string]bool{}
	for _, r := range roots {
		if top.level == levelName && r.Name != top.name {
			continue
		}
		if top.level == levelTop {
			subdirs[r.Name] = true
		} else {
			subdirs[r.Version] = true
		}
		top.MTime = max(top.MTime, r.Created.UnixNano())
	}
	top.Nlink = uint32(2 + len(subdirs))
}
