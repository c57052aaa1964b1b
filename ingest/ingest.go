// Package ingest builds a new root from source directories and existing
// roots: it walks the sources, cuts, hashes and dries new content in a
// worker pipeline, and commits the root last, atomically.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// Source is one input of an ingest: a directory on disk, or a root (or a
// directory inside one) already in the store.
type Source struct {
	Dir string     // a directory, or
	Ref *store.Ref // root:NAME@VERSION[/path]
}

func (s Source) String() string {
	if s.Ref != nil {
		return "root:" + s.Ref.String()
	}
	return s.Dir
}

// ParseSource reads a command-line source: root:NAME@VERSION[/path] or a
// directory path.
func ParseSource(arg string) (Source, error) {
	if rest, ok := strings.CutPrefix(arg, "root:"); ok {
		ref, err := store.ParseRef(rest, true)
		if err != nil {
			return Source{}, err
		}
		return Source{Ref: &ref}, nil
	}
	if arg == "" {
		return Source{}, errors.New("empty source path")
	}
	return Source{Dir: arg}, nil
}

// Options configure Run.
type Options struct {
	Name, Version string
	Sources       []Source
	// NoReuse reads every file even if the newest version of Name saw it
	// unchanged.
	NoReuse bool
	// Level is the zstd level for new chunks.
	Level chunk.Level
	// Dict, if set, is the trained dictionary new chunks are dried with
	// (each chunk keeps the smaller of with and without it).
	Dict *store.Dict
	// Parent is the root (or a directory in one) whose files new chunks are
	// delta-dried against, path by path; nil picks the newest version of
	// Name, if there is one.
	Parent *store.Ref
	// NoDelta stores every new chunk on its own (plain or with Dict).
	NoDelta bool
	// MaxDepth bounds reference chains; 0 uses DefaultMaxDepth.
	MaxDepth int
	// Workers is the number of read/cut/dry workers; 0 uses two per core,
	// so that reading a file from a cold disk overlaps with compression.
	Workers int
	// AllowChanging stores a file that keeps changing while it is read as
	// it was read last (after three reads), with a warning, instead of
	// failing the ingest.
	AllowChanging bool
	// Progress, if set, is told the totals once and then called as work
	// advances.
	Progress Progress
	Log      *slog.Logger
}

// Progress receives counts as an ingest runs. Calls come from several
// goroutines.
type Progress interface {
	Total(files, bytes int64)
	Add(files, bytes int64)
}

// Result describes a committed ingest.
type Result struct {
	Root        store.Root
	Files       int64 // regular files in the root
	Bytes       int64 // their logical bytes
	ReadFiles   int64 // files read (the rest were reused unread)
	ReadBytes   int64
	NewChunks   int64
	DeltaChunks int64 // new chunks stored against a reference
	StoredBytes int64 // bytes added to the store after dedup and compression
	Elapsed     time.Duration
}

// Run ingests opt.Sources into a new root opt.Name@opt.Version of s.
func Run(ctx context.Context, s *store.Store, opt Options) (*Result, error) {
	start := time.Now()
	if err := store.CheckName("root name", opt.Name); err != nil {
		return nil, err
	}
	if err := store.CheckName("version", opt.Version); err != nil {
		return nil, err
	}
	if opt.Version == store.Latest {
		return nil, fmt.Errorf("version %q is reserved: it always names the newest version", store.Latest)
	}
	id := opt.Name + "@" + opt.Version
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	// Before anything is read: garbage collection deletes nothing while
	// the lease is held, so whatever this ingest finds stored stays.
	lease, err := s.AcquireLease(store.LeaseIngest)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lease.Release(); err != nil {
			opt.Log.Warn("ingest lease left behind (garbage collection drops it once this process ends)", "err", err)
		}
	}()
	if _, err := s.Root(ctx, opt.Name, opt.Version); err == nil {
		return nil, fmt.Errorf("root %s: %w (roots are never overwritten)", id, store.ErrExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if len(opt.Sources) == 0 {
		return nil, errors.New("no sources given")
	}
	if opt.Level == 0 {
		opt.Level = chunk.Level(2) // zstd.SpeedDefault
	}
	var dict []byte
	if opt.Dict != nil {
		dict = opt.Dict.Data
	}
	dryer, err := chunk.NewDryer(opt.Level, dict)
	if err != nil {
		return nil, err
	}
	if opt.MaxDepth == 0 {
		opt.MaxDepth = DefaultMaxDepth
	}
	if err := CheckDepth(opt.MaxDepth); err != nil {
		return nil, err
	}
	in := &ingester{s: s, opt: opt, dryer: dryer, delta: chunk.NewDeltaDryer(opt.Level), near: newNeighbours(), maxDepth: opt.MaxDepth,
		name: opt.Name, gen: start.UnixNano(), ahead: make(chan struct{}, runtime.GOMAXPROCS(0))}
	if err := in.prepare(ctx); err != nil {
		return nil, err
	}
	w, err := s.NewWriter()
	if err != nil {
		return nil, err
	}
	in.w = w
	defer w.Close()

	top, err := in.build(ctx)
	if err != nil {
		return nil, err
	}
	root := store.Root{Name: opt.Name, Version: opt.Version, Top: top.entry, Created: time.Now(),
		Source: sourceList(opt.Sources), Files: int64(top.dir.Files), Bytes: int64(top.dir.Bytes), Gen: in.gen}
	if err := w.Commit(root); err != nil {
		return nil, err
	}
	st := w.Stats()
	return &Result{Root: root, Files: root.Files, Bytes: root.Bytes, ReadFiles: in.readFiles.Load(), ReadBytes: in.readBytes.Load(),
		NewChunks: st.Chunks, DeltaChunks: st.Deltas, StoredBytes: st.StoredBytes, Elapsed: time.Since(start)}, nil
}

func sourceList(srcs []Source) string {
	parts := make([]string, len(srcs))
	for i, s := range srcs {
		parts[i] = s.String()
		if s.Ref == nil {
			if abs, err := filepath.Abs(s.Dir); err == nil {
				parts[i] = abs
			}
		}
	}
	return strings.Join(parts, " ")
}

type ingester struct {
	s     *store.Store
	w     *store.Writer
	opt   Options
	dryer *chunk.Dryer
	name  string
	gen   int64

	delta     *chunk.DeltaDryer
	ahead     chan struct{} // a token per chunk dried ahead, one per core (see drying)
	near      *neighbours
	maxDepth  int
	parentTop prevDir // the parent version's top listing; none: no deltas
	reuseTop  prevDir // the newest version's, for the reuse index

	prevGen int64 // reuse index generation of the newest version; 0 = none
	links   map[devIno]*linkGroup
	skip    map[devIno]bool // the store's own files, if inside a source

	linkMu    sync.Mutex
	linkReads map[devIno]linkRead // the first link read of each hard-linked file

	readFiles, readBytes atomic.Int64

	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

type devIno struct{ dev, ino uint64 }

// linkGroup is a set of hard links to one inode inside the sources.
type linkGroup struct {
	count uint32
	id    uint64
}

// prepare checks sources, finds the reuse index, and prescans directories
// for totals and hard links.
func (in *ingester) prepare(ctx context.Context) error {
	warnDropped(in.opt.Log)
	in.links = map[devIno]*linkGroup{}
	in.linkReads = map[devIno]linkRead{}
	in.skip = map[devIno]bool{}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		var st fileStat
		if stat(in.s.Path()+suffix, &st) == nil {
			in.skip[devIno{uint64(st.Dev), st.Ino}] = true
		}
	}
	prev, err := in.s.Newest(ctx, in.name)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case !in.opt.NoReuse && prev.Top.Type == tree.TypeDir:
		in.prevGen = prev.Gen
		if in.reuseTop, err = in.topDir(ctx, prev.Top); err != nil {
			return fmt.Errorf("newest version %s: %w", prev.ID(), err)
		}
	}
	if !in.opt.NoDelta {
		var top tree.Entry
		switch {
		case in.opt.Parent != nil:
			if top, err = in.refEntry(ctx, *in.opt.Parent); err != nil {
				return fmt.Errorf("parent %s: %w", in.opt.Parent, err)
			}
		case prev.Name != "":
			top = prev.Top
		}
		if top.Type == tree.TypeDir {
			if in.parentTop, err = in.topDir(ctx, top); err != nil {
				return fmt.Errorf("parent: %w", err)
			}
		}
	}
	var files, bytes int64
	for _, src := range in.opt.Sources {
		if src.Ref != nil {
			if _, err := in.refEntry(ctx, *src.Ref); err != nil {
				return fmt.Errorf("source %s: %w", src, err)
			}
			continue
		}
		st, err := os.Stat(src.Dir)
		if err != nil {
			return fmt.Errorf("source %s: %w", src.Dir, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("source %s: not a directory", src.Dir)
		}
		first := map[devIno]string{}
		err = filepath.WalkDir(src.Dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("ingest %s: %w", p, err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !d.Type().IsRegular() {
				return nil
			}
			var st fileStat
			if err := lstat(p, &st); err != nil {
				return fmt.Errorf("ingest %s: %w", p, err)
			}
			k := devIno{uint64(st.Dev), st.Ino}
			if in.skip[k] {
				return nil
			}
			files++
			bytes += st.Size
			if st.Nlink > 1 {
				g := in.links[k]
				if g == nil {
					g = &linkGroup{}
					in.links[k] = g
					first[k] = p
				}
				g.count++
			}
			return nil
		})
		if err != nil {
			return err
		}
		// A group's id derives from where it is first met, so the same
		// tree always gets the same ids and listings.
		for k, p := range first {
			if in.links[k].count > 1 {
				rel, _ := filepath.Rel(src.Dir, p)
				s := hash.Sum([]byte(src.Dir + "\x00" + rel))
				id := uint64(0)
				for _, b := range s[1:9] {
					id = id<<8 | uint64(b)
				}
				in.links[k].id = id | 1
			}
		}
	}
	if in.opt.Progress != nil {
		in.opt.Progress.Total(files, bytes)
	}
	return nil
}

// topDir returns the listing a directory entry names.
func (in *ingester) topDir(ctx context.Context, e tree.Entry) (prevDir, error) {
	d, err := in.s.Dir(ctx, e.Hash)
	return prevDir{dir: d, h: e.Hash}, err
}

// refEntry returns the directory entry a root source names.
func (in *ingester) refEntry(ctx context.Context, ref store.Ref) (tree.Entry, error) {
	r, err := in.s.Root(ctx, ref.Name, ref.Version)
	if err != nil {
		return tree.Entry{}, err
	}
	e := r.Top
	if ref.Path != "" {
		for _, part := range strings.Split(ref.Path, "/") {
			if e.Type != tree.TypeDir {
				return e, fmt.Errorf("%s: not a directory", ref)
			}
			d, err := in.s.Dir(ctx, e.Hash)
			if err != nil {
				return e, err
			}
			c, ok := d.Lookup(part)
			if !ok {
				return e, fmt.Errorf("%s: %w", ref, store.ErrNotFound)
			}
			e = *c
		}
		if e.Type != tree.TypeDir {
			return e, fmt.Errorf("%s: not a directory", ref)
		}
	}
	return e, nil
}

func (in *ingester) fail(err error) {
	in.errOnce.Do(func() {
		in.err = err
		in.cancel()
	})
}

// built is a finished directory: its entry (for the parent) and listing.
type built struct {
	entry tree.Entry
	dir   *tree.Dir
}

// build produces the root's top directory from all sources.
func (in *ingester) build(ctx context.Context) (*built, error) {
	ctx, in.cancel = context.WithCancel(ctx)
	defer in.cancel()
	workers := in.opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	jobs := make(chan *fileJob, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.worker(ctx, jobs)
		}()
	}
	var tops []*built
	var owner []string
	for _, src := range in.opt.Sources {
		var b *built
		var err error
		if src.Ref != nil {
			b, err = in.refSource(ctx, *src.Ref)
		} else {
			b, err = in.dirSource(ctx, src.Dir, jobs)
		}
		if err != nil {
			in.fail(err)
			break
		}
		tops = append(tops, b)
		owner = append(owner, src.String())
	}
	close(jobs)
	wg.Wait()
	if in.err != nil {
		return nil, in.err
	}
	if err := in.w.Err(); err != nil {
		return nil, err
	}
	if len(tops) == 1 {
		return tops[0], nil
	}
	return in.merge(ctx, tops, owner)
}

// refSource takes an existing root or subtree as it is: nothing is read or stored.
func (in *ingester) refSource(ctx context.Context, ref store.Ref) (*built, error) {
	e, err := in.refEntry(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("source root:%s: %w", ref, err)
	}
	d, err := in.s.Dir(ctx, e.Hash)
	if err != nil {
		return nil, fmt.Errorf("source root:%s: %w", ref, err)
	}
	return &built{entry: e, dir: d}, nil
}

// merge joins several tops into one listing; the first source's top
// supplies the attributes of the root directory.
func (in *ingester) merge(ctx context.Context, tops []*built, owner []string) (*built, error) {
	byName := map[string]int{}
	m := &tree.Dir{}
	for i, t := range tops {
		for _, e := range t.dir.Entries {
			if j, dup := byName[e.Name]; dup {
				return nil, fmt.Errorf("sources %s and %s both have %q at the top", owner[j], owner[i], e.Name)
			}
			byName[e.Name] = i
			if t.dir.Unsealed && e.Type == tree.TypeFile {
				// From a listing written before lists were sealed: the
				// merged listing is sealed, so it names the stored list.
				list, ok, err := in.s.StoredFile(ctx, e.Hash, e.Size)
				if err == nil && !ok {
					err = fmt.Errorf("file %s is not stored", e.Hash)
				}
				if err != nil {
					return nil, fmt.Errorf("source %s: %q: %w", owner[i], e.Name, err)
				}
				e.List = list
			}
			m.Entries = append(m.Entries, e)
		}
		m.Files += t.dir.Files
		m.Bytes += t.dir.Bytes
		m.Xattrs += t.dir.Xattrs
	}
	m.Sort()
	top := tops[0].entry
	if err := in.finishDir(m, &top, in.parentTop.h); err != nil {
		return nil, err
	}
	return &built{entry: top, dir: m}, nil
}

// finishDir encodes and stores a listing and completes its directory
// entry; base is the same directory's listing in the parent version, or zero.
func (in *ingester) finishDir(d *tree.Dir, e *tree.Entry, base hash.Hash) error {
	enc, err := d.Encode()
	if err != nil {
		return err
	}
	h := hash.Sum(enc)
	e.Type, e.Hash, e.Size, e.Nlink = tree.TypeDir, h, int64(len(d.Entries)), 2
	for i := range d.Entries {
		if d.Entries[i].Type == tree.TypeDir {
			e.Nlink++
		}
	}
	var db *store.DirBase
	if !base.IsZero() && base != h {
		if db, err = in.s.DirBaseFor(context.Background(), base, in.maxDepth); err != nil {
			return fmt.Errorf("parent version of a directory: %w", err)
		}
	}
	return in.w.PutDir(h, enc, db)
}

// sortedNames returns a directory's names sorted by bytes.
func sortedNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}
