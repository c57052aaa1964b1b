package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend/gc"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

func newGCCommand(g *globals) *cobra.Command {
	var opt gc.Options
	var compact bool
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--keep-refs] [--compact]",
		Short: "Free what no root needs (garbage collection)",
		Long: `Gc deletes the listings, chunk lists and chunks that no root needs: those
of roots removed with rm, and those left by interrupted ingests. It marks
what every root needs, then sweeps the rest in batches, each its own
transaction, and gives the freed pages back to the file system. Trained
dictionaries are kept (dicts rm removes them).

A live chunk or listing that is delta-coded against a dead one is first
re-dried against the nearest live one of its chain, the chunk at its
offset in its path's older version, or a neighbour (as ingest dries new
content), or alone, whichever is smallest, so that the dead one can go;
--keep-refs keeps the references of chunks (and their chains) instead.
Gc reports what it re-dried, and what it kept and why.

Mounts and servers keep serving throughout. Ingests keep running: gc
deletes nothing while one runs (it waits, and says so), and it never
deletes what a root committed meanwhile needs. Killed at any point, gc
leaves a consistent store, and running it again frees the rest; a lease
left by a killed ingest or gc is recognised and dropped.

In a store created by this version (auto_vacuum=INCREMENTAL), gc then
moves chunk data off the pages the sweep left sparse, rebuilds the
listing, chunk list, chunk and reuse-index tables whose pages the
deletions left part empty (one short transaction each: writers wait for
it, readers never; a table over 256 MiB is left to --compact), and gives
the free pages back, a few per transaction, so the file shrinks while
everything keeps running. An older store keeps freed pages inside the
file (gc says how much) until it is compacted once. --compact rewrites
the whole store with VACUUM after collecting (converting an older
store): the smallest file, but exclusive for writers: ingests, rm and
other gc runs wait for it (an ingest gives up after 10 s), and it needs
free disk space for a second copy of the store; readers keep reading.

--dry-run marks and prints what would be freed, and changes nothing.`,
		Example: `  spraydryfs rm --keep-last 5 toolchain && spraydryfs gc
  spraydryfs gc --dry-run
  spraydryfs gc --compact     # once, for a store created before gc existed`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if compact && opt.DryRun {
				return usageError{fmt.Errorf("gc: --compact and --dry-run exclude each other")}
			}
			open := g.openWrite
			if opt.DryRun {
				open = func() (*store.Store, error) { return g.open(false) }
			}
			st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			bars := map[string]func(int64, int64){}
			var finish []func()
			opt.Progress = func(phase string, done, total int64) {
				p, ok := bars[phase]
				if !ok {
					var f func()
					p, f = countBar(phase, false)
					bars[phase], finish = p, append(finish, f)
				}
				p(done, total)
			}
			var once sync.Once
			opt.Wait = func(err error) {
				once.Do(func() { fmt.Fprintf(os.Stderr, "gc: waiting: %v\n", err) })
			}
			opt.Log = g.log
			opt.NoShrink = compact
			rep, err := gc.Collect(ctx, st, opt)
			for _, f := range finish {
				f()
			}
			if err != nil {
				if rep != nil && rep.Freed > 0 {
					fmt.Printf("freed %s in %s before the error; run gc again to finish\n", size(rep.FreedBytes), plural(int(rep.Freed), "object"))
				}
				return err
			}
			printGC(rep, opt.DryRun, opt.Keep)
			if compact {
				fmt.Fprintln(os.Stderr, "gc: compacting (VACUUM; writers wait)")
				if err := st.Compact(ctx); err != nil {
					return err
				}
				sp, err := st.Pages(ctx)
				if err != nil {
					return err
				}
				fmt.Printf("compacted: store file %s\n", size(sp.FileBytes))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&opt.DryRun, "dry-run", "n", false, "print what would be freed; change nothing")
	cmd.Flags().BoolVar(&opt.Keep, "keep-refs", false, "keep dead references of live delta chunks instead of re-drying them")
	cmd.Flags().BoolVar(&compact, "compact", false, "then rewrite the store with VACUUM (writers wait; needs space for a copy)")
	return cmd
}

func printGC(rep *gc.Report, dryRun, keep bool) {
	verb := "freed"
	if dryRun {
		verb = "would free"
	}
	dead := rep.DeadListings + rep.DeadLists + rep.DeadChunks
	fmt.Printf("%d roots marked; %d of %d objects (%s of %s) unneeded: %d listings, %d chunk lists, %d chunks\n",
		rep.Roots, dead, rep.Objects, size(rep.DeadBytes), size(rep.Stored), rep.DeadListings, rep.DeadLists, rep.DeadChunks)
	switch {
	case rep.Redried > 0 && dryRun:
		fmt.Printf("would re-dry %s (%s) delta-coded against unneeded ones, so that those can go\n", plural(int(rep.Redried), "live object"), size(rep.RedryBefore))
	case rep.Redried > 0:
		fmt.Printf("re-dried %s delta-coded against unneeded ones: %s -> %s\n", plural(int(rep.Redried), "live object"), size(rep.RedryBefore), size(rep.RedryAt))
	}
	if rep.Kept > 0 {
		why := "live objects are delta-coded against them"
		if keep {
			why += " (--keep-refs)"
		}
		fmt.Printf("kept %s (%s) otherwise unneeded: %s\n", plural(int(rep.Kept), "object"), size(rep.KeptBytes), why)
	}
	if dryRun {
		fmt.Printf("%s %s\n", verb, size(rep.DeadBytes))
		return
	}
	fmt.Printf("%s %s in %s", verb, size(rep.FreedBytes), plural(int(rep.Freed), "object"))
	if rep.IndexRows > 0 {
		fmt.Printf(" and %s of interrupted ingests", plural(int(rep.IndexRows), "reuse-index row"))
	}
	fmt.Println()
	if rep.Held > 0 {
		fmt.Printf("held %s that chunks written during gc depend on; a later gc frees them\n", plural(int(rep.Held), "chunk"))
	}
	if rep.Waited > 0 {
		fmt.Printf("waited %.1fs for running ingests\n", rep.Waited.Seconds())
	}
	if len(rep.Repacked) > 0 {
		var held time.Duration
		var parts []string
		for _, r := range rep.Repacked {
			parts = append(parts, fmt.Sprintf("%s %d -> %d pages", r.Table, r.Before, r.After))
			held = max(held, r.Held)
		}
		fmt.Printf("repacked tables the deletions left part empty: %s; each held the write lock %s at most\n",
			strings.Join(parts, ", "), held.Round(time.Millisecond))
	}
	if len(rep.Unpacked) > 0 {
		var parts []string
		for _, r := range rep.Unpacked {
			parts = append(parts, fmt.Sprintf("%s (%s)", r.Table, size(r.Before*r.PageSize)))
		}
		fmt.Printf("not repacked, too large to rebuild while writers wait: %s; gc --compact packs them\n", strings.Join(parts, ", "))
	}
	fmt.Printf("store file %s -> %s", size(rep.FileBefore), size(rep.FileAfter))
	if rep.FreeAfter > 0 {
		fmt.Printf("; %s free inside it (this store predates auto_vacuum: gc --compact gives it back once)", size(rep.FreeAfter))
	}
	fmt.Println()
}
