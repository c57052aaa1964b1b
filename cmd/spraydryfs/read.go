package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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
	var long, recursive, jsonOut bool
	cmd := &cobra.Command{
		Use:   "ls [-l] [-R] NAME@VERSION[/path]",
		Short: "List a directory of a root",
		Long: `Ls lists the entries of a directory in a root (or names a single entry).
-l shows type and mode, owner, size, mtime and symlink targets; -R recurses;
--json prints one object per entry with every stored attribute.`,
		Example: `  spraydryfs ls -l toolchain@1.0/bin
  spraydryfs ls -R --json toolchain@latest`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			s, v, n, err := g.openPath(ctx, a[0])
			if err != nil {
				return err
			}
			defer s.Close()
			p := &lister{v: v, long: long, json: jsonOut, enc: json.NewEncoder(os.Stdout), tw: tabwriter.NewWriter(os.Stdout, 0, 4, 1, ' ', 0)}
			if !n.IsDir() {
				p.print("", n)
			} else if err := p.list(ctx, "", n, recursive); err != nil {
				return err
			}
			return p.tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long format")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list subdirectories recursively")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON lines")
	return cmd
}

type lister struct {
	v          *backend.View
	long, json bool
	enc        *json.Encoder
	tw         *tabwriter.Writer
}

func (p *lister) list(ctx context.Context, dir string, n *backend.Node, recursive bool) error {
	kids, err := p.v.ReadDir(ctx, n)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	for _, k := range kids {
		p.print(dir, k)
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

func (p *lister) print(dir string, n *backend.Node) {
	name := path.Join(dir, n.Name)
	if p.json {
		x := map[string]string{}
		for _, a := range n.Xattrs {
			x[a.Name] = string(a.Value)
		}
		m := map[string]any{"path": name, "type": n.Type.String(), "mode": fmt.Sprintf("%04o", n.Mode), "uid": n.UID, "gid": n.GID,
			"size": n.Size, "mtime_ns": n.MTime, "nlink": n.Nlink, "ino": n.Ino}
		if n.Type == tree.TypeSymlink {
			m["target"] = n.Target
		}
		if !n.Hash.IsZero() {
			m["hash"] = n.Hash.String()
		}
		if len(x) > 0 {
			m["xattrs"] = x
		}
		if n.Rdev != 0 {
			m["rdev"] = n.Rdev
		}
		p.enc.Encode(m)
		return
	}
	shown := strings.ToValidUTF8(name, "\uFFFD")
	if !p.long {
		fmt.Fprintln(p.tw, shown)
		return
	}
	if n.Type == tree.TypeSymlink {
		shown += " -> " + n.Target
	}
	fmt.Fprintf(p.tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", fs.FileMode(n.FileMode()).String(), n.Nlink, n.UID, n.GID, n.Size,
		time.Unix(0, n.MTime).Local().Format("2006-01-02 15:04:05"), shown)
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
