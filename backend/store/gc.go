package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// The store side of garbage collection (backend/gc drives it): deleting
// objects in batches that each leave a consistent store, re-drying the
// live dependants of dead references, and giving freed pages back to the
// file system.

// Object names a stored object.
type Object struct {
	Kind ObjectKind
	Hash hash.Hash
}

// SweepStats counts what one Sweep deleted.
type SweepStats struct {
	Objects int64    // objects deleted
	Bytes   int64    // their stored bytes
	Held    []Object // chunks not deleted: other chunks depend on them
}

// Sweep deletes, in one write transaction, the objects pick returns, unless
// a live ingest lease exists (then it deletes nothing and returns an error
// wrapping ErrLeased). pick runs inside the transaction, so no root can be
// committed meanwhile: it is given the roots as they are and must leave
// out everything they need. A chunk is deleted only if no chunk depends on
// it (others are returned as Held). Callers order batches so that every
// transaction leaves a store that passes Check: listings before the chunk
// lists and chunks they name, dependants before their references.
func (s *Store) Sweep(ctx context.Context, pick func(ctx context.Context, roots []Root) ([]Object, error)) (SweepStats, error) {
	var st SweepStats
	err := s.sweepTx(ctx, func(c *sqlite.Conn) error {
		roots, err := s.Roots(ctx)
		if err != nil {
			return err
		}
		objs, err := pick(ctx, roots)
		if err != nil {
			return err
		}
		for _, o := range objs {
			n, ok, err := deleteObject(c, o)
			if err != nil {
				return err
			}
			if !ok {
				if o.Kind == ObjectChunk {
					st.Held = append(st.Held, o)
				}
				continue
			}
			st.Objects++
			st.Bytes += n
		}
		return nil
	})
	if err != nil {
		return SweepStats{}, fmt.Errorf("sweep: %w", err)
	}
	return st, nil
}

// deleteObject deletes one object and returns its stored bytes; ok is
// false if it was not there, or is a chunk others depend on. The size is
// read before the delete, not RETURNING from it: SQLite codes RETURNING as
// a trigger, and a function call in it (length) makes the DELETE copy every
// page it touches into a statement journal first (26 MB for 200 listings).
func deleteObject(c *sqlite.Conn, o Object) (n int64, ok bool, err error) {
	var size, del string
	switch o.Kind {
	case ObjectListing:
		size, del = `SELECT length(data), 0 FROM dirs WHERE hash = ?`, `DELETE FROM dirs WHERE hash = ?`
	case ObjectList:
		size, del = `SELECT length(chunks), 0 FROM files WHERE hash = ?`, `DELETE FROM files WHERE hash = ?`
	case ObjectChunk:
		size, del = `SELECT stored, data_id FROM chunks WHERE hash = ? AND deps = 0`, `DELETE FROM chunks WHERE hash = ?`
	default:
		return 0, false, fmt.Errorf("delete object %s: unknown kind %d", o.Hash, o.Kind)
	}
	var dataID int64
	err = sqlitex.Execute(c, size, &sqlitex.ExecOptions{Args: []any{o.Hash[:]}, ResultFunc: func(st *sqlite.Stmt) error {
		n, dataID, ok = st.ColumnInt64(0), st.ColumnInt64(1), true
		return nil
	}})
	if err == nil && ok {
		err = exec(c, del, o.Hash[:])
	}
	if err == nil && ok && o.Kind == ObjectChunk {
		err = exec(c, `DELETE FROM chunk_data WHERE id = ?`, dataID)
	}
	if err != nil {
		return 0, false, fmt.Errorf("delete %s: %w", o.Hash, err)
	}
	return n, ok, nil
}

// DropOrphanIndexes deletes reuse-index rows of ingests that never
// committed (no root has their name and generation), unless an ingest
// runs (ErrLeased). It returns the rows deleted.
func (s *Store) DropOrphanIndexes(ctx context.Context) (int64, error) {
	var n int64
	err := s.sweepTx(ctx, func(c *sqlite.Conn) error {
		err := exec(c, `DELETE FROM ingest_index WHERE NOT EXISTS
			(SELECT 1 FROM roots r WHERE r.name = ingest_index.name AND r.gen = ingest_index.gen)`)
		n = int64(c.Changes())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("drop orphaned reuse indexes: %w", err)
	}
	return n, nil
}

// ListingBase returns the base listing h is delta-coded against, or zero.
func (s *Store) ListingBase(ctx context.Context, h hash.Hash) (hash.Hash, error) {
	head, err := s.dirBlob(ctx, h, `substr(data, 1, 48)`)
	if err != nil {
		return hash.Zero, err
	}
	r, err := parseDirRecord(head)
	if err != nil {
		return hash.Zero, fmt.Errorf("%w: directory %s: %v", ErrCorrupt, h, err)
	}
	return r.base, nil
}

// Rebase is a new reference for a stored chunk or listing: Ref is a
// stored object of the same kind that stays, or zero to store it alone.
type Rebase struct {
	Hash, Old, Ref hash.Hash // Old: the reference it has now
	// Cands are other chunks (of neighbouring content) that a chunk is
	// tried against too, as ingest tries them (chunk.Cross).
	Cands []hash.Hash
}

// RebaseStats counts what RebaseChunks or RebaseListings did.
type RebaseStats struct {
	Done          int64 // objects now stored against Ref (or alone)
	Before, After int64 // their stored bytes before and after
}

// add counts o in st.
func (st *RebaseStats) add(o RebaseStats) {
	st.Done, st.Before, st.After = st.Done+o.Done, st.Before+o.Before, st.After+o.After
}

// Dryers are the encoders RebaseChunks uses: one set serves every call,
// so that encoders are made once.
type Dryers struct {
	delta *chunk.DeltaDryer
	plain *chunk.Dryer
}

// NewDryers returns the encoders of zstd level level.
func NewDryers(level chunk.Level) (*Dryers, error) {
	plain, err := chunk.NewDryer(level, nil)
	if err != nil {
		return nil, err
	}
	return &Dryers{delta: chunk.NewDeltaDryer(level), plain: plain}, nil
}

// plainSkip: a delta of at most 1/plainSkip of the raw chunk is stored
// without computing the plain zstd form (which must then be smaller
// still). On the gomod corpus plain zstd makes a quarter to a third of a
// chunk, and of the chunks gc re-dried it was the smallest form for 1.3%.
const plainSkip = 4

// RebaseChunks re-dries chunks against new references or candidates (or
// alone, with plain zstd), whichever is smallest, in transactions of batch
// chunks each, told to progress as each commits. The forms of a batch are
// computed first, on every core, while the batch before commits (at most
// two batches ahead); then, in its transaction, the smallest form that
// fits is stored: its reference's depth (read there, so after the earlier
// chunks) plus one must be at most maxDepth, and more than the chunk's
// depth only if nothing depends on the chunk and no ingest runs (which may
// be drying a chunk against it at the depth it read). Stored alone always
// fits. A chunk whose reference is no longer Old is left alone (done[i]
// false); for the others rs[i].Ref is set to the reference chosen (zero:
// none). Content and address never change, so readers, dependants and
// concurrent writers are unaffected, and each transaction leaves a
// consistent store.
func (s *Store) RebaseChunks(ctx context.Context, rs []Rebase, dry *Dryers, maxDepth, batch int, progress func(n int)) (done []bool, st RebaseStats, err error) {
	if s.wconn == nil {
		return nil, st, errors.New("store opened read-only")
	}
	items := make([]rebaseItem, len(rs))
	prepare := func(i int) error {
		r := rs[i]
		info, err := s.ChunkInfo(ctx, r.Hash)
		if err != nil || info.Ref != r.Old {
			return err
		}
		items[i].before = info.Stored
		raw, err := s.Chunk(ctx, r.Hash)
		if err != nil {
			return err
		}
		var fs []rebaseForm
		smallest := 0 // the smallest delta's size
		try := func(codec chunk.Codec, h hash.Hash) error {
			ref, err := s.Chunk(ctx, h)
			if err != nil {
				return err
			}
			d, err := dry.delta.Dry(nil, raw, ref)
			if err != nil {
				return fmt.Errorf("re-dry chunk %s: %w", r.Hash, err)
			}
			fs = append(fs, rebaseForm{codec, h, d})
			if len(fs) == 1 || len(d) < smallest {
				smallest = len(d)
			}
			return nil
		}
		// As ingest does: a delta this small is kept without trying more.
		won := func() bool { return len(fs) > 0 && smallest*chunk.DeltaWins <= len(raw) }
		for _, h := range r.Cands {
			if won() {
				break
			}
			if err := try(chunk.Cross, h); err != nil {
				return err
			}
		}
		if !r.Ref.IsZero() && !won() {
			if err := try(info.Codec, r.Ref); err != nil {
				return err
			}
		}
		slices.SortStableFunc(fs, func(a, b rebaseForm) int { return cmp.Compare(len(a.data), len(b.data)) })
		if len(fs) > 0 && len(fs[0].data)*plainSkip <= len(raw) {
			items[i].forms, items[i].alone = fs, raw
			return nil
		}
		out, codec, _ := dry.plain.Dry(nil, raw)
		for len(fs) > 0 && len(fs[len(fs)-1].data) >= len(out) {
			fs = fs[:len(fs)-1]
		}
		items[i].forms = append(fs, rebaseForm{codec: codec, data: out})
		return nil
	}
	batch = max(batch, 1)
	batches := (len(rs) + batch - 1) / batch
	ready := make([]sync.WaitGroup, batches) // batch b's forms are computed
	for b := range ready {
		ready[b].Add(min(batch, len(rs)-b*batch))
	}
	errs := make([]error, len(rs))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	// Drying is the work: one worker per core, fed at most two batches
	// ahead of the commits.
	next, ahead := make(chan int), make(chan struct{}, 2*batch)
	wg.Go(func() {
		defer close(next)
		for i := range rs {
			select {
			case ahead <- struct{}{}:
				next <- i
			case <-ctx.Done():
				for ; i < len(rs); i++ { // never prepared: their batches fail
					errs[i] = ctx.Err()
					ready[i/batch].Done()
				}
				return
			}
		}
	})
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				errs[i] = prepare(i)
				ready[i/batch].Done()
			}
		})
	}
	done = make([]bool, len(rs))
	for b := range batches {
		lo, hi := b*batch, min((b+1)*batch, len(rs))
		ready[b].Wait()
		for _, err := range errs[lo:hi] {
			if err != nil {
				return nil, RebaseStats{}, err
			}
		}
		bst, err := s.rebaseBatch(rs[lo:hi], items[lo:hi], done[lo:hi], dry, maxDepth)
		if err != nil {
			return nil, RebaseStats{}, err
		}
		st.add(bst)
		for i := lo; i < hi; i++ {
			items[i] = rebaseItem{}
			<-ahead
		}
		if progress != nil {
			progress(hi - lo)
		}
	}
	return done, st, nil
}

// rebaseItem is what RebaseChunks prepared for one chunk.
type rebaseItem struct {
	forms  []rebaseForm // smallest first; the last is stored alone, unless
	alone  []byte       // the raw chunk: its plain form was not worth computing
	before int          // its stored bytes before
}

// rebaseForm is one way RebaseChunks can store a chunk.
type rebaseForm struct {
	codec chunk.Codec
	ref   hash.Hash // zero: stored alone
	data  []byte
}

// rebaseBatch stores chunks rs, prepared as items, each in the smallest of
// its forms that fits, in one write transaction, and sets done for those
// stored.
func (s *Store) rebaseBatch(rs []Rebase, items []rebaseItem, done []bool, dry *Dryers, maxDepth int) (st RebaseStats, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return st, err
	}
	defer end(&err)
	live, err := liveLeases(c)
	if err != nil {
		return st, err
	}
	deeper := int64(1)
	for _, l := range live {
		if l.Kind == LeaseIngest {
			deeper = 0
		}
	}
	// apply stores chunk i in form f if that fits, and says whether it did.
	apply := func(i int, f *rebaseForm) (bool, error) {
		h, old := rs[i].Hash, rs[i].Old
		var err error
		if f.ref.IsZero() {
			err = exec(c, `UPDATE OR FAIL chunks SET codec = ?, dict = 0, ref = NULL, depth = 0, stored = ? WHERE hash = ? AND ref = ?`,
				int64(f.codec), int64(len(f.data)), h[:], old[:])
		} else {
			err = exec(c, `UPDATE OR FAIL chunks SET codec = ?1, dict = 0, ref = ?2, stored = ?3,
				depth = (SELECT r.depth + 1 FROM chunks r WHERE r.hash = ?2)
				WHERE hash = ?4 AND ref = ?5 AND EXISTS (SELECT 1 FROM chunks r WHERE r.hash = ?2
					AND r.depth + 1 <= ?6 AND (r.depth + 1 <= chunks.depth OR chunks.deps = 0 AND ?7))`,
				int64(f.codec), f.ref[:], int64(len(f.data)), h[:], old[:], int64(maxDepth), deeper)
		}
		if err != nil {
			return false, fmt.Errorf("re-dry chunk %s: %w", h, err)
		}
		return c.Changes() > 0, nil
	}
	for i := range rs {
		h, it := rs[i].Hash, &items[i]
		var applied *rebaseForm
		for j := range it.forms {
			ok, err := apply(i, &it.forms[j])
			if err != nil {
				return RebaseStats{}, err
			}
			if ok {
				applied = &it.forms[j]
				break
			}
		}
		if applied == nil && it.alone != nil { // no delta fits: alone, as it always fits
			out, codec, _ := dry.plain.Dry(nil, it.alone)
			f := rebaseForm{codec: codec, data: out}
			ok, err := apply(i, &f)
			if err != nil {
				return RebaseStats{}, err
			}
			if ok {
				applied = &f
			}
		}
		if applied == nil {
			continue
		}
		// New bytes go to the end of the table, as new rows do: rewritten
		// in place, a grown row splits its page and leaves two half empty.
		if err = exec(c, `DELETE FROM chunk_data WHERE id = (SELECT data_id FROM chunks WHERE hash = ?)`, h[:]); err == nil {
			err = exec(c, `INSERT INTO chunk_data(data) VALUES (?)`, applied.data)
		}
		if err == nil {
			err = exec(c, `UPDATE OR FAIL chunks SET data_id = ? WHERE hash = ?`, c.LastInsertRowID(), h[:])
		}
		if err != nil {
			return RebaseStats{}, fmt.Errorf("re-dry chunk %s: %w", h, err)
		}
		done[i], rs[i].Ref = true, applied.ref
		st.Done++
		st.Before += int64(it.before)
		st.After += int64(len(applied.data))
	}
	return st, nil
}

// RebaseListings re-packs listings against new bases (or alone when Ref is
// zero), in transactions of batch listings each, told to progress as each
// commits, as RebaseChunks does for chunks: a listing is left alone unless
// its base is still Old and Ref is present.
func (s *Store) RebaseListings(ctx context.Context, rs []Rebase, batch int, progress func(n int)) (done []bool, st RebaseStats, err error) {
	if s.wconn == nil {
		return nil, st, errors.New("store opened read-only")
	}
	batch = max(batch, 1)
	for lo := 0; lo < len(rs); lo += batch {
		hi := min(lo+batch, len(rs))
		ok, bst, err := s.rebaseListingBatch(ctx, rs[lo:hi])
		if err != nil {
			return nil, RebaseStats{}, err
		}
		done = append(done, ok...)
		st.add(bst)
		if progress != nil {
			progress(hi - lo)
		}
	}
	return done, st, nil
}

// rebaseListingBatch is RebaseListings for one batch, in one transaction.
func (s *Store) rebaseListingBatch(ctx context.Context, rs []Rebase) (done []bool, st RebaseStats, err error) {
	recs := make([][]byte, len(rs))
	before := make([]int, len(rs))
	for i, r := range rs {
		blob, err := s.dirBlob(ctx, r.Hash, `data`)
		if err != nil {
			return nil, st, err
		}
		if rec, err := parseDirRecord(blob); err != nil || rec.base != r.Old {
			continue
		}
		d, err := s.Dir(ctx, r.Hash)
		if err != nil {
			return nil, st, err
		}
		enc, err := d.Encode()
		if err != nil {
			return nil, st, fmt.Errorf("directory %s: %w", r.Hash, err)
		}
		var base *DirBase
		if !r.Ref.IsZero() {
			head, err := s.dirBlob(ctx, r.Ref, `substr(data, 1, 48)`)
			if err != nil {
				return nil, st, err
			}
			br, err := parseDirRecord(head)
			if err != nil {
				return nil, st, fmt.Errorf("%w: directory %s: %v", ErrCorrupt, r.Ref, err)
			}
			bd, err := s.Dir(ctx, r.Ref)
			if err != nil {
				return nil, st, err
			}
			benc, err := bd.Encode()
			if err != nil {
				return nil, st, fmt.Errorf("directory %s: %w", r.Ref, err)
			}
			base = &DirBase{Hash: r.Ref, Enc: benc, Depth: br.depth}
		}
		recs[i], before[i] = packDir(enc, base), len(blob)
	}
	done = make([]bool, len(rs))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return nil, RebaseStats{}, err
	}
	defer end(&err)
	for i, rec := range recs {
		if rec == nil {
			continue
		}
		r := rs[i]
		// Present and unchanged since it was read, and its new base (if it
		// has one) still present.
		q := `UPDATE dirs SET data = ?1 WHERE hash = ?2 AND length(data) = ?3`
		args := []any{rec, r.Hash[:], int64(before[i])}
		if rec[0] == byte(chunk.Delta) {
			q += ` AND EXISTS (SELECT 1 FROM dirs WHERE hash = ?4)`
			args = append(args, r.Ref[:])
		}
		if err = exec(c, q, args...); err != nil {
			return nil, RebaseStats{}, fmt.Errorf("re-pack directory %s: %w", r.Hash, err)
		}
		if c.Changes() == 0 {
			continue
		}
		done[i] = true
		st.Done++
		st.Before += int64(before[i])
		st.After += int64(len(rec))
	}
	return done, st, nil
}

// PageUse is how the store file's pages are used.
type PageUse struct {
	FileBytes  int64 // the file's size
	FreeBytes  int64 // in free pages inside it
	AutoVacuum bool  // freed pages can be given back without VACUUM
}

// Pages reports the file's size and its free pages.
func (s *Store) Pages(ctx context.Context) (PageUse, error) {
	var sp PageUse
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		var page, free, mode int64
		for q, v := range map[string]*int64{`PRAGMA page_size`: &page, `PRAGMA freelist_count`: &free, `PRAGMA auto_vacuum`: &mode} {
			if err := queryRow(c, q, func(*sqlite.Stmt) {}, func(st *sqlite.Stmt) error { *v = st.ColumnInt64(0); return nil }); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		sp.FreeBytes, sp.AutoVacuum = page*free, mode == 2
		return nil
	})
	if err != nil {
		return sp, err
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return sp, err
	}
	sp.FileBytes = fi.Size()
	return sp, nil
}

// vacuumStep is how many pages one incremental vacuum transaction frees
// (64 KiB pages: 8 MiB), short enough that writers barely wait.
const vacuumStep = 128

// Shrink gives the store's free pages back to the file system, a few at a
// time, each step its own short write transaction, and then checkpoints
// the write-ahead log into the file and truncates both. Readers keep
// reading throughout. It needs auto_vacuum=INCREMENTAL (stores created
// since schema 3 have it; Compact converts older ones); without it, it
// does nothing. progress is told pages freed of the total.
func (s *Store) Shrink(ctx context.Context, progress func(done, total int64)) error {
	if s.wconn == nil {
		return errors.New("store opened read-only")
	}
	sp, err := s.Pages(ctx)
	if err != nil || !sp.AutoVacuum || sp.FreeBytes == 0 {
		return err
	}
	var page int64
	if err := s.pragmaInt(`PRAGMA page_size`, &page); err != nil {
		return err
	}
	total, done := sp.FreeBytes/page, int64(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var free int64
		s.wmu.Lock()
		err := sqlitex.ExecuteTransient(s.wconn, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, vacuumStep), nil)
		if err == nil {
			err = queryRow(s.wconn, `PRAGMA freelist_count`, func(*sqlite.Stmt) {}, func(st *sqlite.Stmt) error { free = st.ColumnInt64(0); return nil })
		}
		s.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("incremental vacuum: %w", err)
		}
		done = total - free
		if progress != nil {
			progress(done, total)
		}
		if free == 0 {
			break
		}
	}
	return s.checkpoint()
}

// Compact rewrites the whole store with VACUUM, switching it to
// auto_vacuum=INCREMENTAL on the way, so that the file holds no free
// pages and later garbage collections shrink it without VACUUM. It holds
// the write lock throughout, so ingests, rm and gc wait (an ingest's
// write gives up after ten seconds); readers keep reading. The
// write-ahead log briefly holds a copy of the whole store.
func (s *Store) Compact(ctx context.Context) error {
	if s.wconn == nil {
		return errors.New("store opened read-only")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	err := pragmas(s.wconn, "auto_vacuum=INCREMENTAL")
	if err == nil {
		err = sqlitex.ExecuteTransient(s.wconn, `VACUUM`, nil)
	}
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return s.checkpoint()
}

// checkpoint copies the write-ahead log into the store file, truncating
// the file to its pages and the log to nothing where no reader holds it.
func (s *Store) checkpoint() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := sqlitex.ExecuteTransient(s.wconn, `PRAGMA wal_checkpoint(TRUNCATE)`, nil); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func (s *Store) pragmaInt(q string, v *int64) error {
	return s.withRead(context.Background(), func(c *sqlite.Conn) error {
		return queryRow(c, q, func(*sqlite.Stmt) {}, func(st *sqlite.Stmt) error { *v = st.ColumnInt64(0); return nil })
	})
}

// defragWindow is the span of chunk_data ids Defrag looks at as one: rows
// are stored in id order, so a window whose ids are mostly deleted lies
// on pages that are mostly empty.
const defragWindow = 1024

// Defrag moves the chunk data left on sparse pages by deletions to the
// end of the table, so that those pages empty and Shrink can give them
// back: incremental vacuum frees only whole pages, and with 64 KiB pages
// most chunks share pages. A window of ids is moved when fewer than
// fifteen sixteenths of them are left (on the gomod corpus after removing
// 5 of 10 versions, the chunk data took 365 pages at seven eighths, 359
// at fifteen sixteenths, and 339 in a fresh store of what was left, whose
// chunk data is 1.1 MiB smaller); each window is one short transaction
// (content and addresses never change, so readers and writers are
// unaffected, and a killed run leaves a consistent store). It returns
// the rows moved.
func (s *Store) Defrag(ctx context.Context, progress func(done, total int64)) (int64, error) {
	if s.wconn == nil {
		return 0, errors.New("store opened read-only")
	}
	var sparse []int64
	var last int64
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		if err := queryRow(c, `SELECT coalesce(max(id), 0) FROM chunk_data`, func(*sqlite.Stmt) {}, func(st *sqlite.Stmt) error { last = st.ColumnInt64(0); return nil }); err != nil {
			return err
		}
		return sqlitex.Execute(c, `SELECT id / ?1 AS w, count(*) FROM chunk_data GROUP BY w HAVING count(*) < ?1 * 15 / 16`, &sqlitex.ExecOptions{
			Args: []any{defragWindow},
			ResultFunc: func(st *sqlite.Stmt) error {
				if w := st.ColumnInt64(0); w < last/defragWindow { // the last window is still filling
					sparse = append(sparse, w)
				}
				return nil
			}})
	})
	if err != nil {
		return 0, fmt.Errorf("defragment: %w", err)
	}
	var moved int64
	for i, w := range sparse {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		n, err := s.moveWindow(w)
		if err != nil {
			return moved, fmt.Errorf("defragment: %w", err)
		}
		moved += n
		if progress != nil {
			progress(int64(i+1), int64(len(sparse)))
		}
	}
	return moved, nil
}

// moveWindow moves the rows of window w to the end of chunk_data.
func (s *Store) moveWindow(w int64) (n int64, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return 0, err
	}
	defer end(&err)
	type row struct {
		h  []byte
		id int64
	}
	var rows []row
	// One scan of the chunk rows (no index by data_id), then lookups by hash.
	err = sqlitex.Execute(c, `SELECT hash, data_id FROM chunks WHERE data_id >= ?1 * ?2 AND data_id < (?1 + 1) * ?2`, &sqlitex.ExecOptions{
		Args: []any{w, defragWindow},
		ResultFunc: func(st *sqlite.Stmt) error {
			rows = append(rows, row{columnCopy(st, 0), st.ColumnInt64(1)})
			return nil
		}})
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		if err = exec(c, `INSERT OR FAIL INTO chunk_data(data) SELECT data FROM chunk_data WHERE id = ?`, r.id); err != nil {
			return 0, err
		}
		if err = exec(c, `UPDATE OR FAIL chunks SET data_id = ? WHERE hash = ?`, c.LastInsertRowID(), r.h); err != nil {
			return 0, err
		}
		if err = exec(c, `DELETE FROM chunk_data WHERE id = ?`, r.id); err != nil {
			return 0, err
		}
	}
	return int64(len(rows)), nil
}
