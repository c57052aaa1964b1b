package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Writer adds content to a store in batched transactions. Objects become
// visible to readers batch by batch; a root only with Commit, so a writer
// that never commits leaves unreferenced objects that a later ingest reuses.
// Put methods are safe for concurrent use.
type Writer struct {
	s     *Store
	ops   chan op
	done  chan struct{}
	errMu sync.Mutex
	err   error // the loop's failure; no op is applied after it
	claim sync.Map

	stopOnce, closeOnce sync.Once

	statsMu sync.Mutex
	stats   WriteStats
}

// WriteStats counts what a writer added.
type WriteStats struct {
	Chunks      int64 // new chunks
	Deltas      int64 // of which stored against a reference
	ChunkBytes  int64 // their raw bytes
	StoredBytes int64 // bytes added to the store: chunk data, chunk lists, listings (not the reuse index)
}

type opKind uint8

const (
	opChunk opKind = iota
	opFile
	opDir
	opIndex
	opFrame // a chunk in its stored form (import.go)
	opDict  // a dictionary known by its hash (import.go)
	opFunc  // fn, run on the connection after a commit
)

type op struct {
	kind  opKind
	h     hash.Hash
	size  int64
	codec chunk.Codec
	data  []byte
	name  string
	gen   int64
	dict  int64
	ref   hash.Hash
	depth int64
	fn    func(*sqlite.Conn) error // opFunc
	ack   chan error
}

// Batch limits: a transaction commits after this many bytes or this long.
const (
	batchBytes = 8 << 20
	batchTime  = time.Second
)

// NewWriter starts a writer. Only one writer runs per Store at a time;
// writers in other processes wait on SQLite's lock.
func (s *Store) NewWriter() (*Writer, error) {
	if s.wconn == nil {
		return nil, errors.New("store opened read-only")
	}
	s.wmu.Lock()
	w := &Writer{s: s, ops: make(chan op, 256), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Claimer decides, for one worker, which chunks and file records it must
// store. It opens a read connection of its own for its lookups (no
// transaction stays open between them), so a lookup costs one query and no
// pool round trip, and any number of workers leaves the pool to the reads
// they make besides. Close it when the worker is done.
type Claimer struct {
	w *Writer
	c *sqlite.Conn
}

// NewClaimer returns a Claimer for one goroutine.
func (w *Writer) NewClaimer() (*Claimer, error) {
	c, err := openRead(w.s.path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", w.s.path, err)
	}
	return &Claimer{w: w, c: c}, nil
}

// Close closes the Claimer's connection.
func (cl *Claimer) Close() { cl.c.Close() }

// Chunk reports whether the caller should store chunk h: false if it is
// already stored or another caller has claimed it.
func (cl *Claimer) Chunk(h hash.Hash) (bool, error) {
	return cl.claim(h, h, `SELECT 1 FROM chunks WHERE hash = ?`)
}

// File is Chunk for a file record.
func (cl *Claimer) File(h hash.Hash) (bool, error) {
	return cl.claim(fileKey(h), h, `SELECT 1 FROM files WHERE hash = ?`)
}

func (cl *Claimer) claim(key any, h hash.Hash, q string) (bool, error) {
	if _, loaded := cl.w.claim.LoadOrStore(key, struct{}{}); loaded {
		return false, nil
	}
	has, err := rowExists(cl.c, q, h)
	if err != nil || has {
		cl.w.claim.Delete(key)
		return false, err
	}
	return true, nil
}

// fileKey keeps file claims apart from chunk claims with the same hash.
type fileKey hash.Hash

// StoredFile reports whether file h is stored with size bytes and, if so,
// the hash of its stored chunk list (zero for a file stored as one chunk),
// which a listing naming the file must carry. It reads the store itself,
// not the caches: a cached chunk of address h says nothing of a list.
func (s *Store) StoredFile(ctx context.Context, h hash.Hash, size int64) (list hash.Hash, ok bool, err error) {
	rec, err := s.ChunkList(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return hash.Zero, false, nil
	}
	if err != nil {
		return hash.Zero, false, err
	}
	f, err := decodeFile(h, rec)
	if errors.Is(err, ErrCorrupt) || err == nil && f.Size != size {
		return hash.Zero, false, nil
	}
	if err != nil {
		return hash.Zero, false, err
	}
	return f.ListHash, true, nil
}

// Err returns the error that stopped the writer, if any.
func (w *Writer) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Writer) send(o op) error {
	if err := w.Err(); err != nil {
		return err
	}
	select {
	case w.ops <- o:
		return nil
	case <-w.done:
		return errors.New("writer closed")
	}
}

// Dried is a chunk's stored form.
type Dried struct {
	Codec chunk.Codec
	Dict  int64     // trained dictionary id, 0 for none
	Ref   hash.Hash // the reference of a Delta chunk, a stored chunk
	Depth int       // the reference's depth plus one, for a Delta chunk
	Data  []byte    // owned by the writer once passed to PutChunk
}

// PutChunk stores a claimed chunk: content address, raw size and stored form.
func (w *Writer) PutChunk(h hash.Hash, size int, d Dried) error {
	return w.send(op{kind: opChunk, h: h, size: int64(size), codec: d.Codec, dict: d.Dict, ref: d.Ref, depth: int64(d.Depth), data: d.Data})
}

// PutFile stores a claimed file record with its encoded chunk list.
func (w *Writer) PutFile(h hash.Hash, size int64, list []byte) error {
	return w.send(op{kind: opFile, h: h, size: size, data: list})
}

// PutDir stores an encoded listing under its hash, compressed if that
// helps, or as a delta against base (which may be nil) if that is smaller.
func (w *Writer) PutDir(h hash.Hash, enc []byte, base *DirBase) error {
	return w.send(op{kind: opDir, h: h, data: packDir(enc, base)})
}

// PutIndex stores reuse-index data for one source directory of an ingest
// of name with generation gen.
func (w *Writer) PutIndex(name string, gen int64, path string, data []byte) error {
	return w.send(op{kind: opIndex, name: name, gen: gen, data: data, h: hash.Sum([]byte(path)), size: int64(len(path))})
}

// Flush commits everything sent so far.
func (w *Writer) Flush() error { return w.do(nil) }

// do commits everything sent so far, then runs fn (if not nil) on the
// write connection, outside any transaction, and returns its error.
func (w *Writer) do(fn func(*sqlite.Conn) error) error {
	ack := make(chan error, 1)
	if err := w.send(op{kind: opFunc, fn: fn, ack: ack}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-w.done:
		if err := w.Err(); err != nil {
			return err
		}
		return errors.New("writer closed")
	}
}

// Commit flushes and then adds root r in a transaction of its own, which
// also retires the reuse index of r.Name's older ingests. It fails with
// ErrExists if r's name and version are taken. The writer is closed after.
func (w *Writer) Commit(r Root) error {
	err := w.Flush()
	w.stop()
	defer w.Close()
	if err != nil {
		return err
	}
	top, err := encodeTop(r.Top)
	if err != nil {
		return fmt.Errorf("commit root %s: %w", r.ID(), err)
	}
	c := w.s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return fmt.Errorf("commit root %s: %w", r.ID(), err)
	}
	err = sqlitex.Execute(c, `INSERT INTO roots(`+rootCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, &sqlitex.ExecOptions{
		Args: []any{r.Name, r.Version, top, r.Created.UnixNano(), r.Source, r.Files, r.Bytes, w.Stats().StoredBytes, r.Gen}})
	if sqlite.ErrCode(err) == sqlite.ResultConstraintUnique {
		err = fmt.Errorf("root %s: %w", r.ID(), ErrExists)
	}
	if err == nil {
		err = sqlitex.Execute(c, `DELETE FROM ingest_index WHERE name = ? AND gen != ?`, &sqlitex.ExecOptions{Args: []any{r.Name, r.Gen}})
	}
	end(&err)
	if err != nil && !errors.Is(err, ErrExists) {
		err = fmt.Errorf("commit root %s: %w", r.ID(), err)
	}
	return err
}

// stop ends the loop, committing what it holds, and keeps the connection.
func (w *Writer) stop() {
	w.stopOnce.Do(func() { close(w.ops) })
	<-w.done
}

// Close stops the writer, committing what it holds, and releases the
// store's write connection. It is safe to call twice.
func (w *Writer) Close() error {
	w.stop()
	w.closeOnce.Do(w.s.wmu.Unlock)
	return w.Err()
}

// Stats returns what the writer has committed so far.
func (w *Writer) Stats() WriteStats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.stats
}

// loop owns the write connection: it applies ops in transactions of about
// batchBytes or batchTime and releases claims once their rows are visible.
func (w *Writer) loop() {
	defer close(w.done)
	c := w.s.wconn
	var (
		inTx    bool
		bytes   int64
		started time.Time
		claimed []any
		pending WriteStats
	)
	commit := func() error {
		if !inTx {
			return nil
		}
		if err := sqlitex.ExecuteTransient(c, "COMMIT", nil); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
		inTx, bytes = false, 0
		for _, k := range claimed {
			w.claim.Delete(k)
		}
		claimed = claimed[:0]
		w.statsMu.Lock()
		w.stats.Chunks += pending.Chunks
		w.stats.Deltas += pending.Deltas
		w.stats.ChunkBytes += pending.ChunkBytes
		w.stats.StoredBytes += pending.StoredBytes
		w.statsMu.Unlock()
		pending = WriteStats{}
		return nil
	}
	fail := func(err error) {
		w.errMu.Lock()
		w.err = err
		w.errMu.Unlock()
		if inTx {
			sqlitex.ExecuteTransient(c, "ROLLBACK", nil)
		}
		for o := range w.ops { // drain so senders do not block
			if o.ack != nil {
				o.ack <- err
			}
		}
	}
	tick := time.NewTicker(batchTime / 2)
	defer tick.Stop()
	for {
		var o op
		var ok bool
		select {
		case o, ok = <-w.ops:
		case <-tick.C:
			if inTx && time.Since(started) >= batchTime {
				if err := commit(); err != nil {
					fail(err)
					return
				}
			}
			continue
		}
		if !ok {
			if err := commit(); err != nil {
				fail(err)
			}
			return
		}
		if o.kind == opFunc {
			err := commit()
			if err != nil {
				o.ack <- err
				fail(err)
				return
			}
			if o.fn != nil {
				err = o.fn(c)
			}
			o.ack <- err // fn's own failure leaves the writer usable
			continue
		}
		if !inTx {
			if err := sqlitex.ExecuteTransient(c, "BEGIN IMMEDIATE", nil); err != nil {
				fail(fmt.Errorf("begin batch: %w", err))
				return
			}
			inTx, started = true, time.Now()
		}
		n, err := w.apply(c, o)
		if err != nil {
			fail(err)
			return
		}
		bytes += int64(len(o.data))
		pending.StoredBytes += n
		switch o.kind {
		case opChunk, opFrame:
			claimed = append(claimed, o.h)
			if n > 0 {
				pending.Chunks++
				if o.codec.HasRef() {
					pending.Deltas++
				}
				pending.ChunkBytes += o.size
			}
		case opFile:
			claimed = append(claimed, fileKey(o.h))
		}
		if bytes >= batchBytes {
			if err := commit(); err != nil {
				fail(err)
				return
			}
		}
	}
}

// apply writes one op and returns the stored bytes it added.
func (w *Writer) apply(c *sqlite.Conn, o op) (int64, error) {
	switch o.kind {
	case opChunk:
		// A chunk stored meanwhile by another process is not stored twice.
		if has, err := rowExists(c, `SELECT 1 FROM chunks WHERE hash = ?`, o.h); err != nil || has {
			return 0, err
		}
		if err := exec(c, `INSERT INTO chunk_data(data) VALUES (?)`, o.data); err != nil {
			return 0, fmt.Errorf("store chunk %s: %w", o.h, err)
		}
		id := c.LastInsertRowID()
		var ref any // NULL without a reference
		if !o.ref.IsZero() {
			ref = o.ref[:]
		}
		if err := exec(c, `INSERT OR FAIL INTO chunks(hash, size, codec, dict, ref, depth, stored, data_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			o.h[:], o.size, int64(o.codec), o.dict, ref, o.depth, int64(len(o.data)), id); err != nil {
			return 0, fmt.Errorf("store chunk %s: %w", o.h, err)
		}
		return int64(len(o.data)), nil
	case opFile:
		if err := exec(c, `INSERT OR IGNORE INTO files(hash, size, chunks) VALUES (?, ?, ?)`, o.h[:], o.size, o.data); err != nil {
			return 0, fmt.Errorf("store file %s: %w", o.h, err)
		}
	case opDir:
		if err := exec(c, `INSERT OR IGNORE INTO dirs(hash, data) VALUES (?, ?)`, o.h[:], o.data); err != nil {
			return 0, fmt.Errorf("store directory %s: %w", o.h, err)
		}
	case opFrame:
		return applyFrame(c, o)
	case opDict:
		return 0, applyDict(c, o)
	case opIndex:
		if err := exec(c, `INSERT OR REPLACE INTO ingest_index(name, gen, path, data) VALUES (?, ?, ?, ?)`, o.name, o.gen, o.h[:], o.data); err != nil {
			return 0, fmt.Errorf("store ingest index: %w", err)
		}
		return 0, nil // it replaces the name's previous index at Commit: bookkeeping, not content
	}
	if c.Changes() == 0 {
		return 0, nil
	}
	return int64(len(o.data)), nil
}

func exec(c *sqlite.Conn, q string, args ...any) error {
	st, err := c.Prepare(q)
	if err != nil {
		return err
	}
	for i, a := range args {
		switch v := a.(type) {
		case []byte:
			st.BindBytes(i+1, v)
		case int64:
			st.BindInt64(i+1, v)
		case string:
			st.BindText(i+1, v)
		case nil:
			st.BindNull(i + 1)
		default:
			panic(fmt.Sprintf("exec: unsupported argument %T", a))
		}
	}
	_, err = st.Step()
	if rerr := st.Reset(); err == nil {
		err = rerr
	}
	return err
}

func rowExists(c *sqlite.Conn, q string, h hash.Hash) (bool, error) {
	err := queryRow(c, q, func(st *sqlite.Stmt) { st.BindBytes(1, h[:]) }, func(*sqlite.Stmt) error { return nil })
	if errors.Is(err, errNoRow) {
		return false, nil
	}
	return err == nil, err
}
