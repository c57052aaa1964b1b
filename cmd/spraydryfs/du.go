package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/usage"
)

func newDuCommand(g *globals) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "du [NAME[@VERSION]...] [--json]",
		Short: "Show the stored bytes each root needs, shares and holds alone",
		Long: `Du shows, per root (all, or those given: NAME for all its versions), its
logical size and the stored bytes it needs: listings, chunk lists and
chunks, with the bases and reference chains of delta-coded ones (trained
dictionaries are not counted). NEEDS splits into SHARED, also needed by
another root, and UNIQUE, needed by this root alone: what removing it (rm)
and collecting garbage would free, like borg's "unique size".

The totals are over the whole store: the bytes any root needs (shared by
several plus unique to one), and the bytes no root needs (left by removed
roots or interrupted ingests, or written by an ingest still running),
which garbage collection frees.
With roots given, du also shows what removing all of them would free.
--json prints the same numbers; roots --json has them per root too.`,
		Example: `  spraydryfs du
  spraydryfs du toolchain            # every version of toolchain
  spraydryfs du --json toolchain@1.0`,
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			refs := make([]store.Ref, len(a))
			for i, arg := range a {
				ref, err := store.ParseRef(arg, false)
				if err != nil {
					return usageError{err}
				}
				if ref.Path != "" {
					return usageError{fmt.Errorf("du %s: give roots, not paths in them", arg)}
				}
				refs[i] = ref
			}
			s, err := g.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			pick, err := selectRoots(ctx, s, refs)
			if err != nil {
				return err
			}
			rep, err := usage.Compute(ctx, s, pick)
			if err != nil {
				return err
			}
			if jsonOut {
				return printUsageJSON(rep, pick, len(refs) > 0)
			}
			return printUsage(rep, pick, len(refs) > 0)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

// selectRoots resolves NAME and NAME@VERSION references (latest is the
// newest version) to a set of roots; none selects every root.
func selectRoots(ctx context.Context, s *store.Store, refs []store.Ref) (func(store.Root) bool, error) {
	if len(refs) == 0 {
		return func(store.Root) bool { return true }, nil
	}
	ids := map[string]bool{}
	for _, ref := range refs {
		if ref.Version != "" {
			r, err := s.Root(ctx, ref.Name, ref.Version)
			if err != nil {
				return nil, err
			}
			ids[r.ID()] = true
			continue
		}
		roots, err := s.Roots(ctx)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, r := range roots {
			if r.Name == ref.Name {
				ids[r.ID()] = true
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("root name %s: %w", ref.Name, store.ErrNotFound)
		}
	}
	return func(r store.Root) bool { return ids[r.ID()] }, nil
}

func printUsage(rep *usage.Report, pick func(store.Root) bool, some bool) error {
	w := len("ROOT")
	for _, r := range rep.Roots {
		w = max(w, len(r.ID()))
	}
	fmt.Printf("%-*s  %10s  %10s  %10s  %10s\n", w, "ROOT", "LOGICAL", "NEEDS", "SHARED", "UNIQUE")
	n := 0
	for _, r := range rep.Roots {
		if pick(r.Root) {
			n++
			fmt.Printf("%-*s  %10s  %10s  %10s  %10s\n", w, r.ID(), size(r.Bytes), size(r.Needed), size(r.Shared), size(r.Unique))
		}
	}
	fmt.Printf("all %d roots need %s: %s shared by several, %s unique to one\n", len(rep.Roots), size(rep.Needed), size(rep.Shared), size(rep.Unique))
	fmt.Printf("unreferenced: %s of %s stored (no root needs it; garbage collection frees it)\n", size(rep.Unreferenced), size(rep.Total))
	if some {
		fmt.Printf("removing these %d roots would free another %s\n", n, size(rep.Freed))
	}
	return nil
}

// rootUsageJSON is the usage of one root as JSON fields.
func rootUsageJSON(r usage.Root) map[string]any {
	return map[string]any{"root": r.ID(), "logical_bytes": r.Bytes, "needed_bytes": r.Needed, "shared_bytes": r.Shared, "unique_bytes": r.Unique}
}

func printUsageJSON(rep *usage.Report, pick func(store.Root) bool, some bool) error {
	roots := []map[string]any{}
	for _, r := range rep.Roots {
		if pick(r.Root) {
			roots = append(roots, rootUsageJSON(r))
		}
	}
	out := map[string]any{"roots": roots, "needed_bytes": rep.Needed, "shared_bytes": rep.Shared, "unique_bytes": rep.Unique,
		"unreferenced_bytes": rep.Unreferenced, "total_bytes": rep.Total}
	if some {
		out["freed_bytes"] = rep.Freed
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
