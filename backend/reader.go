package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// Reader reads a stored file's content. ReadAt is safe for concurrent use;
// Read and Seek share one offset and are not.
type Reader struct {
	s     *store.Objects
	f     *store.File
	off   int64
	stale func(context.Context, error) error // maps errors of a removed root's file to ErrStale

	// next is the offset just past the last read; a read starting there is
	// sequential and makes the reader decode the following chunk ahead.
	next       atomic.Int64
	prefetched atomic.Int64 // chunks below this index have been prefetched
}

// readAhead is how many chunks (about 512 KiB) a sequential reader has
// decoded ahead by the store's prefetch workers, one per core, so that one
// stream keeps every core decoding and verifying.
const readAhead = 8

// Size returns the content length.
func (r *Reader) Size() int64 { return r.f.Size }

// Hash returns the content address.
func (r *Reader) Hash() hash.Hash { return r.f.Hash }

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	return r.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext reads len(p) bytes at off, finding the first chunk by
// binary search and serving chunks from the store's cache. A chunk that
// fails verification fails the read with an error wrapping ErrCorrupt (or
// ErrStale, if its root was removed and collected); no byte of it is
// returned.
func (r *Reader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	l := r.f.List
	n := 0
	sequential := r.next.Swap(off+int64(len(p))) == off
	i := l.Find(off)
	for ; n < len(p) && i < len(l.Chunks); i++ {
		data, err := r.chunk(ctx, i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[off+int64(n)-l.Start(i):])
	}
	if sequential {
		r.prefetch(i)
	} else {
		r.prefetched.Store(int64(i)) // a jump: read ahead from here next time
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunk returns chunk i of the file, verified, with the size its list
// gives it: a list that says otherwise is corrupt (it is only sealed, not
// verified, until the whole content is read).
func (r *Reader) chunk(ctx context.Context, i int) ([]byte, error) {
	c := r.f.List.Chunks[i]
	data, err := r.s.Chunk(ctx, c.Hash)
	if err == nil && len(data) != int(c.Size) {
		err = fmt.Errorf("%w: file %s: chunk %s has %d bytes, its list says %d", store.ErrCorrupt, r.f.Hash, c.Hash, len(data), c.Size)
	}
	if err != nil && r.stale != nil {
		err = r.stale(ctx, err)
	}
	return data, err
}

// prefetch has chunks i … i+readAhead-1 decoded in the background, each
// once, so that a sequential reader finds them in the cache. Errors are
// left for the real read.
func (r *Reader) prefetch(i int) {
	l := r.f.List
	end := int64(min(i+readAhead, len(l.Chunks)))
	for {
		from := r.prefetched.Load()
		if from >= end {
			return
		}
		if r.prefetched.CompareAndSwap(from, end) {
			for j := max(from, int64(i)); j < end; j++ {
				r.s.PrefetchChunk(l.Chunks[j].Hash)
			}
			return
		}
	}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.f.Size {
		return 0, io.EOF
	}
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.f.Size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.off = offset
	return offset, nil
}

// WriteTo streams the whole remaining content to w, chunk by chunk.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	return r.WriteToContext(context.Background(), w)
}

// WriteToContext is WriteTo with a context.
func (r *Reader) WriteToContext(ctx context.Context, w io.Writer) (int64, error) {
	l := r.f.List
	var total int64
	for i := l.Find(r.off); i < len(l.Chunks); i++ {
		r.prefetch(i + 1)
		data, err := r.chunk(ctx, i)
		if err != nil {
			return total, err
		}
		n, err := w.Write(data[r.off-l.Start(i):])
		total += int64(n)
		r.off += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

var (
	_ io.ReaderAt   = (*Reader)(nil)
	_ io.ReadSeeker = (*Reader)(nil)
	_ io.WriterTo   = (*Reader)(nil)
)
