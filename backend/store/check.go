package store

import (
	"context"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// checkListed reports a file that is missing, or whose stored size or
// chunk list is not what its listing says. The list itself is decoded,
// and checked, in the files pass.
func checkListed(c *sqlite.Conn, l Listed) error {
	rec, err := fileRecord(c, l.Hash)
	if err != nil {
		return err
	}
	f := &File{Hash: l.Hash, Size: rec.Size, List: tree.OneChunk(l.Hash, rec.Size)}
	if rec.List != nil {
		f.ListHash, f.List = hash.Sum(rec.List), &tree.ChunkList{}
	}
	return l.fits(f)
}

// Problem is one fault Check found.
type Problem struct {
	Kind string    // "root", "directory", "file", "chunk"
	Name string    // root name or object hash
	Hash hash.Hash // zero for roots
	Err  error
}

func (p Problem) String() string { return fmt.Sprintf("%s %s: %v", p.Kind, p.Name, p.Err) }

// CheckReport counts what Check looked at and lists what is broken.
type CheckReport struct {
	Roots, Dirs, Files, Chunks int64
	DataChecked                bool
	Problems                   []Problem
}

// CheckProgress is told the phase, items done and the phase's total.
type CheckProgress func(phase string, done, total int64)

// Check verifies the store's structure: every root's top listing, every
// listing (decoded and matched to its hash) and every file's chunk list,
// and that everything they name is present. With readData it also
// rehydrates every chunk and verifies it against its hash, and re-hashes
// every multi-chunk file. It works by table scans, so memory stays small
// whatever the store's size. A nil error with problems means the check ran
// and found faults.
func (s *Store) Check(ctx context.Context, readData bool, progress CheckProgress) (*CheckReport, error) {
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	rep := &CheckReport{DataChecked: readData}
	c, err := s.pool.take(ctx)
	if err != nil {
		return nil, err
	}
	defer s.pool.put(c)
	// The scans are long: let cancellation interrupt them.
	c.SetInterrupt(ctx.Done())
	defer c.SetInterrupt(nil)
	count := func(table string) int64 {
		var n int64
		sqlitex.Execute(c, `SELECT count(*) FROM `+table, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error { n = st.ColumnInt64(0); return nil }})
		return n
	}
	add := func(kind, name string, h hash.Hash, err error) {
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Name: name, Hash: h, Err: err})
	}
	has := func(table string, h hash.Hash) bool {
		ok, err := rowExists(c, `SELECT 1 FROM `+table+` WHERE hash = ?`, h)
		return err == nil && ok
	}

	// Roots: top entry decodes and its listing is present.
	roots, err := s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range roots {
		rep.Roots++
		switch {
		case r.Damaged != nil:
			add("root", r.ID(), hash.Zero, r.Damaged)
		case !has("dirs", r.Top.Hash):
			add("root", r.ID(), hash.Zero, fmt.Errorf("top directory %s is missing", r.Top.Hash))
		}
	}

	// Listings: decode, verify, and check that children are present.
	total := count("dirs")
	err = sqlitex.Execute(c, `SELECT hash, data FROM dirs`, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Dirs++
		progress("directories", rep.Dirs, total)
		h, blob := columnHash(st, 0), columnCopy(st, 1)
		d, err := s.decodeListing(ctx, h, blob, MaxChainDepth)
		if err != nil {
			add("directory", h.String(), h, err)
			return nil
		}
		for i := range d.Entries {
			e := &d.Entries[i]
			switch e.Type {
			case tree.TypeDir:
				if !has("dirs", e.Hash) {
					add("directory", h.String(), h, fmt.Errorf("entry %q: directory %s is missing", e.Name, e.Hash))
				}
			case tree.TypeFile:
				if err := checkListed(c, ListedEntry(d, e)); err != nil {
					add("directory", h.String(), h, fmt.Errorf("entry %q: %w", e.Name, err))
				}
			}
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("check directories: %w", err)
	}

	// Files: chunk lists decode and name present chunks.
	total = count("files")
	var multi []hash.Hash
	err = sqlitex.Execute(c, `SELECT hash, size, chunks FROM files`, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Files++
		progress("files", rep.Files, total)
		h, size := columnHash(st, 0), st.ColumnInt64(1)
		l, err := tree.DecodeChunkList(columnCopy(st, 2), size)
		if err != nil {
			add("file", h.String(), h, err)
			return nil
		}
		if len(l.Chunks) == 1 && l.Chunks[0].Hash != h {
			add("file", h.String(), h, fmt.Errorf("one-chunk file names chunk %s", l.Chunks[0].Hash))
		}
		if size == 0 && h != hash.Sum(nil) {
			add("file", h.String(), h, fmt.Errorf("empty file with a non-empty hash"))
		}
		for _, ch := range l.Chunks {
			if !has("chunks", ch.Hash) {
				add("file", h.String(), h, fmt.Errorf("chunk %s is missing", ch.Hash))
			}
		}
		if readData && len(l.Chunks) > 1 {
			multi = append(multi, h)
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("check files: %w", err)
	}

	// Chunks: metadata always; content with readData.
	total = count("chunks")
	cols := `c.hash, c.size, c.codec, c.dict, c.ref, c.depth, c.stored, length(d.data), r.depth`
	if readData {
		cols += `, d.data`
	}
	q := `SELECT ` + cols + ` FROM chunks c LEFT JOIN chunk_data d ON d.id = c.data_id LEFT JOIN chunks r ON r.hash = c.ref`
	err = sqlitex.Execute(c, q, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Chunks++
		progress("chunks", rep.Chunks, total)
		info := ChunkInfo{Hash: columnHash(st, 0)}
		h := info.Hash
		if err := scanInfo(st, &info, 1); err != nil {
			add("chunk", h.String(), h, err)
			return nil
		}
		if err := checkChain(info, st.ColumnType(8) == sqlite.TypeNull, st.ColumnInt(8)); err != nil {
			add("chunk", h.String(), h, err)
			return nil
		}
		switch {
		case st.ColumnType(7) == sqlite.TypeNull:
			add("chunk", h.String(), h, fmt.Errorf("stored bytes are missing"))
			return nil
		case st.ColumnInt(7) != info.Stored:
			add("chunk", h.String(), h, fmt.Errorf("%d stored bytes, record says %d", st.ColumnInt64(7), info.Stored))
			return nil
		}
		if info.Codec.HasRef() {
			if readData {
				if _, err := s.readChunk(ctx, h, MaxChainDepth); err != nil {
					add("chunk", h.String(), h, err)
				}
			}
			return nil
		}
		y, err := s.hydratorByID(ctx, info.Dict)
		if err != nil {
			add("chunk", h.String(), h, err)
			return nil
		}
		if readData {
			if _, err := y.Hydrate(h, info.Codec, info.Size, columnCopy(st, 9)); err != nil {
				add("chunk", h.String(), h, err)
			}
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("check chunks: %w", err)
	}
	// Dependant counts, which guard references against deletion.
	err = sqlitex.Execute(c, `SELECT c.hash, c.deps, coalesce(r.n, 0) FROM chunks c
		LEFT JOIN (SELECT ref, count(*) AS n FROM chunks WHERE ref IS NOT NULL GROUP BY ref) r ON r.ref = c.hash
		WHERE c.deps != coalesce(r.n, 0)`, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		h := columnHash(st, 0)
		add("chunk", h.String(), h, fmt.Errorf("records %d dependants, has %d", st.ColumnInt64(1), st.ColumnInt64(2)))
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("check chunk references: %w", err)
	}

	// Multi-chunk files: the chunks together must hash to the file.
	for i, h := range multi {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress("file contents", int64(i+1), int64(len(multi)))
		if err := s.verifyFile(ctx, h); err != nil {
			add("file", h.String(), h, err)
		}
	}
	return rep, nil
}

// checkChain checks a chunk's reference fields; refMissing and refDepth
// describe the row its ref names.
func checkChain(info ChunkInfo, refMissing bool, refDepth int) error {
	switch {
	case !info.Codec.HasRef() && (!info.Ref.IsZero() || info.Depth != 0):
		return fmt.Errorf("%w: codec %d with a reference chain", ErrCorrupt, info.Codec)
	case !info.Codec.HasRef():
		return nil
	case info.Ref.IsZero():
		return fmt.Errorf("%w: delta chunk without a reference", ErrCorrupt)
	case refMissing:
		return fmt.Errorf("%w: reference %s is missing", ErrCorrupt, info.Ref)
	case refDepth >= info.Depth || info.Depth > MaxChainDepth:
		return fmt.Errorf("%w: depth %d, its reference's %d", ErrCorrupt, info.Depth, refDepth)
	}
	return nil
}

// verifyFile re-hashes a file's content from its chunks.
func (s *Store) verifyFile(ctx context.Context, h hash.Hash) error {
	f, err := s.readFile(ctx, h)
	if err != nil {
		return err
	}
	sum := hash.New()
	for _, ch := range f.List.Chunks {
		b, err := s.Chunk(ctx, ch.Hash)
		if err != nil {
			return err
		}
		sum.Write(b)
	}
	if hash.FromDigest(sum.Sum(nil)) != h {
		return fmt.Errorf("%w: content does not match the file's hash", ErrCorrupt)
	}
	return nil
}

func columnCopy(st *sqlite.Stmt, col int) []byte {
	b := make([]byte, st.ColumnLen(col))
	st.ColumnBytes(col, b)
	return b
}

func columnHash(st *sqlite.Stmt, col int) hash.Hash {
	h, _ := hash.FromBytes(columnCopy(st, col))
	return h
}
