package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/diff"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

func newDiffCommand(g *globals) *cobra.Command {
	var jsonOut, stat bool
	cmd := &cobra.Command{
		Use:   "diff [--json] [--stat] A B",
		Short: "Compare two roots or subtrees",
		Long: `Diff compares two roots or directories in them (NAME@VERSION[/path];
version latest is the newest) and prints one line per entry that differs:
its kind, padded with spaces, its path relative to A and B, then a tab and
details if there are any:

  added     only in B; a directory is one line with its file count and bytes
  removed   only in A; likewise
  modified  a file's content (or a device's number) changed
  type      the entry changed type (file, dir, symlink, …)
  metadata  only attributes changed: mode, owner, mtime, xattrs, links
            (a file's hard-link count) or a symlink's target

Subtrees with the same hash are skipped without being read. A path that is
not printable UTF-8, or holds a quote or backslash, is printed Go-quoted
("…"); "." is A and B themselves. --stat prints counts and bytes instead:
entries per kind, files and bytes added and removed (including everything
in added and removed directories), and the bytes of new content in modified
files (their chunks that the old version does not have). --json prints one
JSON object per change, or the --stat totals; a path that is not UTF-8 gets
its raw bytes in path_b64 too.

The exit code is 0 when A and B are the same, 1 when they differ and 2 on
errors, like diff(1).`,
		Example: `  spraydryfs diff toolchain@1.0 toolchain@1.1
  spraydryfs diff --stat toolchain@1.0/lib toolchain@latest/lib
  spraydryfs diff --json a@1 b@1 | jq -r 'select(.kind == "modified") | .path'`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			err := runDiff(cmd.Context(), g, a[0], a[1], jsonOut, stat, os.Stdout)
			var ue usageError
			var xe exitError
			if err == nil || errors.As(err, &ue) || errors.As(err, &xe) {
				return err
			}
			return exitError{code: 2, err: err}
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON lines (with --stat: one JSON object)")
	cmd.Flags().BoolVar(&stat, "stat", false, "print counts and bytes instead of the changes")
	return cmd
}

// runDiff compares a with b and prints the result; it returns exitError
// 1 (silent) when they differ.
func runDiff(ctx context.Context, g *globals, a, b string, jsonOut, stat bool, w io.Writer) error {
	refA, err := store.ParseRef(a, true)
	if err != nil {
		return usageError{err}
	}
	refB, err := store.ParseRef(b, true)
	if err != nil {
		return usageError{err}
	}
	s, err := g.open(false)
	if err != nil {
		return err
	}
	defer s.Close()
	ea, err := entryAt(ctx, s.Objects, refA)
	if err != nil {
		return err
	}
	eb, err := entryAt(ctx, s.Objects, refB)
	if err != nil {
		return err
	}
	var st diff.Stat
	differ := false
	enc := json.NewEncoder(w)
	err = diff.Trees(ctx, s.Objects, ea, eb, func(c diff.Change) error {
		differ = true
		if stat {
			return st.Count(ctx, s.Objects, c)
		}
		if jsonOut {
			return enc.Encode(changeJSON(c))
		}
		_, err := fmt.Fprintln(w, changeLine(c))
		return err
	})
	if err != nil {
		return err
	}
	if stat {
		if jsonOut {
			err = enc.Encode(st)
		} else {
			err = printStat(w, &st)
		}
		if err != nil {
			return err
		}
	}
	if differ {
		return exitError{code: 1}
	}
	return nil
}

// entryAt returns the entry that ref names: a root's top or an entry
// inside it (symlinks are not followed).
func entryAt(ctx context.Context, o *store.Objects, ref store.Ref) (*tree.Entry, error) {
	sub := ref.Path
	ref.Path = ""
	v, err := backend.OpenRoot(ctx, o, ref)
	if err != nil {
		return nil, err
	}
	n, err := v.Walk(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", ref, sub, err)
	}
	return &tree.Entry{Name: n.Name, Type: n.Type, Mode: n.Mode, UID: n.UID, GID: n.GID, MTime: n.MTime, Size: n.Size,
		Nlink: n.Nlink, Rdev: n.Rdev, Target: n.Target, Xattrs: n.Xattrs, Hash: n.Hash}, nil
}

// changeLine is a change as one text line: the kind padded with spaces,
// the path, and a tab before any details (a path with a tab is quoted).
func changeLine(c diff.Change) string {
	line := fmt.Sprintf("%-9s%s", c.Kind, diff.Quote(c.Path))
	var details []string
	switch c.Kind {
	case diff.Added:
		details = contentDetail(c.B, c.New)
	case diff.Removed:
		details = contentDetail(c.A, c.Gone)
	case diff.TypeChanged:
		details = append(details, c.A.Type.String()+" -> "+c.B.Type.String())
	case diff.Modified:
		if c.A.Type == tree.TypeFile {
			details = append(details, fmt.Sprintf("size %d -> %d", c.A.Size, c.B.Size))
		} else {
			details = append(details, fmt.Sprintf("device %#x -> %#x", c.A.Rdev, c.B.Rdev))
		}
	}
	if c.Attrs&diff.Mode != 0 {
		details = append(details, fmt.Sprintf("mode %04o -> %04o", c.A.Mode, c.B.Mode))
	}
	if c.Attrs&diff.Owner != 0 {
		details = append(details, fmt.Sprintf("owner %d:%d -> %d:%d", c.A.UID, c.A.GID, c.B.UID, c.B.GID))
	}
	if c.Attrs&diff.MTime != 0 {
		details = append(details, "mtime")
	}
	if c.Attrs&diff.Xattrs != 0 {
		details = append(details, "xattrs")
	}
	if c.Attrs&diff.Links != 0 {
		details = append(details, fmt.Sprintf("links %d -> %d", c.A.Nlink, c.B.Nlink))
	}
	if c.Attrs&diff.Target != 0 {
		details = append(details, fmt.Sprintf("target %q -> %q", c.A.Target, c.B.Target))
	}
	if len(details) == 0 {
		return line
	}
	return line + "\t" + strings.Join(details, ", ")
}

// contentDetail describes an added or removed entry: a directory with
// its totals, other types but regular files by name.
func contentDetail(e *tree.Entry, t diff.Totals) []string {
	switch e.Type {
	case tree.TypeFile:
		return nil
	case tree.TypeDir:
		return []string{fmt.Sprintf("dir, %s, %s", plural(int(t.Files), "file"), size(t.Bytes))}
	}
	return []string{e.Type.String()}
}

// changeJSON is a change as a JSON object.
func changeJSON(c diff.Change) map[string]any {
	m := map[string]any{"kind": c.Kind.String(), "path": c.Path}
	if !utf8.ValidString(c.Path) {
		m["path_b64"] = base64.StdEncoding.EncodeToString([]byte(c.Path))
	}
	if c.Attrs != 0 {
		m["attrs"] = c.Attrs.Names()
	}
	if c.A != nil {
		m["a"] = entryJSON(c.A)
	}
	if c.B != nil {
		m["b"] = entryJSON(c.B)
	}
	if c.Gone != (diff.Totals{}) {
		m["files_removed"], m["bytes_removed"] = c.Gone.Files, c.Gone.Bytes
	}
	if c.New != (diff.Totals{}) {
		m["files_added"], m["bytes_added"] = c.New.Files, c.New.Bytes
	}
	return m
}

// entryJSON is one side of a change: its stored attributes.
func entryJSON(e *tree.Entry) map[string]any {
	m := map[string]any{"type": e.Type.String(), "mode": fmt.Sprintf("%04o", e.Mode), "uid": e.UID, "gid": e.GID, "mtime_ns": e.MTime}
	switch e.Type {
	case tree.TypeFile:
		m["size"], m["nlink"], m["hash"] = e.Size, e.Nlink, e.Hash.String()
	case tree.TypeDir:
		m["entries"], m["hash"] = e.Size, e.Hash.String()
	case tree.TypeSymlink:
		m["target"] = e.Target
		if !utf8.ValidString(e.Target) {
			m["target_b64"] = base64.StdEncoding.EncodeToString([]byte(e.Target))
		}
	case tree.TypeCharDev, tree.TypeBlockDev:
		m["rdev"] = e.Rdev
	}
	if len(e.Xattrs) > 0 {
		names := make([]string, len(e.Xattrs))
		for i, x := range e.Xattrs {
			names[i] = x.Name
		}
		m["xattrs"] = names
	}
	return m
}

// printStat prints --stat totals, one line per kind.
func printStat(w io.Writer, st *diff.Stat) error {
	_, err := fmt.Fprintf(w, "%-9s%d entries: %d files, %s\n%-9s%d entries: %d files, %s\n%-9s%d entries: %s of new content\n%-9s%d entries\n%-9s%d entries\n",
		diff.Added, st.Added, st.FilesAdded, size(st.BytesAdded), diff.Removed, st.Removed, st.FilesRemoved, size(st.BytesRemoved),
		diff.Modified, st.Modified, size(st.BytesChanged), diff.TypeChanged, st.TypeChanged, diff.Metadata, st.Metadata)
	return err
}
