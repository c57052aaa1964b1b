package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spraydryfs/spraydryfs/extract"
)

func newExtractCommand(g *globals) *cobra.Command {
	var toTar, owner bool
	cmd := &cobra.Command{
		Use:   "extract [--tar] NAME@VERSION[/path] DEST",
		Short: "Restore a root, a directory or a file to disk, or write it as tar",
		Long: `Extract restores the tree at NAME@VERSION[/path] with everything the store
keeps: contents, directories, symlinks (targets verbatim), hard links, FIFOs,
device nodes (as root), mode bits with setuid, setgid and sticky, owners (as
root, or with --owner), extended attributes and nanosecond mtimes. Sockets
are skipped with a warning.

A directory's contents go into DEST, which is created if missing and must
otherwise be empty; DEST itself gets the directory's mode, owner and mtime.
Anything else is written as DEST, which must not exist. Every chunk is
verified before it is written; corrupt data stops the extraction with exit
code 1, and no file is left under its name with partial content.

With --tar, a PAX tar stream of the same tree is written to DEST instead,
or to standard output if DEST is "-". A directory's contents are at the top
of the archive, with relative names. GNU tar restores everything with
'tar --xattrs --xattrs-include="user.*" -xpf FILE' (as root for owners).`,
		Example: `  spraydryfs extract toolchain@1.0 ./toolchain-1.0
  spraydryfs extract toolchain@latest/bin/cc ./cc
  spraydryfs extract --tar toolchain@1.0 toolchain-1.0.tar
  spraydryfs extract --tar toolchain@1.0/bin - | tar -tvf -`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			dest := a[1]
			switch {
			case dest == "":
				return usageError{errors.New("extract: empty destination")}
			case dest == "-" && !toTar:
				return usageError{errors.New(`extract: DEST "-" (standard output) needs --tar`)}
			case toTar && owner:
				return usageError{errors.New("extract: --owner applies to extraction to disk, not to --tar")}
			case toTar && dest == "-" && term.IsTerminal(int(os.Stdout.Fd())):
				return usageError{errors.New("extract: refusing to write a tar stream to a terminal; redirect standard output or give a file")}
			}
			ctx := cmd.Context()
			s, v, n, err := g.openPath(ctx, a[0])
			if err != nil {
				return err
			}
			defer s.Close()
			if !toTar {
				return extract.ToDir(ctx, v, n, dest, extract.Options{Owner: owner, Log: g.log})
			}
			out := os.Stdout
			if dest != "-" {
				// O_EXCL: an existing file is never overwritten, so a failed
				// run can remove what it created.
				if out, err = os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666); err != nil {
					return fmt.Errorf("extract: %w", err)
				}
			}
			bw := bufio.NewWriterSize(out, 1<<20)
			err = extract.ToTar(ctx, v, n, bw)
			if err == nil {
				if err = bw.Flush(); err != nil {
					err = fmt.Errorf("extract: write %s: %w", dest, err)
				}
			}
			if dest != "-" {
				if cerr := out.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("extract: write %s: %w", dest, cerr)
				}
				if err != nil {
					os.Remove(dest)
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&toTar, "tar", false, `write a PAX tar stream to DEST ("-" for standard output)`)
	cmd.Flags().BoolVar(&owner, "owner", false, "restore owners even when not running as root")
	return cmd
}
