// Package extract restores a tree of a SprayDryFS view: to a directory on
// disk (ToDir) or as a PAX tar stream (ToTar). Both carry everything the
// store records: regular files (streamed chunk by chunk), directories,
// symlinks, hard links, FIFOs, device nodes, mode bits with setuid, setgid
// and sticky, owners, extended attributes and nanosecond mtimes. Sockets
// cannot be recreated meaningfully and are skipped with a warning.
//
// ToDir never writes outside its destination, whatever names a store
// holds: each entry is created as a new direct child of a directory it
// created (joinName), and names Windows cannot hold are rewritten there
// (localName). What the platform cannot restore (on Windows: FIFOs, device
// nodes, owners, extended attributes, and symlinks without the right to
// create them) is left out and named in one warning per extraction.
package extract

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Options configure ToDir.
type Options struct {
	// Owner restores each entry's uid and gid even when not running as
	// root (root always does); failing to change an owner is then an
	// error.
	Owner bool
	// Log receives warnings about entries that cannot be restored here:
	// sockets, device nodes without root, extended attributes outside the
	// user namespace without root, and once per extraction what the
	// platform cannot restore at all. Nil uses slog.Default().
	Log *slog.Logger
}

// ToDir restores the tree at node n of v under dest. If n is a directory,
// its contents go into dest, which is created if missing and must otherwise
// be an empty directory; dest itself then gets n's mode, owner, extended
// attributes and mtime. Any other node is written as dest, which must not
// exist. Missing parents of dest are created. Entries sharing an inode (hard links) are linked to the first one
// extracted. A regular file appears under its name only once complete: it
// is written to a temporary name in the same directory and renamed. The
// first error, including corrupt content (backend.ErrCorrupt), stops the
// extraction and is returned wrapped with the path concerned.
func ToDir(ctx context.Context, v *backend.View, n *backend.Node, dest string, opt Options) error {
	x := &dirWriter{v: v, log: opt.Log, root: os.Geteuid() == 0, links: map[uint64]string{}}
	if x.log == nil {
		x.log = slog.Default()
	}
	defer x.warnDropped()
	x.owner = x.root || opt.Owner
	if !n.IsDir() {
		if _, err := os.Lstat(dest); err == nil {
			return fmt.Errorf("extract %s: %w", dest, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("extract %s: %w", dest, err)
		}
		if err := os.MkdirAll(filepath.Dir(dest), 0o777); err != nil {
			return fmt.Errorf("extract %s: %w", dest, err)
		}
		return x.entry(ctx, n, dest)
	}
	if err := emptyDir(dest); err != nil {
		return fmt.Errorf("extract %s: %w", dest, err)
	}
	if err := x.contents(ctx, n, dest); err != nil {
		return err
	}
	return x.meta(dest, dest, n)
}

// emptyDir creates dir (and its missing parents, as mkdir -p would) if it
// is missing, and otherwise checks that it is an empty directory.
func emptyDir(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o777); err != nil {
			return err
		}
		return os.Mkdir(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("destination exists and is not a directory")
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != io.EOF {
		if err == nil {
			return fmt.Errorf("destination directory is not empty")
		}
		return err
	}
	return nil
}

// dirWriter is one ToDir run.
type dirWriter struct {
	v     *backend.View
	log   *slog.Logger
	root  bool              // running as root
	owner bool              // restore uid and gid
	links map[uint64]string // hard-link inode → first path extracted

	dropped []dropped // what this platform could not restore, in order first met
}

// dropped counts the entries that lost one kind of thing.
type dropped struct {
	what  string
	count int
	first string // the first path concerned
}

// drop records that path lost what (e.g. "owners").
func (x *dirWriter) drop(what, path string) {
	for i := range x.dropped {
		if x.dropped[i].what == what {
			x.dropped[i].count++
			return
		}
	}
	x.dropped = append(x.dropped, dropped{what: what, count: 1, first: path})
}

// warnDropped logs, once, everything drop recorded.
func (x *dirWriter) warnDropped() {
	if len(x.dropped) == 0 {
		return
	}
	args := make([]any, 0, len(x.dropped))
	for _, d := range x.dropped {
		args = append(args, slog.String(d.what, fmt.Sprintf("%d entries, first %s", d.count, d.first)))
	}
	x.log.Warn("extract: this platform cannot restore everything; left out", args...)
}

// contents extracts the entries of directory dir into the existing
// directory path.
func (x *dirWriter) contents(ctx context.Context, dir *backend.Node, path string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	kids, err := x.v.ReadDir(ctx, dir)
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	for _, k := range kids {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract %s: %w", path, err)
		}
		p, renamed, err := joinName(path, k.Name, windowsNames)
		if err != nil {
			return fmt.Errorf("extract %s: %q: %w", path, k.Name, err)
		}
		if renamed {
			x.drop("names not valid here, renamed", p)
		}
		if err := x.entry(ctx, k, p); err != nil {
			return err
		}
	}
	return nil
}

// entry creates node n at path, with its contents and metadata.
func (x *dirWriter) entry(ctx context.Context, n *backend.Node, path string) error {
	if what := unsupported(n.Type); what != "" {
		x.drop(what, path)
		return nil
	}
	var err error
	switch n.Type {
	case tree.TypeDir:
		if err := os.Mkdir(path, 0o700); err != nil {
			return fmt.Errorf("extract %s: %w", path, err)
		}
		if err := x.contents(ctx, n, path); err != nil {
			return err
		}
	case tree.TypeFile:
		if first, ok := x.links[n.Ino]; ok && n.Nlink > 1 {
			if err := os.Link(first, path); err != nil {
				return fmt.Errorf("extract %s: %w", path, err)
			}
			return nil
		}
		if err := x.file(ctx, n, path); err != nil {
			return err
		}
		if n.Nlink > 1 {
			x.links[n.Ino] = path
		}
		return nil
	case tree.TypeSymlink:
		if err = os.Symlink(n.Target, path); symlinkDenied(err) {
			x.drop("symlinks (no right to create them)", path)
			return nil
		}
	case tree.TypeFIFO:
		err = mkfifo(path)
	case tree.TypeCharDev, tree.TypeBlockDev:
		if !x.root {
			x.log.Warn("skipping device node: creating one needs root", "path", path, "type", n.Type.String())
			return nil
		}
		err = mknod(path, n.Type == tree.TypeBlockDev, n.Rdev)
	case tree.TypeSocket:
		x.log.Warn("skipping socket: it cannot be restored", "path", path)
		return nil
	default:
		return fmt.Errorf("extract %s: unknown entry type %v", path, n.Type)
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	return x.meta(path, path, n)
}

// file writes regular file n to a temporary name beside path, sets its
// metadata and renames it to path; on failure the temporary file is removed.
func (x *dirWriter) file(ctx context.Context, n *backend.Node, path string) (err error) {
	r, err := x.v.Open(ctx, n)
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".spraydryfs-extract-*")
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	written, err := r.WriteToContext(ctx, ctxWriter{ctx, f})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && written != n.Size {
		err = fmt.Errorf("%w: content is %d bytes, the listing says %d", backend.ErrCorrupt, written, n.Size)
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	if err := x.meta(tmp, path, n); err != nil {
		return err
	}
	// Rename replaces: a name that exists already (two stored names that
	// are one here) is an error, as it is for every other type.
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			err = fs.ErrExist
		}
		return fmt.Errorf("extract %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	return nil
}

// meta applies n's owner, extended attributes, mode and mtime to path, in
// that order: chown clears setuid and setgid and drops security.capability,
// and a read-only mode would forbid setting user attributes. Errors name
// shown, the entry's final path.
func (x *dirWriter) meta(path, shown string, n *backend.Node) error {
	if x.owner {
		if err := lchown(path, n.UID, n.GID); errors.Is(err, errors.ErrUnsupported) {
			x.drop("owners", shown)
		} else if err != nil {
			return fmt.Errorf("extract %s: chown: %w", shown, err)
		}
	}
	for _, a := range n.Xattrs {
		if err := lsetxattr(path, a.Name, a.Value); err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				x.drop("extended attributes", shown)
				break
			}
			if !x.root && !strings.HasPrefix(a.Name, "user.") {
				x.log.Warn("skipping extended attribute: setting it needs root", "path", shown, "xattr", a.Name, "err", err)
				continue
			}
			return fmt.Errorf("extract %s: set xattr %s: %w", shown, a.Name, err)
		}
	}
	if n.Type != tree.TypeSymlink { // Linux has no mode on symlinks
		if err := chmod(path, n.Mode&0o7777); err != nil {
			return fmt.Errorf("extract %s: chmod: %w", shown, err)
		}
	}
	if err := setMtime(path, n.MTime); err != nil {
		return fmt.Errorf("extract %s: set mtime: %w", shown, err)
	}
	return nil
}

// ctxWriter fails writes once its context is done, so that streaming a
// large file stops between chunks on cancellation.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ToTar writes the tree at node n of v to w as a PAX tar stream. A
// directory's contents are at the top of the archive with relative names
// ("dir/file", no "./" prefix and no entry for the directory itself); any
// other node is one entry under its own name. Headers carry mode bits with
// setuid, setgid and sticky, numeric uid and gid, nanosecond mtimes, symlink
// targets, device numbers and extended attributes as SCHILY.xattr records.
// Hard links after the first of their group become link entries naming the
// first. Names that are not UTF-8 are stored as their raw bytes in PAX path
// records, which Go's archive/tar and GNU tar both restore. Sockets are
// skipped with a warning to slog.Default(). The first error, including
// corrupt content (backend.ErrCorrupt), stops the stream.
func ToTar(ctx context.Context, v *backend.View, n *backend.Node, w io.Writer) error {
	t := &tarWriter{v: v, tw: tar.NewWriter(w), links: map[uint64]string{}}
	var err error
	if n.IsDir() {
		err = t.contents(ctx, n, "")
	} else {
		err = t.entry(ctx, n, n.Name)
	}
	if err != nil {
		return err
	}
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("extract: finish tar stream: %w", err)
	}
	return nil
}

// tarWriter is one ToTar run.
type tarWriter struct {
	v     *backend.View
	tw    *tar.Writer
	links map[uint64]string // hard-link inode → first name written
}

// contents writes the entries of directory dir, whose archive name is
// prefix ("" at the top).
func (t *tarWriter) contents(ctx context.Context, dir *backend.Node, prefix string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("extract %s: %w", prefixOrDot(prefix), err)
	}
	kids, err := t.v.ReadDir(ctx, dir)
	if err != nil {
		return fmt.Errorf("extract %s: %w", prefixOrDot(prefix), err)
	}
	for _, k := range kids {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract %s: %w", prefixOrDot(prefix), err)
		}
		name := k.Name
		if prefix != "" {
			name = prefix + "/" + k.Name
		}
		if err := t.entry(ctx, k, name); err != nil {
			return err
		}
	}
	return nil
}

func prefixOrDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// entry writes node n as name, then its contents.
func (t *tarWriter) entry(ctx context.Context, n *backend.Node, name string) error {
	h := &tar.Header{Name: name, Mode: int64(n.Mode & 0o7777), Uid: int(n.UID), Gid: int(n.GID),
		ModTime: time.Unix(0, n.MTime), Format: tar.FormatPAX}
	for _, a := range n.Xattrs {
		// A PAX record's key may not contain '='.
		if strings.Contains(a.Name, "=") {
			slog.Warn("skipping extended attribute: a tar record cannot carry its name", "path", name, "xattr", a.Name)
			continue
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+a.Name] = string(a.Value)
	}
	switch n.Type {
	case tree.TypeDir:
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case tree.TypeFile:
		h.Typeflag, h.Size = tar.TypeReg, n.Size
		if n.Nlink > 1 {
			if first, ok := t.links[n.Ino]; ok {
				h.Typeflag, h.Size, h.Linkname = tar.TypeLink, 0, first
			} else {
				t.links[n.Ino] = name
			}
		}
	case tree.TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, n.Target
	case tree.TypeFIFO:
		h.Typeflag = tar.TypeFifo
	case tree.TypeCharDev, tree.TypeBlockDev:
		h.Typeflag = tar.TypeChar
		if n.Type == tree.TypeBlockDev {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(tree.Major(n.Rdev)), int64(tree.Minor(n.Rdev))
	case tree.TypeSocket:
		slog.Warn("skipping socket: tar cannot carry it", "path", name)
		return nil
	default:
		return fmt.Errorf("extract %s: unknown entry type %v", name, n.Type)
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return t.contents(ctx, n, name)
	case tar.TypeReg:
		r, err := t.v.Open(ctx, n)
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		written, err := r.WriteToContext(ctx, ctxWriter{ctx, t.tw})
		if err == nil && written != n.Size {
			err = fmt.Errorf("%w: content is %d bytes, the listing says %d", backend.ErrCorrupt, written, n.Size)
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
	}
	return nil
}
