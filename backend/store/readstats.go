package store

import (
	"sync/atomic"
	"time"
)

// DecodeBuckets are the upper bounds of the buckets ReadStats counts chunk
// reads in: the time from asking the source for a chunk to having it
// decoded and verified (reference chains included).
var DecodeBuckets = [...]time.Duration{
	10 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second,
}

// ReadStats are what an Objects has done since it was made: cache hits
// and misses, and the time chunk reads took.
type ReadStats struct {
	// Cache hits and misses of decoded chunks, listings and chunk lists
	// (a caller that joins a load in flight counts as a hit).
	ChunkHits, ChunkMisses int64
	DirHits, DirMisses     int64
	FileHits, FileMisses   int64
	// Decodes counts chunk reads by DecodeBuckets: Decodes[i] those that
	// took at most DecodeBuckets[i] and more than the bound before;
	// the last, those beyond every bound. DecodeTime is their total.
	Decodes    []int64
	DecodeTime time.Duration
}

// objStats are the counters behind ReadStats.
type objStats struct {
	chunks, chunkMisses atomic.Int64
	dirs, dirMisses     atomic.Int64
	files, fileMisses   atomic.Int64
	decodes             [len(DecodeBuckets) + 1]atomic.Int64
	decodeTime          atomic.Int64
}

// decoded counts a chunk read that took d.
func (s *objStats) decoded(d time.Duration) {
	i := 0
	for i < len(DecodeBuckets) && d > DecodeBuckets[i] {
		i++
	}
	s.decodes[i].Add(1)
	s.decodeTime.Add(int64(d))
}

// ReadStats returns the counts so far.
func (o *Objects) ReadStats() ReadStats {
	s := &o.stats
	st := ReadStats{
		ChunkMisses: s.chunkMisses.Load(), DirMisses: s.dirMisses.Load(), FileMisses: s.fileMisses.Load(),
		Decodes: make([]int64, len(s.decodes)), DecodeTime: time.Duration(s.decodeTime.Load()),
	}
	st.ChunkHits = s.chunks.Load() - st.ChunkMisses
	st.DirHits = s.dirs.Load() - st.DirMisses
	st.FileHits = s.files.Load() - st.FileMisses
	for i := range s.decodes {
		st.Decodes[i] = s.decodes[i].Load()
	}
	return st
}
