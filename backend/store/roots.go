package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Root is a named, versioned tree.
type Root struct {
	Name    string
	Version string
	Top     tree.Entry // the top directory: attributes and listing hash
	Created time.Time
	Source  string
	Files   int64
	Bytes   int64
	Stored  int64 // bytes its ingest added to the store
	Gen     int64 // ingest generation of its reuse index
	// Damaged is why the row's top entry cannot be read, or nil. Roots
	// lists a damaged root, so that one bad row hides no other root; Root
	// and Newest return it with this error.
	Damaged error
}

// ID returns "name@version".
func (r Root) ID() string { return r.Name + "@" + r.Version }

// Latest is the version name the namespace view reserves for each name's
// newest version.
const Latest = "latest"

// CheckName validates a root name or version: non-empty, at most 255 bytes
// of UTF-8 without '/', '@', control characters, "." or "..".
func CheckName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty %s", kind)
	case len(s) > 255:
		return fmt.Errorf("%s %.20q… is longer than 255 bytes", kind, s)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not UTF-8", kind, s)
	case s == "." || s == "..":
		return fmt.Errorf("%s %q is not allowed", kind, s)
	case strings.ContainsAny(s, "/@"):
		return fmt.Errorf("%s %q may not contain '/' or '@'", kind, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q contains a control character", kind, s)
	}
	return nil
}

// Ref names a root, or a path inside one: NAME@VERSION[/sub/path]. Version
// may be empty where a caller allows "NAME" alone.
type Ref struct {
	Name, Version string
	Path          string // slash-separated, no leading slash; "" is the top
}

func (r Ref) String() string {
	s := r.Name
	if r.Version != "" {
		s += "@" + r.Version
	}
	if r.Path != "" {
		s += "/" + r.Path
	}
	return s
}

// ParseRef parses NAME@VERSION[/path]. With needVersion false, NAME alone
// (and NAME/path is refused) is accepted too. NAME and VERSION are UTF-8
// (CheckName); the path is bytes, as stored names are, with no NUL.
func ParseRef(s string, needVersion bool) (Ref, error) {
	head, path, _ := strings.Cut(s, "/")
	name, version, hasAt := strings.Cut(head, "@")
	r := Ref{Name: name, Version: version, Path: strings.Trim(path, "/")}
	if err := CheckName("root name", name); err != nil {
		return r, fmt.Errorf("invalid root %q: %w", s, err)
	}
	if !hasAt {
		if needVersion || path != "" {
			return r, fmt.Errorf("invalid root %q: want NAME@VERSION", s)
		}
		return r, nil
	}
	if err := CheckName("version", version); err != nil {
		return r, fmt.Errorf("invalid root %q: %w", s, err)
	}
	if strings.IndexByte(r.Path, 0) >= 0 {
		return r, fmt.Errorf("invalid root path %q: contains a NUL byte", s)
	}
	for _, part := range strings.Split(r.Path, "/") {
		if part == "." || part == ".." {
			return r, fmt.Errorf("invalid root path %q: no . or .. components", s)
		}
	}
	return r, nil
}

const rootCols = `name, version, top, created, source, files, bytes, stored, gen`

// scanRoot reads a roots row; a top entry that does not decode makes the
// root Damaged.
func scanRoot(st *sqlite.Stmt) Root {
	r := Root{Name: st.ColumnText(0), Version: st.ColumnText(1), Created: time.Unix(0, st.ColumnInt64(3)),
		Source: st.ColumnText(4), Files: st.ColumnInt64(5), Bytes: st.ColumnInt64(6), Stored: st.ColumnInt64(7), Gen: st.ColumnInt64(8)}
	b := columnCopy(st, 2)
	d, err := tree.DecodeDir(b)
	if err != nil || len(d.Entries) != 1 || d.Entries[0].Type != tree.TypeDir {
		r.Damaged = fmt.Errorf("%w: root %s has a malformed top entry", ErrCorrupt, r.ID())
		return r
	}
	r.Top = d.Entries[0]
	return r
}

// encodeTop encodes a root's top entry for the roots table.
func encodeTop(e tree.Entry) ([]byte, error) {
	e.Name = "top"
	d := tree.Dir{Entries: []tree.Entry{e}}
	return d.Encode()
}

// Roots lists every root by name, then oldest version first.
func (s *Store) Roots(ctx context.Context) ([]Root, error) {
	var out []Root
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return sqlitex.Execute(c, `SELECT `+rootCols+` FROM roots ORDER BY name, created, id`, &sqlitex.ExecOptions{
			ResultFunc: func(st *sqlite.Stmt) error { out = append(out, scanRoot(st)); return nil }})
	})
	if err != nil {
		return nil, fmt.Errorf("list roots: %w", err)
	}
	return out, nil
}

// Root returns NAME@VERSION; version "latest" is the name's newest.
func (s *Store) Root(ctx context.Context, name, version string) (Root, error) {
	if version == Latest {
		return s.Newest(ctx, name)
	}
	return s.rootWhere(ctx, `WHERE name = ? AND version = ?`, name+"@"+version, name, version)
}

// Newest returns the most recently created version of name.
func (s *Store) Newest(ctx context.Context, name string) (Root, error) {
	return s.rootWhere(ctx, `WHERE name = ? ORDER BY created DESC, id DESC LIMIT 1`, name, name)
}

func (s *Store) rootWhere(ctx context.Context, where, what string, args ...string) (Root, error) {
	var r Root
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		return queryRow(c, `SELECT `+rootCols+` FROM roots `+where,
			func(st *sqlite.Stmt) {
				for i, a := range args {
					st.BindText(i+1, a)
				}
			},
			func(st *sqlite.Stmt) error { r = scanRoot(st); return r.Damaged })
	})
	if errors.Is(err, errNoRow) {
		return r, fmt.Errorf("root %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("root %s: %w", what, err)
	}
	return r, nil
}
