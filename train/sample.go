package train

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
	"github.com/spraydryfs/spraydryfs/backend/walk"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// DefaultSampleBytes bounds the sample data Train works on: 100 times the
// default dictionary size, zstd's guidance.
const DefaultSampleBytes = 100 * DefaultSize

// Collect draws samples from sources: chunks cut with the store's chunker,
// each distinct chunk taken when its content hash falls below a threshold
// set so that about sampleBytes are taken in all. Selection by hash keeps
// memory bounded by sampleBytes, spreads samples evenly over any amount of
// input, and is deterministic. progress, if set, is told bytes scanned and
// the total.
func Collect(ctx context.Context, s *store.Store, sources []ingest.Source, sampleBytes int64, progress func(done, total int64)) ([][]byte, error) {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	c := &collector{s: s, seen: map[hash.Hash]bool{}, progress: progress}
	for _, src := range sources {
		n, err := c.size(ctx, src)
		if err != nil {
			return nil, err
		}
		c.total += n
	}
	if c.total == 0 {
		return nil, fmt.Errorf("%w: the sources hold no file data", ErrTooLittleData)
	}
	rate := math.Min(1, float64(sampleBytes)/float64(c.total))
	c.limit = uint64(rate * math.MaxUint64)
	if rate >= 1 {
		c.limit = math.MaxUint64
	}
	for _, src := range sources {
		var err error
		if src.Ref != nil {
			err = c.fromRoot(ctx, *src.Ref)
		} else {
			err = c.fromDir(ctx, src.Dir)
		}
		if err != nil {
			return nil, err
		}
	}
	return c.samples, nil
}

type collector struct {
	s        *store.Store
	limit    uint64
	seen     map[hash.Hash]bool
	samples  [][]byte
	total    int64
	done     int64
	progress func(done, total int64)
	walker   *walk.Walker // of root sources, made on first use
}

// take keeps chunk c (content address h) if it is selected and new.
func (c *collector) take(h hash.Hash, data func() ([]byte, error)) error {
	if binary.BigEndian.Uint64(h[1:9]) > c.limit || c.seen[h] {
		return nil
	}
	b, err := data()
	if err != nil {
		return err
	}
	c.seen[h] = true
	c.samples = append(c.samples, b)
	return nil
}

// size returns the logical bytes a source holds.
func (c *collector) size(ctx context.Context, src ingest.Source) (int64, error) {
	if src.Ref != nil {
		e, err := c.entry(ctx, *src.Ref)
		if err != nil {
			return 0, err
		}
		d, err := c.s.Dir(ctx, e.Hash)
		if err != nil {
			return 0, err
		}
		return int64(d.Bytes), nil
	}
	var n int64
	err := filepath.WalkDir(src.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("train %s: %w", p, err)
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return ctx.Err()
	})
	return n, err
}

// fromDir cuts every file below dir in name order.
func (c *collector) fromDir(ctx context.Context, dir string) error {
	ck, err := chunk.NewChunker(c.s.Params())
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("train %s: %w", p, err)
		}
		if !d.Type().IsRegular() {
			return ctx.Err()
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("train %s: %w", p, err)
		}
		defer f.Close()
		ck.Reset(f)
		for {
			b, err := ck.Next()
			if err == io.EOF {
				return ctx.Err()
			}
			if err != nil {
				return fmt.Errorf("train %s: %w", p, err)
			}
			c.done += int64(len(b))
			c.progress(c.done, c.total)
			if err := c.take(hash.Sum(b), func() ([]byte, error) { return append([]byte(nil), b...), nil }); err != nil {
				return err
			}
		}
	})
}

// entry resolves a root source to its directory entry.
func (c *collector) entry(ctx context.Context, ref store.Ref) (tree.Entry, error) {
	r, err := c.s.Root(ctx, ref.Name, ref.Version)
	if err != nil {
		return tree.Entry{}, err
	}
	e := r.Top
	for _, part := range strings.Split(ref.Path, "/") {
		if part == "" {
			continue
		}
		d, err := c.s.Dir(ctx, e.Hash)
		if err != nil {
			return e, err
		}
		x, ok := d.Lookup(part)
		if !ok || x.Type != tree.TypeDir {
			return e, fmt.Errorf("root:%s: no directory %q", ref, part)
		}
		e = *x
	}
	return e, nil
}

// fromRoot takes stored chunks of a root or subtree, reading only those
// selected.
func (c *collector) fromRoot(ctx context.Context, ref store.Ref) error {
	e, err := c.entry(ctx, ref)
	if err != nil {
		return fmt.Errorf("root:%s: %w", ref, err)
	}
	return c.walk(ctx, e.Hash)
}

// walk takes the chunks below listing dir; files and chunks that an
// earlier root source shared are visited once.
func (c *collector) walk(ctx context.Context, dir hash.Hash) error {
	if c.walker == nil {
		c.walker = walk.New(c.s.Objects, walk.Visitor{
			File: func(_ *tree.Entry, f *store.File) error {
				c.done += f.Size
				c.progress(c.done, c.total)
				return nil
			},
			Chunk: func(ch tree.ChunkRef) error {
				return c.take(ch.Hash, func() ([]byte, error) { return c.s.Chunk(ctx, ch.Hash) })
			},
		})
	}
	return c.walker.Tree(ctx, dir)
}
