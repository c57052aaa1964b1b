package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/cache"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// objectsOnly is a remote that has one object.
type objectsOnly map[string][]byte

func (o objectsOnly) Fetch(_ context.Context, key string, _ int64, _ bool) ([]byte, error) {
	if b, ok := o[key]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", key, layout.ErrNotFound)
}

// TestDiskCacheMetrics: a server reading a remote through the local
// cache exports the cache's hits, misses, bytes and budget.
func TestDiskCacheMetrics(t *testing.T) {
	c, err := cache.Open(t.TempDir(), cache.Options{Size: 1 << 20, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := layout.Key(layout.Dict, hash.Sum([]byte("d")))
	r := c.Wrap(objectsOnly{key: []byte("dictionary")}, "http://remote.test/")
	ctx := context.Background()
	r.Fetch(ctx, key, 1<<20, false) // a miss
	r.Keep(key, func() []byte { return []byte("dictionary") })
	c.Flush()                       // keeping is written in the background
	r.Fetch(ctx, key, 1<<20, false) // a hit
	o, err := store.NewObjects(layout.NewSource(r, layout.SourceOptions{}), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(&readStore{Objects: o, cache: c})
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			name := f.GetName()
			for _, l := range mt.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case mt.GetCounter() != nil:
				got[name] = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				got[name] = mt.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"spraydryfs_cache_hits_total{cache=disk}":               1,
		"spraydryfs_cache_misses_total{cache=disk}":             1,
		"spraydryfs_disk_cache_read_bytes_total{source=cache}":  10,
		"spraydryfs_disk_cache_read_bytes_total{source=remote}": 10,
		"spraydryfs_disk_cache_bytes":                           4096,
		"spraydryfs_disk_cache_limit_bytes":                     1 << 20,
		"spraydryfs_disk_cache_kept_total":                      1,
		"spraydryfs_disk_cache_evicted_total":                   0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
