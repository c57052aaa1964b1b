package store

import (
	"context"
	"runtime"
	"sync"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Prefetch queue bounds. A queued job is one chunk (at most the chunker's
// 256 KiB maximum) or one small file, so at most prefetchQueue jobs plus
// one per worker are decoded ahead of readers: 17 MiB on two cores, 20 MiB
// with a remote source's 16 workers, on top of the chunk cache they land
// in.
const (
	prefetchQueue = 64
	// PrefetchFileMax is the largest file prefetched whole ahead of a
	// reader that has not opened it yet.
	PrefetchFileMax = 256 << 10
)

// prefetcher decodes objects ahead of readers on one worker per core (or
// as many as a Parallel source asks for), so that one sequential stream,
// or a walk over small files, keeps every core decoding and verifying. A job that does not fit the queue is dropped:
// the reader loads it itself. Errors are dropped too: a reader that needs
// a damaged chunk loads it again and gets the error, and no other reader
// sees it.
type prefetcher struct {
	once, closed sync.Once
	jobs         chan prefetchJob
	stop         chan struct{}
	wg           sync.WaitGroup
}

type prefetchJob struct {
	h    hash.Hash
	file *Listed // set: h is this file; load its chunk list and its chunks
}

func (o *Objects) startPrefetch() {
	p := &o.pf
	p.jobs, p.stop = make(chan prefetchJob, prefetchQueue), make(chan struct{})
	workers := runtime.GOMAXPROCS(0)
	if par, ok := o.src.(Parallel); ok {
		workers = max(workers, par.Parallelism())
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-p.stop:
					return
				case j := <-p.jobs:
					o.runPrefetch(j)
				}
			}
		}()
	}
}

func (o *Objects) runPrefetch(j prefetchJob) {
	ctx := context.Background()
	if j.file == nil {
		o.Chunk(ctx, j.h)
		return
	}
	f, err := o.ListedFile(ctx, *j.file)
	if err != nil {
		return
	}
	for _, c := range f.List.Chunks {
		if _, err := o.Chunk(ctx, c.Hash); err != nil {
			return
		}
	}
}

// enqueue hands j to the workers unless the queue is full or closed.
func (o *Objects) enqueue(j prefetchJob) {
	p := &o.pf
	p.once.Do(o.startPrefetch)
	select {
	case <-p.stop:
	case p.jobs <- j:
	default:
	}
}

// PrefetchChunk decodes chunk h in the background unless it is cached.
func (o *Objects) PrefetchChunk(h hash.Hash) {
	if _, ok := o.chunks.Get(h); !ok {
		o.enqueue(prefetchJob{h: h})
	}
}

// PrefetchFile loads file l's chunk list (as ListedFile does) and decodes
// its chunks in the background, unless its first chunk is cached already.
func (o *Objects) PrefetchFile(l Listed) {
	h := l.Hash
	if f, ok := o.files.Get(h); ok && len(f.List.Chunks) > 0 {
		if _, ok := o.chunks.Get(f.List.Chunks[0].Hash); ok {
			return
		}
	} else if _, ok := o.chunks.Get(h); ok { // a one-chunk file is its chunk
		return
	}
	o.enqueue(prefetchJob{h: h, file: &l})
}

// Close stops the prefetch workers and waits for them. Reads keep working;
// later prefetches are dropped.
func (o *Objects) Close() {
	p := &o.pf
	p.once.Do(func() { p.stop = make(chan struct{}) })
	p.closed.Do(func() { close(p.stop) })
	p.wg.Wait()
}
