package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newCheckCommand(g *globals) *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "check [--read-data]",
		Short: "Verify the store's structure (and with --read-data, every byte)",
		Long: `Check verifies that every root's top directory, every directory listing
(decoded and matched to its hash) and every file's chunk list is intact and
that everything they refer to is present. With --read-data it also
decompresses every chunk and verifies it against its hash, and re-hashes
every multi-chunk file. It prints what is broken and exits 1 if anything is.
A remote store (-s http(s)://…) is checked by fetching every object from
the remote itself: the local cache is neither read nor filled.`,
		Example: "  spraydryfs check --read-data",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.remote.NoCache = true // check the remote, not the cache's copy
			r, err := g.openReader()
			if err != nil {
				return err
			}
			defer r.Close()
			if r.file == nil {
				return checkLayout(cmd.Context(), r)
			}
			s := r.file
			var bar *progressbar.ProgressBar
			phase := ""
			progress := func(p string, done, total int64) {}
			if term.IsTerminal(int(os.Stderr.Fd())) {
				progress = func(p string, done, total int64) {
					if p != phase {
						if bar != nil {
							bar.Finish()
						}
						phase = p
						bar = progressbar.NewOptions64(total, append(barOptions(os.Stderr, "check "+p),
							progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond))...)
					}
					bar.Set64(done)
				}
			}
			start := time.Now()
			rep, err := s.Check(cmd.Context(), readData, progress)
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			what := "structure"
			if readData {
				what = "structure and data"
			}
			for _, p := range rep.Problems {
				fmt.Println("BROKEN", p)
			}
			fmt.Printf("checked %s: %d roots, %d directories, %d chunked files, %d chunks in %.1fs: ", what, rep.Roots, rep.Dirs, rep.Files, rep.Chunks, time.Since(start).Seconds())
			if len(rep.Problems) > 0 {
				fmt.Printf("%d problems\n", len(rep.Problems))
				return fmt.Errorf("store %s has %d problems", s.Path(), len(rep.Problems))
			}
			fmt.Println("OK")
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "also decompress and verify every chunk")
	return cmd
}

func newStatsCommand(g *globals) *cobra.Command {
	var (
		jsonOut bool
		sample  int
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show sizes, dedup and compression ratios",
		Long: `Stats shows the logical bytes of all roots, the distinct chunk bytes after
dedup, their stored bytes after compression, the resulting ratios, and
object counts. Chunks an interrupted ingest stored count as distinct chunks
(a re-run reuses them). Delta chunks (stored against a reference chunk) are
counted with their chain depths and what they saved, measured: up to
--sample of them (chosen by hash) are rehydrated and dried again without a
reference, and the saving is scaled to all of them by raw bytes.

The store file is SQLite with 64 KiB pages (smaller files than 4 KiB pages
once the store holds real data); every table and index takes at least one
page, so an empty store is about 768 KiB and a small one is larger than
its data.

--json adds one record per root (files, logical bytes, and the bytes its
ingest added to the store). How the stored bytes split between roots
(shared, unique to one, needed by none) is what du shows.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sample < 1 {
				return usageError{fmt.Errorf("--sample %d: measure at least 1 delta chunk", sample)}
			}
			s, err := g.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.Stats(cmd.Context())
			if err != nil {
				return err
			}
			saved, err := s.DeltaSavings(cmd.Context(), sample)
			if err != nil {
				return err
			}
			if jsonOut {
				roots, err := s.Roots(cmd.Context())
				if err != nil {
					return err
				}
				per := make([]map[string]any, len(roots))
				for i, r := range roots {
					per[i] = map[string]any{"root": r.ID(), "files": r.Files, "logical_bytes": r.Bytes, "stored_bytes": r.Stored}
				}
				var dedup any = st.DedupRatio()
				if st.Chunks == 0 || st.Unheld() {
					dedup = nil // no ratio: nothing stored, or no root holds it
				}
				return json.NewEncoder(os.Stdout).Encode(map[string]any{"store": st, "dedup_ratio": dedup,
					"compression_ratio": st.CompressionRatio(), "total_ratio": st.TotalRatio(), "empty_size": st.EmptySize(),
					"mean_depth": st.MeanDepth(), "delta_saved": saved.Saved, "delta_saved_sampled": saved.Sampled, "roots": per})
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "roots\t%d\n", st.Roots)
			fmt.Fprintf(tw, "logical size\t%s\t(all files of all roots)\n", size(st.Logical))
			fmt.Fprintf(tw, "chunked files\t%d\t%s\t(distinct files of several chunks)\n", st.ListedFiles, size(st.FileBytes))
			dedup := fmt.Sprintf("dedup %.2fx", st.DedupRatio())
			switch {
			case st.Chunks == 0:
				dedup = "nothing stored yet"
			case st.Unheld():
				dedup = "no root holds them yet: an interrupted ingest stored them, and its re-run reuses them"
			}
			fmt.Fprintf(tw, "distinct chunks\t%d\t%s\t(%s)\n", st.Chunks, size(st.ChunkBytes), dedup)
			if st.Chunks > 0 {
				fmt.Fprintf(tw, "stored chunks\t%s\t(compression %.2fx, %d stored raw)\n", size(st.ChunkStored), st.CompressionRatio(), st.RawChunks)
			}
			if st.Deltas > 0 {
				how := fmt.Sprintf("measured on %d of them", saved.Sampled)
				if saved.Sampled == st.Deltas {
					how = "measured on all"
				}
				fmt.Fprintf(tw, "delta chunks\t%d\t%s stored as %s\t(%d against other files; chain depth mean %.2f, max %d; %s saved over drying alone, %s)\n",
					st.Deltas, size(st.DeltaBytes), size(st.DeltaStored), st.Cross, st.MeanDepth(), st.MaxDepth, size(saved.Saved), how)
			}
			fmt.Fprintf(tw, "directories\t%d\t%s\n", st.Dirs, size(st.DirBytes))
			fmt.Fprintf(tw, "chunk lists\t%s\n", size(st.ListBytes))
			fmt.Fprintf(tw, "store file\t%s\t(logical size / store size: %.2f; %d KiB pages, at least one per table and index: %s when empty)\n",
				size(st.FileSize), st.TotalRatio(), st.PageSize>>10, size(st.EmptySize()))
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&sample, "sample", 256, "delta chunks to rehydrate and dry alone to measure their saving")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}
