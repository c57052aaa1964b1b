package backend

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// Errors of OpenSpec and OpenWithin. ErrBadSpec maps to EINVAL and
// ErrOutside to EACCES (see Errno).
var (
	ErrBadSpec = fmt.Errorf("malformed tree (want NAME[@VERSION[/path]]): %w", fs.ErrInvalid)
	ErrOutside = fmt.Errorf("outside the served tree: %w", fs.ErrPermission)
)

// parseSpec parses NAME[@VERSION[/path]] strictly: no empty, . or ..
// path components (a trailing slash is allowed).
func parseSpec(spec string) (store.Ref, error) {
	ref, err := store.ParseRef(spec, false)
	if err != nil {
		return ref, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	if _, raw, ok := strings.Cut(spec, "/"); ok && strings.TrimRight(raw, "/") != "" {
		for _, part := range strings.Split(strings.TrimRight(raw, "/"), "/") {
			if part == "" || part == "." || part == ".." {
				return ref, fmt.Errorf("%w: %q", ErrBadSpec, spec)
			}
		}
	}
	return ref, nil
}

// OpenSpec opens the view a tree spec names: "" every root as
// /<name>/<version>/…; NAME that name's versions; NAME@VERSION or
// NAME@VERSION/sub/dir one root or a directory inside it, with "latest"
// resolved now. The view remembers the spec, so that OpenWithin can keep
// later specs inside it.
func OpenSpec(ctx context.Context, s *store.Objects, spec string) (*View, error) {
	if spec == "" {
		return OpenNamespace(s), nil
	}
	ref, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	return openRef(ctx, s, ref)
}

func openRef(ctx context.Context, s *store.Objects, ref store.Ref) (*View, error) {
	if ref.Version == "" {
		return OpenName(ctx, s, ref.Name)
	}
	r, err := s.Root(ctx, ref.Name, ref.Version)
	if err != nil {
		return nil, err
	}
	ref.Version = r.Version
	v, err := OpenRoot(ctx, s, ref)
	if err != nil {
		return nil, err
	}
	v.spec = &ref
	return v, nil
}

// OpenWithin opens the view spec names (as OpenSpec) if it lies within
// limit, the view a server was configured with: "" is limit itself; a
// namespace limit allows every spec; a name's limit (NAME) that name's
// roots and their directories; a root's limit (NAME@VERSION[/path]) that
// tree and directories inside it, by the same version or by "latest" while
// it resolves to it. Anything else fails with ErrOutside before the store
// is asked about it. A one-root view not opened by OpenSpec allows nothing
// but "".
func OpenWithin(ctx context.Context, limit *View, spec string) (*View, error) {
	if spec == "" {
		return limit, nil
	}
	ref, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	outside := fmt.Errorf("%s: %w", spec, ErrOutside)
	switch limit.root.level {
	case levelTop:
	case levelName:
		if ref.Name != limit.root.name {
			return nil, outside
		}
	default:
		l := limit.spec
		if l == nil || ref.Name != l.Name || ref.Version == "" ||
			(ref.Path != l.Path && !strings.HasPrefix(ref.Path, l.Path+"/") && l.Path != "") {
			return nil, outside
		}
		if ref.Version != l.Version {
			if ref.Version != store.Latest {
				return nil, outside
			}
			r, err := limit.s.Newest(ctx, ref.Name)
			if err != nil || r.Version != l.Version {
				return nil, outside
			}
			ref.Version = r.Version
		}
		if ref.Path == l.Path {
			return limit, nil
		}
	}
	return openRef(ctx, limit.s, ref)
}
