package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// pendingDir is a directory whose listing waits for its children: files
// being read by workers and subdirectories still being walked. The last
// child to finish encodes it and completes the parent's entry.
type pendingDir struct {
	mu      sync.Mutex
	waiting int // children not finished, plus one while the walker lists it
	rel     string
	dir     tree.Dir
	parent  *pendingDir
	slot    *tree.Entry         // this directory's entry in the parent's listing
	ids     map[string]reuseKey // inode and ctime of each regular file, for the reuse index
	base    prevDir             // the parent version's listing at this path
	reuse   prevDir             // the newest version's, whose index says what is unchanged
	sibling *candidate          // the first chunk of the file stored last here, if plain
	done    chan struct{}       // closed when the top directory is finished
}

type fileJob struct {
	abs  string
	slot *tree.Entry
	pd   *pendingDir
	st   fileStat
	base hash.Hash // the parent version's file at this path, or zero
}

// dirSource walks one source directory; its contents become a listing.
func (in *ingester) dirSource(ctx context.Context, dir string, jobs chan<- *fileJob) (*built, error) {
	var st fileStat
	if err := stat(dir, &st); err != nil {
		return nil, fmt.Errorf("ingest %s: %w", dir, err)
	}
	top := &tree.Entry{}
	if err := in.fillEntry(dir, &st, top); err != nil {
		return nil, err
	}
	pd := &pendingDir{slot: top, base: in.parentTop, reuse: in.reuseTop, done: make(chan struct{})}
	in.walk(ctx, dir, pd, jobs)
	select {
	case <-pd.done:
	case <-ctx.Done():
		if in.err != nil {
			return nil, in.err
		}
		return nil, ctx.Err()
	}
	return &built{entry: *top, dir: &pd.dir}, nil
}

// walk lists abs into pd, sends its files to the workers, and recurses into
// subdirectories in name order.
func (in *ingester) walk(ctx context.Context, abs string, pd *pendingDir, jobs chan<- *fileJob) {
	names, err := sortedNames(abs)
	if err != nil {
		in.fail(fmt.Errorf("ingest %s: %w", abs, err))
		return
	}
	var prev map[string]seen
	if pd.reuse.dir != nil {
		data, err := in.s.IngestIndex(ctx, in.name, in.prevGen, pd.rel)
		if err != nil {
			in.fail(err)
			return
		}
		prev = decodeIndex(data, pd.reuse.h, pd.reuse.dir)
	}
	pd.waiting = 1
	pd.ids = map[string]reuseKey{}
	entries := make([]tree.Entry, 0, len(names))
	stats := make([]fileStat, 0, len(names))
	for _, name := range names {
		p := filepath.Join(abs, name)
		var st fileStat
		if err := lstat(p, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while we walked: it is not part of this version
			}
			in.fail(fmt.Errorf("ingest %s: %w", p, err))
			return
		}
		if in.skip[devIno{uint64(st.Dev), st.Ino}] {
			continue
		}
		e := tree.Entry{Name: name}
		if err := in.fillEntry(p, &st, &e); err != nil {
			in.fail(err)
			return
		}
		if len(e.Xattrs) > 0 {
			pd.dir.Xattrs++
		}
		entries = append(entries, e)
		stats = append(stats, st)
	}
	pd.dir.Entries = entries
	for i := range entries {
		if ctx.Err() != nil {
			return
		}
		e := &entries[i]
		p := filepath.Join(abs, e.Name)
		switch e.Type {
		case tree.TypeFile:
			st := &stats[i]
			pd.mu.Lock()
			pd.dir.Files++
			pd.mu.Unlock()
			if s, ok := prev[e.Name]; ok && s.ino == st.Ino && s.ctime == st.CTime && s.size == st.Size && s.mtime == e.MTime {
				if list, ok, err := in.s.StoredFile(ctx, s.hash, s.size); err == nil && ok {
					e.Hash, e.List = s.hash, list
					pd.mu.Lock()
					pd.dir.Bytes += uint64(e.Size)
					pd.ids[e.Name] = s.reuseKey
					pd.mu.Unlock()
					if in.opt.Progress != nil {
						in.opt.Progress.Add(1, e.Size)
					}
					continue
				}
			}
			pd.mu.Lock()
			pd.waiting++
			pd.mu.Unlock()
			select {
			case jobs <- &fileJob{abs: p, slot: e, pd: pd, st: *st, base: parentFile(pd.base.dir, e.Name)}:
			case <-ctx.Done():
				return
			}
		case tree.TypeDir:
			pd.mu.Lock()
			pd.waiting++
			pd.mu.Unlock()
			child := &pendingDir{parent: pd, slot: e, rel: filepath.Join(pd.rel, e.Name)}
			var err error
			child.base, err = in.subDir(ctx, pd.base, e.Name)
			switch {
			case err != nil:
			case pd.reuse.h == pd.base.h: // the usual case: both are the newest version
				child.reuse = child.base
			default:
				child.reuse, err = in.subDir(ctx, pd.reuse, e.Name)
			}
			if err != nil {
				in.fail(fmt.Errorf("older version of %s: %w", p, err))
				return
			}
			in.walk(ctx, p, child, jobs)
		}
	}
	in.release(pd)
}

// release marks one child of pd finished; the last one finishes pd.
func (in *ingester) release(pd *pendingDir) {
	pd.mu.Lock()
	pd.waiting--
	last := pd.waiting == 0
	pd.mu.Unlock()
	if !last {
		return
	}
	if err := in.finishDir(&pd.dir, pd.slot, pd.base.h); err != nil {
		in.fail(err)
		return
	}
	if len(pd.ids) > 0 {
		if err := in.w.PutIndex(in.name, in.gen, pd.rel, encodeIndex(pd.slot.Hash, &pd.dir, pd.ids)); err != nil {
			in.fail(err)
			return
		}
	}
	if pd.parent == nil {
		close(pd.done)
		return
	}
	p := pd.parent
	p.mu.Lock()
	p.dir.Files += pd.dir.Files
	p.dir.Bytes += pd.dir.Bytes
	p.dir.Xattrs += pd.dir.Xattrs
	p.mu.Unlock()
	in.release(p)
}

// fillEntry sets an entry's attributes from lstat and reads symlink
// targets and extended attributes.
func (in *ingester) fillEntry(p string, st *fileStat, e *tree.Entry) error {
	e.Mode = st.Mode & 07777
	e.UID, e.GID = st.Uid, st.Gid
	e.MTime = st.MTime
	switch st.Mode & sIFMT {
	case sIFREG:
		e.Type, e.Size, e.Nlink = tree.TypeFile, st.Size, 1
		if g := in.links[devIno{st.Dev, st.Ino}]; g != nil && g.count > 1 {
			e.Nlink, e.LinkID = g.count, g.id
		}
	case sIFDIR:
		e.Type = tree.TypeDir
	case sIFLNK:
		e.Type = tree.TypeSymlink
		t, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("ingest %s: %w", p, err)
		}
		e.Target, e.Size = t, int64(len(t))
	case sIFIFO:
		e.Type = tree.TypeFIFO
	case sIFSOCK:
		e.Type = tree.TypeSocket
	case sIFCHR:
		e.Type, e.Rdev = tree.TypeCharDev, st.Rdev
	case sIFBLK:
		e.Type, e.Rdev = tree.TypeBlockDev, st.Rdev
	default:
		return fmt.Errorf("ingest %s: unknown file type %o", p, st.Mode&sIFMT)
	}
	x, err := readXattrs(p)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", p, err)
	}
	e.Xattrs = x
	return nil
}

// worker reads files: cut, hash, claim, dry and store each new chunk, then
// the file record.
func (in *ingester) worker(ctx context.Context, jobs <-chan *fileJob) {
	ck, err := chunk.NewChunker(in.s.Params())
	if err != nil {
		in.fail(err)
	}
	cl, err := in.w.NewClaimer()
	if err != nil {
		in.fail(err)
	} else {
		defer cl.Close()
	}
	var first []byte
	for j := range jobs {
		if ctx.Err() != nil || ck == nil || cl == nil {
			continue // drain: the walker stops on the cancelled context
		}
		if err := in.readFile(ctx, ck, cl, &first, j); err != nil {
			in.fail(err)
			continue
		}
		in.release(j.pd)
	}
}

// maxReadAttempts bounds how often a file that changes while it is read is
// read again before the ingest fails (or, with AllowChanging, stores the
// last read).
const maxReadAttempts = 3

// testHookRead, if set, runs before each read of a file's content, after
// the file is stat'ed: tests change the file there.
var testHookRead func(path string, attempt int)

// readFile stores one file. Its stat before and after each read must
// agree, and the bytes read must be its size; otherwise the file changed
// while being read and the bytes may be a state that never existed, so it
// is read again, at most maxReadAttempts times.
func (in *ingester) readFile(ctx context.Context, ck *chunk.Chunker, cl *store.Claimer, first *[]byte, j *fileJob) error {
	f, err := os.OpenFile(j.abs, openFlags, 0)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", j.abs, err)
	}
	defer f.Close()
	var parent *tree.ChunkList // the parent version's file, for delta references
	if !j.base.IsZero() {
		pf, err := in.s.File(ctx, j.base)
		if err != nil {
			return fmt.Errorf("ingest %s: parent version: %w", j.abs, err)
		}
		parent = pf.List
	}
	inode := devIno{uint64(j.st.Dev), j.st.Ino} // as the walk saw it: the key of its hard links
	var r *readResult
	for attempt := 1; ; attempt++ {
		var before, after fileStat
		if err := fstat(f, &before); err != nil {
			return fmt.Errorf("ingest %s: %w", j.abs, err)
		}
		if before.Mode&sIFMT != sIFREG {
			return fmt.Errorf("ingest %s: no longer a regular file", j.abs)
		}
		if !sameState(&before, &j.st) {
			// Changed since the walk: the entry describes what is read.
			if err := in.restat(j, &before); err != nil {
				return err
			}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("ingest %s: %w", j.abs, err)
		}
		var picker *refPicker // aligns chunks with the parent version's file
		if parent != nil {
			picker = newRefPicker(parent)
		}
		if testHookRead != nil {
			testHookRead(j.abs, attempt)
		}
		if r, err = in.readContent(ctx, ck, cl, first, j, f, picker); err != nil {
			return err
		}
		if err := fstat(f, &after); err != nil {
			return fmt.Errorf("ingest %s: %w", j.abs, err)
		}
		if sameState(&after, &before) && r.size == before.Size {
			break
		}
		if attempt == maxReadAttempts {
			if !in.opt.AllowChanging {
				return fmt.Errorf("ingest %s: file kept changing while being read (%d reads); --allow-changing stores it as last read", j.abs, attempt)
			}
			in.opt.Log.Warn("file changed while being read; stored what was read last", "path", j.abs, "attempts", attempt, "size", after.Size, "read", r.size)
			break
		}
		in.opt.Log.Info("file changed while being read; reading it again", "path", j.abs, "attempt", attempt)
		if in.opt.Progress != nil {
			in.opt.Progress.Add(0, -r.size)
		}
	}
	if j.slot.LinkID != 0 {
		if err := in.checkLink(inode, j.abs, r.fh); err != nil {
			return err
		}
	}
	// A one-chunk file is its chunk: no file record, no list.
	if len(r.refs) != 1 {
		if j.slot.List, err = in.putFile(ctx, cl, r); err != nil {
			return err
		}
	}
	size := r.size
	j.slot.Hash, j.slot.Size = r.fh, size
	in.readFiles.Add(1)
	in.readBytes.Add(size)
	if in.opt.Progress != nil {
		in.opt.Progress.Add(1, 0)
	}
	pd := j.pd
	pd.mu.Lock()
	if r.firstCand != nil {
		pd.sibling = r.firstCand
		in.near.remember(j.slot.Name, r.firstCand)
	}
	pd.dir.Bytes += uint64(size)
	pd.ids[j.slot.Name] = reuseKey{j.st.Ino, j.st.CTime}
	pd.mu.Unlock()
	return nil
}

// putFile stores a multi-chunk file's record unless it is stored already,
// and returns the hash of its stored chunk list for the file's entry.
func (in *ingester) putFile(ctx context.Context, cl *store.Claimer, r *readResult) (hash.Hash, error) {
	list := tree.EncodeChunkList(r.refs)
	claimed, err := cl.File(r.fh)
	if err != nil {
		return hash.Zero, err
	}
	if claimed {
		return hash.Sum(list), in.w.PutFile(r.fh, r.size, list)
	}
	// Stored before, perhaps with another chunking (a pull from a store
	// that chunks otherwise): the entry must name that list. A claim by
	// another worker of this ingest is still being written: it is this
	// list, as chunking is a function of the content.
	stored, ok, err := in.s.StoredFile(ctx, r.fh, r.size)
	if err != nil || !ok {
		return hash.Sum(list), err
	}
	return stored, nil
}

// linkRead is what the first read link of a hard-linked file held.
type linkRead struct {
	path string
	h    hash.Hash
}

// checkLink makes all links of a hard-linked file hold the same content:
// each link is read on its own, and a file that changed between two of
// those reads would give one inode two contents.
func (in *ingester) checkLink(k devIno, path string, h hash.Hash) error {
	in.linkMu.Lock()
	defer in.linkMu.Unlock()
	first, ok := in.linkReads[k]
	switch {
	case !ok:
		in.linkReads[k] = linkRead{path: path, h: h}
	case first.h == h:
	case in.opt.AllowChanging:
		in.opt.Log.Warn("file changed between reads of two of its hard links; stored each as read", "path", path, "link", first.path)
	default:
		return fmt.Errorf("ingest %s: file changed after its hard link %s was read; --allow-changing stores each link as read", path, first.path)
	}
	return nil
}

// sameState reports whether two stats show the same file, unchanged.
func sameState(a, b *fileStat) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.MTime == b.MTime && a.CTime == b.CTime
}

// restat makes a file's entry describe st, the file as it is now.
func (in *ingester) restat(j *fileJob, st *fileStat) error {
	x, err := readXattrs(j.abs)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", j.abs, err)
	}
	e := j.slot
	j.pd.mu.Lock()
	switch {
	case len(x) > 0 && len(e.Xattrs) == 0:
		j.pd.dir.Xattrs++
	case len(x) == 0 && len(e.Xattrs) > 0:
		j.pd.dir.Xattrs--
	}
	j.pd.mu.Unlock()
	e.Mode, e.UID, e.GID, e.MTime, e.Size, e.Xattrs = st.Mode&07777, st.Uid, st.Gid, st.MTime, st.Size, x
	j.st = *st
	return nil
}

// readResult is one read of a file: its address, size and chunks.
type readResult struct {
	fh        hash.Hash
	size      int64
	refs      []tree.ChunkRef
	firstCand *candidate // the file's first chunk, if stored plain
}

// readContent cuts, hashes, claims, dries and stores each new chunk of f.
// Up to aheadWindow chunks are dried in parallel ahead of the one being
// stored (see drying), so that one big file uses every core; the
// ingester's tokens bound them across files to one per core, so that
// the memory they hold does not grow with the number of file workers.
func (in *ingester) readContent(ctx context.Context, ck *chunk.Chunker, cl *store.Claimer, first *[]byte, j *fileJob, f *os.File, picker *refPicker) (*readResult, error) {
	ck.Reset(f)
	// A one-chunk file's address is its chunk's: the whole-file hash is
	// only computed once a second chunk shows up, from a copy of the first.
	var (
		refs  []tree.ChunkRef
		size  int64
		whole = hash.New()
		// the previous and the first chunk of this file, if stored plain
		prevCand, firstCand *candidate
		window              []*drying // claimed chunks not yet stored, in order
		wg                  sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	// put finishes the window's oldest chunk and stores it.
	put := func() error {
		p := window[0]
		window = window[1:]
		<-p.done
		if p.err != nil {
			return fmt.Errorf("ingest %s: %w", j.abs, p.err)
		}
		var cands []*candidate
		switch {
		case in.opt.NoDelta:
		case prevCand != nil:
			cands = []*candidate{prevCand}
		case p.first:
			j.pd.mu.Lock()
			sibling := j.pd.sibling
			j.pd.mu.Unlock()
			if c := in.near.lookup(j.slot.Name, sibling); c != nil {
				cands = []*candidate{c}
			}
		}
		d, err := in.dryRest(p, cands)
		if err != nil {
			return fmt.Errorf("ingest %s: %w", j.abs, err)
		}
		if err := in.w.PutChunk(p.h, len(p.c), d); err != nil {
			return err
		}
		if !in.opt.NoDelta && d.Depth == 0 {
			prevCand = &candidate{h: p.h, data: p.c}
			if p.first {
				firstCand = prevCand
			}
		}
		return nil
	}
	for {
		c, err := ck.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ingest %s: %w", j.abs, err)
		}
		h := hash.Sum(c)
		switch len(refs) {
		case 0:
			*first = append((*first)[:0], c...)
		case 1:
			whole.Write(*first)
			fallthrough
		default:
			whole.Write(c)
		}
		refs = append(refs, tree.ChunkRef{Hash: h, Size: uint32(len(c))})
		var parent hash.Hash
		if picker != nil {
			picker.saw(h, size)
			parent = picker.pick(size)
		}
		size += int64(len(c))
		claimed, err := cl.Chunk(h)
		if err != nil {
			return nil, err
		}
		if claimed {
			p := &drying{h: h, c: append([]byte(nil), c...), parent: parent, first: len(refs) == 1, done: make(chan struct{})}
			if !p.first && parent.IsZero() && !in.opt.NoDelta {
				p.guess = prevCand // right unless a chunk in the window is stored plain
			}
			window = append(window, p)
			select {
			case in.ahead <- struct{}{}: // a core is free: dry it there
				wg.Go(func() {
					defer func() { <-in.ahead }()
					in.dryAhead(ctx, p)
				})
			default: // every core is drying: here and now
				in.dryAhead(ctx, p)
			}
			for len(window) > aheadWindow || len(window) > 0 && isDone(window[0].done) {
				if err := put(); err != nil {
					return nil, err
				}
			}
		}
		if in.opt.Progress != nil {
			in.opt.Progress.Add(0, int64(len(c)))
		}
	}
	for len(window) > 0 {
		if err := put(); err != nil {
			return nil, err
		}
	}
	var fh hash.Hash
	switch {
	case len(refs) == 0:
		fh = hash.Sum(nil)
	case len(refs) == 1:
		fh = refs[0].Hash
	default:
		fh = hash.FromDigest(whole.Sum(nil))
	}
	return &readResult{fh: fh, size: size, refs: refs, firstCand: firstCand}, nil
}

// aheadWindow is how many chunks of one file are dried ahead of the one being
// stored: enough to keep every core busy, each holding one chunk's copy.
var aheadWindow = runtime.GOMAXPROCS(0)

// isDone reports whether done is closed.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}
