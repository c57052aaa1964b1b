package store

import (
	"context"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// DeltaSavings is what delta chunks save, measured: sampled delta chunks
// are rehydrated and dried again without a reference (zstd at the default
// level, and with the default dictionary if the store has one), and each
// saves what that would store beyond its delta.
type DeltaSavings struct {
	Sampled      int64 // delta chunks measured
	SampledBytes int64 // their raw bytes
	Saved        int64 // over all delta chunks: the sample's saving scaled by raw bytes
}

// DeltaSavings measures what delta chunks save on up to max of them. The
// sample is the first max by hash, which is a uniform one since hashes are;
// with max at least the number of delta chunks the result is exact.
func (s *Store) DeltaSavings(ctx context.Context, max int) (DeltaSavings, error) {
	var (
		ds           DeltaSavings
		total        int64
		hashes       []hash.Hash
		storedByHash = map[hash.Hash]int64{}
	)
	err := s.withRead(ctx, func(c *sqlite.Conn) error {
		err := sqlitex.Execute(c, `SELECT coalesce(sum(size), 0) FROM chunks WHERE depth > 0`,
			&sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error { total = st.ColumnInt64(0); return nil }})
		if err != nil {
			return err
		}
		return sqlitex.Execute(c, `SELECT hash, stored FROM chunks WHERE depth > 0 ORDER BY hash LIMIT ?`, &sqlitex.ExecOptions{
			Args: []any{max},
			ResultFunc: func(st *sqlite.Stmt) error {
				h, err := hash.FromBytes(columnCopy(st, 0))
				if err != nil {
					return fmt.Errorf("%w: chunk with a bad hash: %v", ErrCorrupt, err)
				}
				hashes = append(hashes, h)
				storedByHash[h] = st.ColumnInt64(1)
				return nil
			}})
	})
	if err != nil || len(hashes) == 0 {
		return ds, err
	}
	d, err := s.DefaultDict(ctx)
	if err != nil {
		return ds, err
	}
	var dict []byte
	if d != nil {
		dict = d.Data
	}
	level, _ := chunk.ParseLevel("default")
	dryer, err := chunk.NewDryer(level, dict)
	if err != nil {
		return ds, err
	}
	var buf []byte
	var sum int64
	for _, h := range hashes {
		raw, err := s.Chunk(ctx, h)
		if err != nil {
			return ds, fmt.Errorf("measure delta chunk %s: %w", h, err)
		}
		buf, _, _ = dryer.Dry(buf[:0], raw)
		if alone := int64(len(buf)); alone > storedByHash[h] {
			sum += alone - storedByHash[h]
		}
		ds.Sampled++
		ds.SampledBytes += int64(len(raw))
	}
	ds.Saved = sum
	if ds.SampledBytes > 0 && ds.SampledBytes < total {
		ds.Saved = int64(float64(sum) * float64(total) / float64(ds.SampledBytes))
	}
	return ds, nil
}
