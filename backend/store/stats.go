package store

import (
	"context"
	"os"
	"strconv"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
)

// Stats summarizes a store.
type Stats struct {
	Roots       int64 `json:"roots"`
	Logical     int64 `json:"logical_bytes"`     // file bytes summed over every root
	ListedFiles int64 `json:"listed_files"`      // distinct files of several chunks (a one-chunk file is its chunk)
	FileBytes   int64 `json:"listed_file_bytes"` // their bytes
	Chunks      int64 `json:"chunks"`
	ChunkBytes  int64 `json:"chunk_bytes"`  // raw bytes of distinct chunks
	ChunkStored int64 `json:"chunk_stored"` // their stored (compressed) bytes
	RawChunks   int64 `json:"raw_chunks"`   // chunks stored uncompressed
	Deltas      int64 `json:"delta_chunks"` // chunks stored against a reference
	Cross       int64 `json:"cross_chunks"` // of which against another file's chunk
	DeltaBytes  int64 `json:"delta_bytes"`  // their raw bytes
	DeltaStored int64 `json:"delta_stored"` // their stored bytes
	DepthSum    int64 `json:"depth_sum"`    // their chain depths, summed
	MaxDepth    int64 `json:"max_depth"`
	Dirs        int64 `json:"dirs"`
	DirBytes    int64 `json:"dir_bytes"`
	ListBytes   int64 `json:"chunk_list_bytes"`
	FileSize    int64 `json:"file_size"` // the store's file(s) on disk
	PageSize    int64 `json:"page_size"`
	Trees       int64 `json:"btrees"` // tables and indexes: each takes at least one page
}

// EmptySize is the least the store file takes, however little it holds:
// the schema page and one page per table and index.
func (s Stats) EmptySize() int64 { return (1 + s.Trees) * s.PageSize }

// Unheld reports distinct chunks that no root holds: the store has chunks
// but no root has content, as after an interrupted first ingest.
func (s Stats) Unheld() bool { return s.Logical == 0 && s.Chunks > 0 }

// MeanDepth is the mean reference chain depth of delta chunks.
func (s Stats) MeanDepth() float64 { return ratio(s.DepthSum, s.Deltas) }

// DedupRatio is logical bytes over distinct chunk bytes.
func (s Stats) DedupRatio() float64 { return ratio(s.Logical, s.ChunkBytes) }

// CompressionRatio is distinct chunk bytes over their stored bytes.
func (s Stats) CompressionRatio() float64 { return ratio(s.ChunkBytes, s.ChunkStored) }

// TotalRatio is logical bytes over the store's size on disk.
func (s Stats) TotalRatio() float64 { return ratio(s.Logical, s.FileSize) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Stats computes the store's summary with aggregate queries.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{}
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		q := []struct {
			sql  string
			dest []*int64
		}{
			{`SELECT count(*), coalesce(sum(bytes), 0) FROM roots`, []*int64{&st.Roots, &st.Logical}},
			{`SELECT count(*), coalesce(sum(size), 0), coalesce(sum(length(chunks)), 0) FROM files`, []*int64{&st.ListedFiles, &st.FileBytes, &st.ListBytes}},
			{`SELECT count(*), coalesce(sum(size), 0), coalesce(sum(stored), 0), coalesce(sum(codec = 0), 0),
				coalesce(sum(depth > 0), 0), coalesce(sum(iif(depth > 0, size, 0)), 0), coalesce(sum(iif(depth > 0, stored, 0)), 0),
				coalesce(sum(depth), 0), coalesce(max(depth), 0), coalesce(sum(codec = ` + strconv.Itoa(int(chunk.Cross)) + `), 0) FROM chunks`,
				[]*int64{&st.Chunks, &st.ChunkBytes, &st.ChunkStored, &st.RawChunks, &st.Deltas, &st.DeltaBytes, &st.DeltaStored, &st.DepthSum, &st.MaxDepth, &st.Cross}},
			{`SELECT count(*), coalesce(sum(length(data)), 0) FROM dirs`, []*int64{&st.Dirs, &st.DirBytes}},
			{`PRAGMA page_size`, []*int64{&st.PageSize}},
			{`SELECT count(*) FROM sqlite_schema WHERE rootpage > 0`, []*int64{&st.Trees}},
		}
		for _, x := range q {
			err := sqlitex.Execute(c, x.sql, &sqlitex.ExecOptions{ResultFunc: func(row *sqlite.Stmt) error {
				for i, d := range x.dest {
					*d = row.ColumnInt64(i)
				}
				return nil
			}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(s.path + suffix); err == nil {
			st.FileSize += fi.Size()
		}
	}
	return st, nil
}
