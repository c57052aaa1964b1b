package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

func newIngestCommand(g *globals) *cobra.Command {
	var (
		noReuse bool
		level   string
		dictArg string
		jsonOut bool
		parent  string
		noDelta bool
		depth   int
	)
	var allowChanging bool
	cmd := &cobra.Command{
		Use:   "ingest NAME@VERSION SOURCE...",
		Short: "Store directories and existing roots as a new root",
		Long: `Ingest stores a new root NAME@VERSION. Each SOURCE is a directory, or
root:NAME@VERSION[/sub/path] to take an existing root or subtree as it is
(nothing is read or stored again). With one source its contents become the
root's top; several sources are merged at the top, and a name that two
sources share is an error.

Regular files, directories, symlinks, hard links, FIFOs, sockets and device
nodes are kept with mode (setuid, setgid, sticky), owner, mtime (ns) and
extended attributes. Files are cut into content-defined chunks; only chunks
the store does not hold yet are compressed and written.

When NAME already has versions, files whose path, size, mtime and inode
match the newest version are reused without being read (--no-reuse reads
everything). The newest version is the most recently created one, the one
NAME@latest names, whatever the version strings say.

A file is stat'ed before and after it is read; if it changed in between
(size, mtime or ctime), it is read again, up to three times. A file that
keeps changing fails the ingest, naming it, and nothing is committed;
--allow-changing stores such a file as last read, with a warning.

New chunks are delta-dried: a changed file's chunks are compressed against
the same path's chunks in the parent version (the newest version of NAME,
or --parent), and a new file's against a stored file of the same name,
directory or extension, keeping the smallest of that, the trained
dictionary and plain zstd. Reading a chunk rehydrates its reference first, so reference
chains are kept at most --delta-depth long; --no-delta stores every chunk
on its own.

The root appears only when the whole ingest has committed; an
interrupted ingest leaves no root, and running it again reuses every chunk
it had stored. The store file is created if missing.`,
		Example: `  spraydryfs -s store.sdfs ingest toolchain@1.0 ./toolchain-1.0
  spraydryfs -s store.sdfs ingest merged@1 ./docs root:toolchain@1.0/bin
  spraydryfs -s store.sdfs ingest toolchain@1.1-rc ./rc --parent toolchain@1.0`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := parseID("root", a[0])
			if err != nil {
				return err
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
			opt := ingest.Options{Name: ref.Name, Version: ref.Version, Sources: srcs, NoReuse: noReuse, Level: lvl, Log: g.log,
				NoDelta: noDelta, MaxDepth: depth, AllowChanging: allowChanging}
			if err := ingest.CheckDepth(depth); err != nil {
				return usageError{fmt.Errorf("--delta-depth: %w", err)}
			}
			if parent != "" {
				p, err := store.ParseRef(parent, true)
				if err != nil {
					return usageError{fmt.Errorf("--parent: %w", err)}
				}
				opt.Parent = &p
			}
			switch dictArg {
			case "":
				opt.Dict, err = s.DefaultDict(cmd.Context())
			case "none":
			default:
				opt.Dict, err = lookupDict(cmd, s, dictArg)
			}
			if err != nil {
				return err
			}
			var bar *progressBar
			if term.IsTerminal(int(os.Stderr.Fd())) {
				bar = newProgressBar(os.Stderr, "ingest "+a[0])
				opt.Progress = bar
			}
			res, err := ingest.Run(cmd.Context(), s, opt)
			if bar != nil {
				bar.finish()
			}
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return fmt.Errorf("ingest %s: interrupted: nothing committed", a[0])
			}
			if err != nil {
				return err
			}
			if jsonOut {
				return json.NewEncoder(os.Stdout).Encode(map[string]any{
					"root": res.Root.ID(), "files": res.Files, "bytes": res.Bytes, "read_files": res.ReadFiles,
					"read_bytes": res.ReadBytes, "new_chunks": res.NewChunks, "delta_chunks": res.DeltaChunks, "stored_bytes": res.StoredBytes,
					"seconds": res.Elapsed.Seconds()})
			}
			stored := size(res.StoredBytes) + " new in the store after dedup and compression"
			if res.StoredBytes == 0 {
				stored = "nothing new in the store"
			}
			fmt.Printf("ingested %s: %s, %s logical, %s read (%s), %s, %.1fs\n",
				res.Root.ID(), count(res.Files, "file"), size(res.Bytes), count(res.ReadFiles, "file"), size(res.ReadBytes), stored, res.Elapsed.Seconds())
			return nil
		},
	}
	cmd.Flags().BoolVar(&noReuse, "no-reuse", false, "read every file, even those unchanged since the newest version")
	cmd.Flags().StringVar(&level, "level", "default", "zstd level for new chunks: fastest, default, better, best")
	cmd.Flags().StringVar(&dictArg, "dict", "", "dry new chunks with this trained dictionary (default: the store's default dictionary; none: no dictionary)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the summary as JSON")
	cmd.Flags().StringVar(&parent, "parent", "", "delta-dry against this root `NAME@VERSION[/path]` (default: the newest version of NAME)")
	cmd.Flags().BoolVar(&noDelta, "no-delta", false, "store new chunks without references to older chunks")
	cmd.Flags().BoolVar(&allowChanging, "allow-changing", false, "store files that keep changing while read as last read, with a warning, instead of failing")
	cmd.Flags().IntVar(&depth, "delta-depth", ingest.DefaultMaxDepth, "longest reference chain a new chunk may start")
	return cmd
}

// parseID reads exactly NAME@VERSION (no path) naming a root or a
// dictionary; errors are usage errors.
func parseID(kind, arg string) (store.Ref, error) {
	ref, err := store.ParseRef(arg, true)
	if err == nil && ref.Path != "" {
		err = fmt.Errorf("invalid %s %q: want NAME@VERSION", kind, arg)
	}
	if err != nil {
		return ref, usageError{err}
	}
	return ref, nil
}

// parseSources reads SOURCE arguments: directories and root:NAME@VERSION[/path].
func parseSources(args []string) ([]ingest.Source, error) {
	var srcs []ingest.Source
	for _, a := range args {
		src, err := ingest.ParseSource(a)
		if err != nil {
			return nil, usageError{err}
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// barOptions are the options every progress bar on terminal f shares: IEC
// units (as every size spraydryfs prints), and the terminal's width when
// it has one (a pty under script(1) may report 0 columns: then a fixed
// width, or the bar would be empty).
func barOptions(f *os.File, desc string) []progressbar.Option {
	opts := []progressbar.Option{progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(desc),
		progressbar.OptionUseIECUnits(true), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish()}
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w >= 60 {
		return append(opts, progressbar.OptionFullWidth())
	}
	return append(opts, progressbar.OptionSetWidth(20))
}

// progressBar shows files, bytes, rate and ETA on a terminal. Workers only
// count; a ticker draws the file count and the bytes together, so the two
// always describe the same moment.
type progressBar struct {
	f                   *os.File
	desc                string
	bar                 *progressbar.ProgressBar
	files, bytes, total atomic.Int64
	stop, stopped       chan struct{}
}

func newProgressBar(f *os.File, desc string) *progressBar {
	return &progressBar{f: f, desc: desc}
}

// Total implements ingest.Progress: it starts drawing.
func (p *progressBar) Total(files, bytes int64) {
	p.total.Store(files)
	p.bar = progressbar.NewOptions64(bytes, append(barOptions(p.f, p.desc), progressbar.OptionShowBytes(true),
		progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionThrottle(0))...)
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	p.draw() // at once, so that even a quick ingest shows what it is doing
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.stop:
				return
			}
		}
	}()
}

// Add implements ingest.Progress.
func (p *progressBar) Add(files, bytes int64) {
	p.files.Add(files)
	p.bytes.Add(bytes)
}

// draw renders the counts as of now: bytes, then the description, so the
// frame drawn last has both.
func (p *progressBar) draw() {
	p.bar.Set64(p.bytes.Load())
	p.bar.Describe(fmt.Sprintf("%s: %d/%d files", p.desc, p.files.Load(), p.total.Load()))
}

func (p *progressBar) finish() {
	if p.bar == nil {
		return
	}
	close(p.stop)
	<-p.stopped
	p.draw()
	p.bar.Finish()
}

// count formats n things: "1 file", "2 files".
func count(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// size formats a byte count with a binary unit.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
