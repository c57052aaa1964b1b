// Package diff compares two stored trees entry by entry: what was added,
// removed, modified (content), changed type, or changed only its metadata.
// It builds on walk.ComparePaths, so identical subtrees are skipped by hash
// without being read, and an added or removed directory is one change
// carrying its listing's file totals, not one change per entry below it.
package diff

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/walk"
)

// Kind is what happened to an entry.
type Kind uint8

// Kinds of change.
const (
	Added       Kind = iota + 1 // only in B
	Removed                     // only in A
	Modified                    // content: a file's bytes or a device's number
	TypeChanged                 // a file became a symlink, a directory a file, …
	Metadata                    // the same content with other attributes (see Attrs)
)

func (k Kind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Modified:
		return "modified"
	case TypeChanged:
		return "type"
	case Metadata:
		return "metadata"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// Attrs is a set of attributes that differ between two entries.
type Attrs uint8

// Attributes compared. A directory's listing hash, entry count and link
// count follow from its content and are not compared: changes below it
// are reported for themselves.
const (
	Mode   Attrs = 1 << iota // permission bits with setuid, setgid, sticky
	Owner                    // uid or gid
	MTime                    // modification time (ns)
	Xattrs                   // extended attributes
	Target                   // a symlink's target
	Links                    // a file's hard-link count
)

var attrNames = []string{"mode", "owner", "mtime", "xattrs", "target", "links"}

// Names returns the names of the attributes in the set, in a fixed order.
func (a Attrs) Names() []string {
	var out []string
	for i, n := range attrNames {
		if a&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Totals counts regular files and their bytes.
type Totals struct {
	Files, Bytes int64
}

// Change is one entry that differs between A and B.
type Change struct {
	// Path is the entry's slash-separated path below the compared tops,
	// in raw name bytes (not necessarily UTF-8); "" is the tops themselves.
	Path string
	Kind Kind
	A, B *tree.Entry // nil for an added (A) or removed (B) entry
	// Attrs are the attributes that differ: for Metadata, and for
	// Modified when attributes changed along with the content.
	Attrs Attrs
	// Gone and New total the regular files the change takes away and
	// brings: for added, removed and type-changed entries, a file's one
	// file or a directory's listing totals (everything below it).
	Gone, New Totals
}

// Trees compares tree a with tree b, given as their top entries (usually
// directories, but any two entries compare), and tells fn of each change
// in path order, a directory before what is below it.
func Trees(ctx context.Context, o *store.Objects, a, b *tree.Entry, fn func(Change) error) error {
	if err := report(ctx, o, "", a, b, fn); err != nil {
		return err
	}
	if a.Type != tree.TypeDir || b.Type != tree.TypeDir {
		return nil
	}
	return walk.ComparePaths(ctx, o, a.Hash, b.Hash, func(wc walk.Change) error {
		return report(ctx, o, wc.Path(), wc.A, wc.B, fn)
	})
}

// report classifies one pair of entries (either may be nil) and tells fn
// if they differ.
func report(ctx context.Context, o *store.Objects, path string, a, b *tree.Entry, fn func(Change) error) error {
	c := Change{Path: path, A: a, B: b}
	var err error
	switch {
	case a == nil:
		c.Kind = Added
		c.New, err = totals(ctx, o, b)
	case b == nil:
		c.Kind = Removed
		c.Gone, err = totals(ctx, o, a)
	case a.Type != b.Type:
		c.Kind = TypeChanged
		if c.Gone, err = totals(ctx, o, a); err == nil {
			c.New, err = totals(ctx, o, b)
		}
	default:
		c.Attrs = attrs(a, b)
		switch {
		case contentDiffers(a, b):
			c.Kind = Modified
		case c.Attrs != 0:
			c.Kind = Metadata
		default:
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", Quote(path), err)
	}
	return fn(c)
}

// totals counts the regular files of entry e: itself, or for a directory
// everything below it, from its listing's totals.
func totals(ctx context.Context, o *store.Objects, e *tree.Entry) (Totals, error) {
	switch e.Type {
	case tree.TypeFile:
		return Totals{Files: 1, Bytes: e.Size}, nil
	case tree.TypeDir:
		d, err := o.Dir(ctx, e.Hash)
		if err != nil {
			return Totals{}, err
		}
		return Totals{Files: int64(d.Files), Bytes: int64(d.Bytes)}, nil
	}
	return Totals{}, nil
}

func contentDiffers(a, b *tree.Entry) bool {
	switch a.Type {
	case tree.TypeFile:
		return a.Hash != b.Hash || a.Size != b.Size
	case tree.TypeCharDev, tree.TypeBlockDev:
		return a.Rdev != b.Rdev
	}
	return false
}

// attrs returns the attributes that differ between two entries of one type.
func attrs(a, b *tree.Entry) Attrs {
	var d Attrs
	if a.Mode != b.Mode {
		d |= Mode
	}
	if a.UID != b.UID || a.GID != b.GID {
		d |= Owner
	}
	if a.MTime != b.MTime {
		d |= MTime
	}
	if !tree.SameXattrs(a.Xattrs, b.Xattrs) {
		d |= Xattrs
	}
	if a.Target != b.Target {
		d |= Target
	}
	if a.Type == tree.TypeFile && a.Nlink != b.Nlink {
		d |= Links
	}
	return d
}

// Stat sums changes: entries per kind, the files and bytes added and
// removed (including everything inside added and removed directories),
// and the new content of modified files.
type Stat struct {
	Added       int64 `json:"added"`
	Removed     int64 `json:"removed"`
	Modified    int64 `json:"modified"`
	TypeChanged int64 `json:"type_changed"`
	Metadata    int64 `json:"metadata"`

	FilesAdded   int64 `json:"files_added"`
	BytesAdded   int64 `json:"bytes_added"`
	FilesRemoved int64 `json:"files_removed"`
	BytesRemoved int64 `json:"bytes_removed"`
	// BytesChanged is what modified files hold that their old versions do
	// not: the bytes of their new chunks (chunks not in the old file).
	BytesChanged int64 `json:"bytes_changed"`
}

// Count adds c to s. For a modified file it reads both chunk lists.
func (s *Stat) Count(ctx context.Context, o *store.Objects, c Change) error {
	switch c.Kind {
	case Added:
		s.Added++
	case Removed:
		s.Removed++
	case Modified:
		s.Modified++
		if c.A.Type == tree.TypeFile {
			n, err := newBytes(ctx, o, c.A.Hash, c.B.Hash)
			if err != nil {
				return fmt.Errorf("%s: %w", Quote(c.Path), err)
			}
			s.BytesChanged += n
		}
	case TypeChanged:
		s.TypeChanged++
	case Metadata:
		s.Metadata++
	}
	s.FilesAdded += c.New.Files
	s.BytesAdded += c.New.Bytes
	s.FilesRemoved += c.Gone.Files
	s.BytesRemoved += c.Gone.Bytes
	return nil
}

// newBytes returns the bytes of file b's chunks that file a does not have.
func newBytes(ctx context.Context, o *store.Objects, a, b hash.Hash) (int64, error) {
	fa, err := o.File(ctx, a)
	if err != nil {
		return 0, err
	}
	fb, err := o.File(ctx, b)
	if err != nil {
		return 0, err
	}
	old := make(map[hash.Hash]struct{}, len(fa.List.Chunks))
	for _, c := range fa.List.Chunks {
		old[c.Hash] = struct{}{}
	}
	var n int64
	for _, c := range fb.List.Chunks {
		if _, ok := old[c.Hash]; !ok {
			n += int64(c.Size)
		}
	}
	return n, nil
}

// Quote returns a path as printed in text: unchanged when Go quoting
// would leave it so (printable UTF-8 without quotes or backslashes), else
// Go-quoted ("…"), so that every printed path names exactly one stored
// path. "" (the tops) is ".".
func Quote(p string) string {
	if p == "" {
		return "."
	}
	if q := strconv.Quote(p); q[1:len(q)-1] != p {
		return q
	}
	return p
}
