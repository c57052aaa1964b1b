// Package retain decides which roots a removal takes: named versions, or
// all but the newest few versions of a name. Its picks run inside
// store.RemoveRoots's transaction, on the roots as that transaction sees
// them, in Roots order (by name, then oldest first).
package retain

import (
	"errors"
	"fmt"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// Pick chooses, from every root in Roots order, the roots to remove.
type Pick func(all []store.Root) ([]store.Root, error)

// Versions picks exactly the roots refs name (NAME@VERSION, where version
// latest is the newest of NAME), each once. A root that does not exist is
// an error, and nothing is picked.
func Versions(refs []store.Ref) Pick {
	return func(all []store.Root) ([]store.Root, error) {
		var out []store.Root
		taken := map[string]bool{}
		for _, ref := range refs {
			i := find(all, ref)
			if i < 0 {
				return nil, fmt.Errorf("root %s: %w", ref, store.ErrNotFound)
			}
			if id := all[i].ID(); !taken[id] {
				taken[id] = true
				out = append(out, all[i])
			}
		}
		return out, nil
	}
}

// find returns the index of the root ref names, or -1.
func find(all []store.Root, ref store.Ref) int {
	found := -1
	for i, r := range all {
		if r.Name != ref.Name {
			continue
		}
		if ref.Version == store.Latest || r.Version == ref.Version {
			found = i // for latest, the last of the name is the newest
		}
	}
	return found
}

// KeepLast picks every version of each name but its n newest, newest by
// creation time as version latest is. A name without versions is an
// error; n must be at least 1.
func KeepLast(n int, names []string) Pick {
	return func(all []store.Root) ([]store.Root, error) {
		if n < 1 {
			return nil, errors.New("keep at least one version")
		}
		var out []store.Root
		seen := map[string]bool{}
		for _, name := range names {
			if seen[name] {
				continue
			}
			seen[name] = true
			var versions []store.Root
			for _, r := range all {
				if r.Name == name {
					versions = append(versions, r)
				}
			}
			if len(versions) == 0 {
				return nil, fmt.Errorf("root name %s: %w", name, store.ErrNotFound)
			}
			if len(versions) > n {
				out = append(out, versions[:len(versions)-n]...)
			}
		}
		return out, nil
	}
}
