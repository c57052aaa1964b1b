package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/walk"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/train"
)

// countBar returns a progress callback drawing a bar on a terminal, or one
// that does nothing, and a function that clears the bar.
func countBar(desc string, bytes bool) (func(done, total int64), func()) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return func(int64, int64) {}, func() {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int64) {
			if bar == nil {
				opts := append(barOptions(os.Stderr, desc), progressbar.OptionThrottle(100*time.Millisecond))
				if bytes {
					opts = append(opts, progressbar.OptionShowBytes(true))
				} else {
					opts = append(opts, progressbar.OptionShowCount())
				}
				bar = progressbar.NewOptions64(total, opts...)
			}
			bar.Set64(done)
		}, func() {
			if bar != nil {
				bar.Finish()
			}
		}
}

// parseSize reads 112KiB, 1MiB, 110000 and the like.
func parseSize(s string) (int64, error) {
	var n float64
	var unit string
	if _, err := fmt.Sscanf(s, "%g%s", &n, &unit); err != nil && unit == "" {
		if _, err := fmt.Sscanf(s, "%g", &n); err != nil {
			return 0, fmt.Errorf("invalid size %q", s)
		}
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "KB": 1e3, "M": 1 << 20, "MiB": 1 << 20, "MB": 1e6, "G": 1 << 30, "GiB": 1 << 30, "GB": 1e9}[unit]
	if mult == 0 || n <= 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. 112KiB, 16MiB)", s)
	}
	return int64(n * mult), nil
}

func newTrainCommand(g *globals) *cobra.Command {
	var (
		sizeArg, sampleArg, level string
		jsonOut                   bool
	)
	cmd := &cobra.Command{
		Use:   "train NAME@VERSION SOURCE...",
		Short: "Train a shared zstd dictionary and store it",
		Long: `Train builds a zstd dictionary from samples of SOURCE (directories, or
root:NAME@VERSION[/path] for data already in the store) and stores it as
dictionary NAME@VERSION. Samples are the store's own chunks, cut with the
store's chunker, drawn evenly by content hash up to --sample-bytes, so
training time and memory stay bounded whatever the input size. The
dictionary's content is chosen fastCOVER-style and its entropy tables are
built by klauspost/compress; the same samples and options give the same
dictionary. A tenth of the samples is held out to measure it.

Use it with 'ingest --dict NAME@VERSION', make it the default with
'dicts default NAME@VERSION', or re-dry stored chunks with 'recompress'.`,
		Example: `  spraydryfs train src@1 root:toolchain@1.0
  spraydryfs train src@2 ./samples --size 64KiB`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := parseID("dictionary", a[0])
			if err != nil {
				return err
			}
			dictSize, err := parseSize(sizeArg)
			if err != nil {
				return usageError{err}
			}
			sampleBytes, err := parseSize(sampleArg)
			if err != nil {
				return usageError{err}
			}
			lvl, err := chunk.ParseLevel(level)
			if err != nil {
				return usageError{err}
			}
			srcs, err := parseSources(a[1:])
			if err != nil {
				return err
			}
			s, err := g.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.DictByName(cmd.Context(), ref.Name, ref.Version); err == nil {
				return fmt.Errorf("dictionary %s: %w", a[0], store.ErrExists)
			}
			progress, done := countBar("sample "+a[0], true)
			samples, err := train.Collect(cmd.Context(), s, srcs, sampleBytes, progress)
			done()
			if err != nil {
				return err
			}
			opt := train.Options{Size: int(dictSize), Level: lvl}
			res, err := train.Train(samples, opt)
			if err != nil {
				return err
			}
			stats, _ := json.Marshal(res.Stats)
			opt.K = res.Stats.K
			id, err := s.AddDict(cmd.Context(), store.Dict{Name: ref.Name, Version: ref.Version, Params: opt.Params(), Stats: string(stats),
				Hash: hash.Sum(res.Dict), Data: res.Dict, Created: time.Now()})
			if err != nil {
				return err
			}
			if jsonOut {
				return json.NewEncoder(os.Stdout).Encode(map[string]any{"dict": a[0], "id": id, "bytes": len(res.Dict), "stats": res.Stats})
			}
			st := res.Stats
			fmt.Printf("trained %s: %s dictionary from %d samples (%s) in %.1fs; held-out samples: %s raw, %s with zstd alone, %s with the dictionary (%.1f%% smaller)\n",
				a[0], size(int64(len(res.Dict))), st.TrainedOn, size(st.TrainedB), float64(st.Millis)/1000, size(st.Raw), size(st.Plain), size(st.WithDict),
				100*(1-float64(st.WithDict)/float64(st.Plain)))
			return nil
		},
	}
	cmd.Flags().StringVar(&sizeArg, "size", "110KiB", "dictionary size")
	cmd.Flags().StringVar(&sampleArg, "sample-bytes", "11MiB", "sample data to train on (about 100x the size is best)")
	cmd.Flags().StringVar(&level, "level", "default", "zstd level the dictionary is built for: fastest, default, better, best")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the result as JSON")
	return cmd
}

// lookupDict resolves NAME@VERSION to a stored dictionary.
func lookupDict(cmd *cobra.Command, s *store.Store, arg string) (*store.Dict, error) {
	ref, err := parseID("dictionary", arg)
	if err != nil {
		return nil, err
	}
	return s.DictByName(cmd.Context(), ref.Name, ref.Version)
}

func newDictsCommand(g *globals) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "dicts",
		Short: "List, choose the default, or remove dictionaries",
		Long: `Dicts lists the stored dictionaries with their size, how many chunks use
them, and what they saved on held-out samples when trained. 'dicts default
NAME@VERSION' makes ingest use one when --dict is not given ('dicts default
none' stops that); 'dicts rm NAME@VERSION' removes one no chunk uses.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			ds, err := s.Dicts(cmd.Context())
			if err != nil {
				return err
			}
			def, err := s.DefaultDict(cmd.Context())
			if err != nil {
				return err
			}
			type row struct {
				Name    string      `json:"dict"`
				Bytes   int         `json:"bytes"`
				Chunks  int64       `json:"chunks"`
				Default bool        `json:"default"`
				Created string      `json:"created"`
				Hash    string      `json:"hash"`
				Params  any         `json:"params"`
				Stats   train.Stats `json:"stats"`
			}
			var rows []row
			for _, d := range ds {
				n, err := s.DictUsers(cmd.Context(), d.ID)
				if err != nil {
					return err
				}
				r := row{Name: d.Ref(), Bytes: d.Size, Chunks: n, Default: def != nil && def.ID == d.ID, Created: d.Created.UTC().Format(time.RFC3339),
					Hash: d.Hash.String()}
				json.Unmarshal([]byte(d.Stats), &r.Stats)
				json.Unmarshal([]byte(d.Params), &r.Params)
				rows = append(rows, r)
			}
			if jsonOut {
				return json.NewEncoder(os.Stdout).Encode(rows)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DICT\tSIZE\tCHUNKS\tHELD-OUT: ZSTD\tWITH DICT\tDEFAULT")
			for _, r := range rows {
				d := ""
				if r.Default {
					d = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Name, size(int64(r.Bytes)), r.Chunks, size(r.Stats.Plain), size(r.Stats.WithDict), d)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.AddCommand(&cobra.Command{
		Use:   "default NAME@VERSION|none",
		Short: "Make ingest use a dictionary when --dict is not given",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			s, err := g.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			if a[0] == "none" {
				return s.SetDefaultDict(cmd.Context(), 0)
			}
			d, err := lookupDict(cmd, s, a[0])
			if err != nil {
				return err
			}
			return s.SetDefaultDict(cmd.Context(), d.ID)
		},
	}, &cobra.Command{
		Use:   "rm NAME@VERSION",
		Short: "Remove a dictionary that no chunk uses",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			s, err := g.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			d, err := lookupDict(cmd, s, a[0])
			if err != nil {
				return err
			}
			return s.RemoveDict(cmd.Context(), *d)
		},
	})
	return cmd
}

func newRecompressCommand(g *globals) *cobra.Command {
	var (
		dictArg, level string
		delta          bool
		depth          int
	)
	cmd := &cobra.Command{
		Use:   "recompress (--dict NAME@VERSION|none | --delta) [ROOT...]",
		Short: "Re-dry stored chunks with a dictionary or against older versions",
		Long: `Recompress rewrites stored chunks wherever that stores them smaller.

--dict NAME@VERSION re-dries the chunks of the given roots (or of the whole
store) with that trained dictionary. --dict none re-dries every chunk of
them that uses a dictionary without one, even where that is larger: what
'dicts rm' needs before it can remove a dictionary.

--delta re-dries the given roots (or every root) as ingest does for new
versions: each root, in creation order, against the previous version of
its name; a chunk of a changed file becomes a delta against the aligned
chunk of the same path, chains at most --delta-depth long. Chunks that
already have a reference, or that others depend on, are left alone.

It works in batches of one transaction each: readers and mounts keep
serving, a killed run leaves every chunk readable, and running it again
finishes the job.`,
		Example: "  spraydryfs recompress --dict src@1 toolchain@1.0 toolchain@1.1\n  spraydryfs recompress --dict none && spraydryfs dicts rm src@1\n  spraydryfs recompress --delta",
		Args:    args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			if (dictArg == "") == !delta {
				return usageError{errors.New("recompress: give exactly one of --dict NAME@VERSION|none and --delta")}
			}
			if err := ingest.CheckDepth(depth); err != nil {
				return usageError{fmt.Errorf("--delta-depth: %w", err)}
			}
			lvl, err := chunk.ParseLevel(level)
			if err != nil {
				return usageError{err}
			}
			var refs []store.Ref
			for _, x := range a {
				ref, err := parseID("root", x)
				if err != nil {
					return err
				}
				refs = append(refs, ref)
			}
			s, err := g.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			var roots []store.Root
			for _, ref := range refs {
				r, err := s.Root(cmd.Context(), ref.Name, ref.Version)
				if err != nil {
					return err
				}
				roots = append(roots, r)
			}
			start := time.Now()
			if delta {
				if len(roots) == 0 {
					if roots, err = s.Roots(cmd.Context()); err != nil {
						return err
					}
				}
				progress, done := countBar("recompress", false)
				st, err := ingest.Redry(cmd.Context(), s, roots, lvl, depth, progress)
				done()
				fmt.Printf("re-dried %d roots against their previous versions: %d chunks looked at, %d rewritten as deltas, %s -> %s, %.1fs\n",
					st.Roots, st.Chunks, st.Rewritten, size(st.Before), size(st.After), time.Since(start).Seconds())
				return err
			}
			var d *store.Dict // nil: re-dry without a dictionary
			with := "without a dictionary"
			if dictArg != "none" {
				if d, err = lookupDict(cmd, s, dictArg); err != nil {
					return err
				}
				with = "with " + d.Ref()
			}
			var only []hash.Hash // nil: every chunk of the store
			if len(roots) > 0 {
				if only, err = walk.Chunks(cmd.Context(), s.Objects, roots); err != nil {
					return err
				}
			}
			progress, done := countBar("recompress", false)
			st, err := s.Recompress(cmd.Context(), d, lvl, only, progress)
			done()
			fmt.Printf("recompressed %s: %d chunks looked at, %d rewritten, %s -> %s, %.1fs\n",
				with, st.Chunks, st.Rewritten, size(st.Before), size(st.After), time.Since(start).Seconds())
			return err
		},
	}
	cmd.Flags().StringVar(&dictArg, "dict", "", "re-dry with this trained dictionary (none: without one)")
	cmd.Flags().BoolVar(&delta, "delta", false, "re-dry changed files against their previous versions")
	cmd.Flags().IntVar(&depth, "delta-depth", ingest.DefaultMaxDepth, "longest reference chain a rewritten chunk may start (with --delta)")
	cmd.Flags().StringVar(&level, "level", "default", "zstd level: fastest, default, better, best")
	return cmd
}
