package main

import (
	"runtime"
	"testing"
)

// TestMemoryLimitKeepsHeadroom: the servers' soft limit stays at
// serverMemoryLimit while the live heap is small, and rises with a live
// heap that would otherwise leave the collector no room; liveHeap sees
// what is live.
func TestMemoryLimitKeepsHeadroom(t *testing.T) {
	if got := memoryLimitFor(10 << 20); got != serverMemoryLimit {
		t.Errorf("limit for 10 MiB live: %d, want %d", got, serverMemoryLimit)
	}
	big := make([]byte, 256<<20)
	for i := range big {
		big[i] = byte(i)
	}
	runtime.GC()
	live := liveHeap()
	runtime.KeepAlive(big)
	if live < 256<<20 {
		t.Fatalf("live heap %d bytes with 256 MiB held", live)
	}
	if got := memoryLimitFor(live); got < live+memoryHeadroom {
		t.Errorf("limit for %d live: %d, want at least %d more", live, got, memoryHeadroom)
	}
}
