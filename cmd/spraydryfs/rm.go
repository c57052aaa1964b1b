package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend/retain"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/usage"
)

func newRmCommand(g *globals) *cobra.Command {
	var keepLast int
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "rm [--dry-run] NAME@VERSION... | rm [--dry-run] --keep-last N NAME...",
		Short: "Remove roots",
		Long: `Rm removes the roots given (version latest is the newest), or with
--keep-last N every version of each NAME but its N newest (by creation
time, as latest picks them). It is one transaction: all the roots go or,
if one is unknown, none. --dry-run shows what would go and how much
garbage collection would then free, and changes nothing.

Only the roots are removed; their listings, chunk lists and chunks stay in
the store until garbage collection (spraydryfs gc) frees what no remaining
root needs, so du shows it as unreferenced. Mounts and servers of the
namespace or of a name stop showing a removed root at once (within a
second for FUSE's cached entries), and new lookups fail with ENOENT; files
already open keep reading, and a mount of that one root keeps serving it
until garbage collection (after it, reads of what no other root shares
fail with ESTALE). A removed root's reuse index goes with it.`,
		Example: `  spraydryfs rm toolchain@1.0 toolchain@1.1
  spraydryfs rm --dry-run --keep-last 3 toolchain nightly`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			var pick retain.Pick
			if cmd.Flags().Changed("keep-last") {
				if keepLast < 1 {
					return usageError{fmt.Errorf("rm: --keep-last %d: keep at least 1 (rm NAME@VERSION... removes every version)", keepLast)}
				}
				for _, arg := range a {
					if err := store.CheckName("root name", arg); err != nil {
						return usageError{fmt.Errorf("rm --keep-last takes root names: %w", err)}
					}
				}
				pick = retain.KeepLast(keepLast, a)
			} else {
				refs := make([]store.Ref, len(a))
				for i, arg := range a {
					ref, err := store.ParseRef(arg, true)
					if err != nil {
						return usageError{err}
					}
					if ref.Path != "" {
						return usageError{fmt.Errorf("rm %s: give roots, not paths in them", arg)}
					}
					refs[i] = ref
				}
				pick = retain.Versions(refs)
			}
			if dryRun {
				s, err := g.open(false)
				if err != nil {
					return err
				}
				defer s.Close()
				all, err := s.Roots(ctx)
				if err != nil {
					return err
				}
				gone, err := pick(all)
				if err != nil {
					return err
				}
				if len(gone) == 0 {
					fmt.Println("nothing to remove")
					return nil
				}
				ids := map[string]bool{}
				for _, r := range gone {
					fmt.Println("would remove", r.ID())
					ids[r.ID()] = true
				}
				rep, err := usage.Compute(ctx, s, func(r store.Root) bool { return ids[r.ID()] })
				if err != nil {
					return err
				}
				fmt.Printf("would remove %s; then garbage collection frees %s (%s of it unreferenced already)\n",
					plural(len(gone), "root"), size(rep.Freed+rep.Unreferenced), size(rep.Unreferenced))
				return nil
			}
			s, err := g.openWrite()
			if err != nil {
				return err
			}
			defer s.Close()
			gone, err := s.RemoveRoots(ctx, pick)
			if err != nil {
				return err
			}
			if len(gone) == 0 {
				fmt.Println("nothing to remove")
				return nil
			}
			ids := make([]string, len(gone))
			for i, r := range gone {
				ids[i] = r.ID()
			}
			fmt.Printf("removed %s: %s; run `spraydryfs gc` to free their space\n", plural(len(gone), "root"), strings.Join(ids, " "))
			return nil
		},
	}
	cmd.Flags().IntVar(&keepLast, "keep-last", 0, "keep the N newest versions of each NAME, remove the rest")
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "show what would be removed and freed; change nothing")
	return cmd
}

// openWrite opens an existing store for writing (open(true) would create
// a missing one).
func (g *globals) openWrite() (*store.Store, error) {
	if g.storePath == "" {
		return g.open(false) // says how to give a store
	}
	return store.Open(g.storePath, store.Options{})
}

// plural returns "1 root", "2 roots".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
