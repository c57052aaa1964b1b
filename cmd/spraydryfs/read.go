package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/usage"
)

// openPath opens the store read-only and resolves NAME@VERSION[/path] to a
// view of the root and the node at path (symlinks in the path are not
// followed).
func (g *globals) openPath(ctx context.Context, arg string) (*readStore, *backend.View, *backend.Node, error) {
	ref, err := store.ParseRef(arg, true)
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	s, err := g.openReader()
	if err != nil {
		return nil, nil, nil, err
	}
	sub := ref.Path
	ref.Path = ""
	v, err := backend.OpenRoot(ctx, s.Objects, ref)
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	n, err := v.Walk(ctx, sub)
	if err != nil {
		s.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", arg, err)
	}
	return s, v, n, nil
}

func newRootsCommand(g *globals) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "roots",
		Short: "List the roots in the store",
		Long: `Roots lists every root: name, version, creation time, number of files and
logical size. --json adds its hash and source, and the stored bytes it
needs, shares with other roots and holds alone, as du shows them.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openReader()
			if err != nil {
				return err
			}
			defer s.Close()
			roots, err := s.Roots(cmd.Context())
			if err != nil {
				return err
			}
			if jsonOut {
				out := make([]map[string]any, len(roots))
				for i, r := range roots {
					out[i] = map[string]any{"name": r.Name, "version": r.Version, "created": r.Created.UTC().Format(time.RFC3339Nano),
						"files": r.Files, "bytes": r.Bytes, "hash": r.Top.Hash.String(), "source": r.Source}
				}
				if s.file != nil { // du's numbers are counted in the store file
					rep, err := usage.Compute(cmd.Context(), s.file, nil)
					if err != nil {
						return err
					}
					byID := map[string]usage.Root{}
					for _, r := range rep.Roots {
						byID[r.ID()] = r
					}
					for i, r := range roots {
						if u, ok := byID[r.ID()]; ok {
							out[i]["needed_bytes"], out[i]["shared_bytes"], out[i]["unique_bytes"] = u.Needed, u.Shared, u.Unique
						}
					}
				}
				return json.NewEncoder(os.Stdout).Encode(out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROOT\tCREATED\tFILES\tSIZE")
			var damaged []string
			for _, r := range roots {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.ID(), r.Created.Local().Format("2006-01-02 15:04:05"), r.Files, size(r.Bytes))
				if r.Damaged != nil {
					damaged = append(damaged, r.ID())
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(damaged) > 0 {
				return fmt.Errorf("damaged roots (their trees cannot be read; check names the fault): %s", strings.Join(damaged, " "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func newLsCommand(g *globals) *cobra.Command {
	var long, recursive, self, jsonOut bool
	cmd := &cobra.Command{
		Use:   "ls [-l] [-R] [-d] NAME@VERSION[/path]",
		Short: "List a directory of a root",
		Long: `Ls lists the entries of a directory in a root (or names a single entry).
-l shows mode as ls -l does, link count, owner, size (major, minor for
devices), mtime and symlink targets; -R recurses; -d lists a directory
itself, not its entries. --json prints one object per entry with every
stored attribute.

Names are bytes. Into a pipe or file ls writes them as they are stored; on
a terminal a name that is not UTF-8 or holds control characters is shown
quoted as $'...' with \xHH escapes. In --json, "path", "target" and xattr
names and values are strings with U+FFFD in place of bytes that are not
UTF-8; whenever that changed them, "path_base64" and "target_base64" hold
the exact bytes (standard base64), and "xattrs_base64" lists every such
xattr as {"name": BASE64, "value": BASE64}.`,
		Example: `  spraydryfs ls -l toolchain@1.0/bin
  spraydryfs ls -ld toolchain@1.0/bin
  spraydryfs ls -R --json toolchain@latest`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			s, v, n, err := g.openPath(ctx, a[0])
			if err != nil {
				return err
			}
			defer s.Close()
			p := &lister{v: v, long: long, json: jsonOut, enc: json.NewEncoder(os.Stdout), tw: tabwriter.NewWriter(os.Stdout, 0, 4, 1, ' ', 0),
				quote: term.IsTerminal(int(os.Stdout.Fd()))}
			if self || !n.IsDir() {
				p.print(a[0], n, true)
			} else if err := p.list(ctx, "", n, recursive); err != nil {
				return err
			}
			return p.tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long format")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list subdirectories recursively")
	cmd.Flags().BoolVarP(&self, "directory", "d", false, "list a directory itself, not its entries")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON lines")
	return cmd
}

type lister struct {
	v          *backend.View
	long, json bool
	quote      bool // quote names that are not printable UTF-8 (a terminal)
	enc        *json.Encoder
	tw         *tabwriter.Writer
}

func (p *lister) list(ctx context.Context, dir string, n *backend.Node, recursive bool) error {
	kids, err := p.v.ReadDir(ctx, n)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	for _, k := range kids {
		p.print(path.Join(dir, k.Name), k, false)
	}
	if !recursive {
		return nil
	}
	for _, k := range kids {
		if k.IsDir() {
			if err := p.list(ctx, path.Join(dir, k.Name), k, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// print shows node n as name; arg says name is the command's argument
// (already a string the user typed, shown unquoted).
func (p *lister) print(name string, n *backend.Node, arg bool) {
	if p.json {
		p.enc.Encode(jsonEntry(name, n))
		return
	}
	shown := name
	if p.quote && !arg {
		shown = shellQuote(name)
	}
	if !p.long {
		fmt.Fprintln(p.tw, shown)
		return
	}
	if n.Type == tree.TypeSymlink {
		target := n.Target
		if p.quote {
			target = shellQuote(target)
		}
		shown += " -> " + target
	}
	sz := strconv.FormatInt(n.Size, 10)
	if n.Type == tree.TypeCharDev || n.Type == tree.TypeBlockDev {
		sz = fmt.Sprintf("%d, %d", tree.Major(n.Rdev), tree.Minor(n.Rdev))
	}
	fmt.Fprintf(p.tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", lsMode(&n.Attr), n.Nlink, n.UID, n.GID, sz,
		time.Unix(0, n.MTime).Local().Format("2006-01-02 15:04:05"), shown)
}

// jsonEntry is ls --json's object for node n shown as name: every stored
// attribute, and the exact bytes (base64) of any string that is not UTF-8.
func jsonEntry(name string, n *backend.Node) map[string]any {
	m := map[string]any{"path": strings.ToValidUTF8(name, "\uFFFD"), "type": n.Type.String(), "mode": fmt.Sprintf("%04o", n.Mode),
		"uid": n.UID, "gid": n.GID, "size": n.Size, "mtime_ns": n.MTime, "nlink": n.Nlink, "ino": n.Ino}
	if !utf8.ValidString(name) {
		m["path_base64"] = base64.StdEncoding.EncodeToString([]byte(name))
	}
	if n.Type == tree.TypeSymlink {
		m["target"] = strings.ToValidUTF8(n.Target, "\uFFFD")
		if !utf8.ValidString(n.Target) {
			m["target_base64"] = base64.StdEncoding.EncodeToString([]byte(n.Target))
		}
	}
	if !n.Hash.IsZero() {
		m["hash"] = n.Hash.String()
	}
	if len(n.Xattrs) > 0 {
		x := map[string]string{}
		var raw []map[string]string
		for _, a := range n.Xattrs {
			x[strings.ToValidUTF8(a.Name, "\uFFFD")] = strings.ToValidUTF8(string(a.Value), "\uFFFD")
			if !utf8.ValidString(a.Name) || !utf8.Valid(a.Value) {
				raw = append(raw, map[string]string{"name": base64.StdEncoding.EncodeToString([]byte(a.Name)),
					"value": base64.StdEncoding.EncodeToString(a.Value)})
			}
		}
		m["xattrs"] = x
		if raw != nil {
			m["xattrs_base64"] = raw
		}
	}
	if n.Rdev != 0 {
		m["rdev"] = n.Rdev
	}
	return m
}

// lsMode is the mode column of ls -l: the type letter, then the rwx
// triples, with s/S and t/T for setuid, setgid and sticky (capital when
// the x bit under it is clear).
func lsMode(a *backend.Attr) string {
	b := []byte("?rwxrwxrwx")
	switch a.Type {
	case tree.TypeFile:
		b[0] = '-'
	case tree.TypeDir:
		b[0] = 'd'
	case tree.TypeSymlink:
		b[0] = 'l'
	case tree.TypeFIFO:
		b[0] = 'p'
	case tree.TypeSocket:
		b[0] = 's'
	case tree.TypeCharDev:
		b[0] = 'c'
	case tree.TypeBlockDev:
		b[0] = 'b'
	}
	for i := range 9 {
		if a.Mode&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	for _, s := range []struct {
		bit     uint32
		at      int
		set, no byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}} {
		if a.Mode&s.bit != 0 {
			if b[s.at] == 'x' {
				b[s.at] = s.set
			} else {
				b[s.at] = s.no
			}
		}
	}
	return string(b)
}

// shellQuote returns s unchanged if it is printable UTF-8, else quoted as
// bash's $'...' with \xHH escapes, so a terminal shows every byte safely.
func shellQuote(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1, !unicode.IsPrint(r):
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	b.WriteByte('\'')
	return b.String()
}

func newCatCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cat NAME@VERSION/path",
		Short: "Write a file's content to standard output",
		Long: `Cat streams a regular file (symlinks inside the root are followed) to
standard output. Every chunk is verified against its hash before any of its
bytes are written; a corrupt chunk stops the output with an error and exit
code 1.`,
		Example: "  spraydryfs cat toolchain@1.0/bin/cc > cc",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := store.ParseRef(a[0], true)
			if err != nil {
				return usageError{err}
			}
			s, err := g.openReader()
			if err != nil {
				return err
			}
			defer s.Close()
			sub := ref.Path
			ref.Path = ""
			v, err := backend.OpenRoot(cmd.Context(), s.Objects, ref)
			if err != nil {
				return err
			}
			f, err := v.FS().Open(pathOrDot(sub))
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", a[0], err)
			case st.IsDir():
				return fmt.Errorf("%s: %w", a[0], backend.ErrIsDir)
			case !st.Mode().IsRegular():
				return fmt.Errorf("%s: is a %s, not a regular file", a[0], specialKind[st.Mode().Type()])
			}
			// Regular files stream chunk by chunk through their WriteTo.
			if _, err := io.Copy(os.Stdout, f); err != nil {
				return fmt.Errorf("%s: %w", a[0], err)
			}
			return nil
		},
	}
}

// specialKind names the file types cat cannot read.
var specialKind = map[fs.FileMode]string{
	fs.ModeNamedPipe:                  "FIFO",
	fs.ModeSocket:                     "socket",
	fs.ModeDevice | fs.ModeCharDevice: "character device",
	fs.ModeDevice:                     "block device",
}

func pathOrDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}
