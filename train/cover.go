package train

// This file selects a dictionary's content from samples the way zstd's
// fastCOVER does: count how often each d-byte string ("d-mer") occurs in
// all samples, then walk the samples in epochs and take from each the
// k-byte segment whose d-mers are most frequent, counting each d-mer once
// per segment and forgetting the d-mers of every segment taken, until the
// dictionary is full. The best segments go last, nearest to the data.

const (
	dmer     = 8  // bytes per d-mer
	freqBits = 18 // log2 of the d-mer frequency table size (1 MiB of counters)
	passes   = 4  // each epoch is visited about this many times
)

// dmerHash hashes the d-mer starting at b[0] into freqBits bits.
func dmerHash(b []byte) uint32 {
	v := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	return uint32((v * 0xcf1bbcdcb7a56463) >> (64 - freqBits))
}

// selectContent returns up to size bytes of dictionary content chosen from
// samples with segments of k bytes. It is deterministic.
func selectContent(samples [][]byte, size, k int) []byte {
	// Concatenate the samples and hash every d-mer; positions where no
	// d-mer fits before a sample ends get the slot "none", whose frequency
	// stays zero, so no d-mer spans two samples.
	total := 0
	for _, s := range samples {
		total += len(s)
	}
	data := make([]byte, 0, total)
	hashes := make([]uint32, 0, total)
	freq := make([]uint32, none+1)
	for _, s := range samples {
		data = append(data, s...)
		for i := range s {
			h := uint32(none)
			if i+dmer <= len(s) {
				h = dmerHash(s[i:])
				freq[h]++
			}
			hashes = append(hashes, h)
		}
	}

	epochs := max(1, size/k/passes)
	epochSize := max(len(data)/epochs, k)
	seen := make([]uint16, none+1) // d-mer counts inside the current window
	dict := make([]byte, size)
	tail := size
	for tail > 0 {
		progress := false
		for e := 0; e < epochs && tail > 0; e++ {
			begin := e * epochSize
			end := min(begin+epochSize, len(data))
			seg, score := bestSegment(hashes, freq, seen, begin, end, k)
			if score == 0 {
				continue
			}
			progress = true
			// Forget the segment's d-mers so later segments bring new ones.
			for _, h := range hashes[seg : seg+k-dmer+1] {
				freq[h] = 0
			}
			n := min(k, tail)
			tail -= n
			copy(dict[tail:], data[seg:seg+n])
		}
		if !progress {
			break // the samples have nothing more to give
		}
	}
	return dict[tail:]
}

// none is the frequency slot of positions that start no d-mer.
const none = 1 << freqBits

// bestSegment returns the start of the k-byte segment in [begin, end) whose
// distinct d-mers have the highest total frequency, and that total.
func bestSegment(hashes []uint32, freq []uint32, seen []uint16, begin, end, k int) (int, uint64) {
	if end-begin < k {
		return begin, 0
	}
	var score, bestScore uint64
	best := begin
	last := k - dmer + 1 // d-mers starting in a window of k bytes
	for _, h := range hashes[begin : begin+last] {
		if seen[h] == 0 {
			score += uint64(freq[h])
		}
		seen[h]++
	}
	bestScore = score
	for s := begin + 1; s+k <= end; s++ {
		out, in := hashes[s-1], hashes[s+last-1]
		if seen[out]--; seen[out] == 0 {
			score -= uint64(freq[out])
		}
		if seen[in] == 0 {
			score += uint64(freq[in])
		}
		seen[in]++
		if score > bestScore {
			best, bestScore = s, score
		}
	}
	for _, h := range hashes[end-k : end-k+last] {
		seen[h]-- // leave seen all zero for the next call
	}
	return best, bestScore
}
