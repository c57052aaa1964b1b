package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/bucket"
	"github.com/spraydryfs/spraydryfs/backend/cache"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/push"
)

// readStore is what the reading commands read: the objects of a store
// file, of a layout directory or of a layout at an http(s) URL.
type readStore struct {
	*store.Objects
	// file is the SQLite store when -s names one, else nil.
	file *store.Store
	// cache is the local cache in front of a remote store, else nil.
	cache *cache.Cache
	where string
	close func() error
}

// Close releases the store.
func (r *readStore) Close() error { return r.close() }

// openReader opens what -s names for reading: an http(s):// URL or a
// directory is a published layout, anything else a store file. Write
// commands use open.
func (g *globals) openReader() (*readStore, error) { return g.openReaderAt(g.storePath) }

// openReaderAt opens store p for reading, as openReader does -s.
func (g *globals) openReaderAt(p string) (*readStore, error) {
	switch {
	case p == "":
		return nil, usageError{errors.New("no store given: use -s/--store PATH or URL, or set SPRAYDRYFS_STORE")}
	case remote.IsURL(p):
		h, err := remote.NewHTTP(p, remote.Options{Log: g.log})
		if err != nil {
			return nil, usageError{err}
		}
		return g.layoutReader(h, h.String(), true, h.Close)
	case bucket.IsURL(p):
		b, err := bucket.Open(context.Background(), p, bucket.Options{Options: remote.Options{Log: g.log}})
		if err != nil {
			return nil, usageError{err}
		}
		return g.layoutReader(b, b.String(), true, func() error { return nil })
	case layout.IsDir(p):
		return g.layoutReader(layout.NewDir(p), p, false, func() error { return nil })
	}
	s, err := g.openFile(p, false)
	if err != nil {
		return nil, err
	}
	if have, want, old := s.Outdated(); old {
		g.log.Warn("the store has an older schema; any command that writes to it (gc, ingest, rm) migrates it, and its lookups get faster",
			"store", s.Path(), "schema", have, "current", want)
	}
	return &readStore{Objects: s.Objects, file: s, where: s.Path(), close: s.Close}, nil
}

// layoutReader reads the layout f fetches, named where; a remote one
// (refetches: its objects may pass through caches that damage them) is
// read ahead, and read through the local cache unless --no-cache.
func (g *globals) layoutReader(f layout.Fetcher, where string, refetches bool, closer func() error) (*readStore, error) {
	var c *cache.Cache
	if refetches && !g.remote.NoCache {
		var err error
		if c, f, err = g.openCache(f, where); err != nil {
			closer()
			return nil, err
		}
	}
	src := layout.NewSource(f, layout.SourceOptions{Refetches: refetches, Log: g.log, Trust: g.trust})
	o, err := store.NewObjects(src, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	if refetches { // a remote: read ahead rather than wait a round trip per object
		src.Prefetch(o)
	}
	r := &readStore{Objects: o, where: where, close: closer, cache: c}
	if c != nil {
		r.close = func() error {
			src.Flush()
			c.Close()
			return closer()
		}
	}
	return r, nil
}

// openCache puts the local cache (--cache-dir, --cache-size) in front of
// remote f, named where. Without --cache-dir, a default directory that
// cannot be had costs only a warning: the remote is read without a cache.
func (g *globals) openCache(f layout.Fetcher, where string) (*cache.Cache, layout.Fetcher, error) {
	dir, explicit := g.remote.CacheDir, g.remote.CacheDir != ""
	var err error
	if !explicit {
		dir, err = cache.DefaultDir()
	}
	if err == nil {
		var c *cache.Cache
		if c, err = cache.Open(dir, cache.Options{Size: g.remote.CacheSize, Log: g.log}); err == nil {
			r := c.Wrap(f, where)
			g.log.Debug("local cache", "dir", dir, "remote", where, "index", r.IndexPath())
			return c, r, nil
		}
	}
	if explicit {
		return nil, nil, fmt.Errorf("--cache-dir %s: %w", dir, err)
	}
	g.log.Warn("reading the remote without a local cache", "err", err)
	return nil, f, nil
}

// openTarget opens dest, where push and pull write: s3://BUCKET/PREFIX
// is a layout in a bucket, an existing directory a layout, an existing
// file a store file; a new path is a
// store file if it ends in .sdfs or newStore is set, else a layout
// directory.
func (g *globals) openTarget(dest string, newStore bool) (t layout.Target, where string, closer func() error, err error) {
	if bucket.IsURL(dest) {
		b, err := bucket.Open(context.Background(), dest, bucket.Options{Options: remote.Options{Log: g.log}})
		if err != nil {
			return nil, "", nil, usageError{err}
		}
		return b, b.String(), func() error { return nil }, nil
	}
	if remote.IsURL(dest) || dest == "" {
		return nil, "", nil, usageError{fmt.Errorf("cannot write to %q: give a directory, a store file or s3://BUCKET/PREFIX (serve a directory with any web server to publish over HTTP)", dest)}
	}
	st, err := os.Stat(dest)
	isStore := err == nil && !st.IsDir() || err != nil && (newStore || strings.HasSuffix(dest, ".sdfs"))
	if !isStore {
		return layout.NewDir(dest), dest, func() error { return nil }, nil
	}
	s, err := g.openFile(dest, true)
	if err != nil {
		return nil, "", nil, err
	}
	tgt := push.NewStoreTarget(s, "")
	return tgt, s.Path(), func() error {
		err := tgt.Close()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}

// checkLayout checks a published layout by walking every root: each
// listing, chunk list, chunk and dictionary fetched, decoded and verified
// (a layout has no cheaper structural check, so --read-data changes
// nothing). It stops at the first fault.
func checkLayout(ctx context.Context, r *readStore) error {
	roots, err := r.Roots(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := push.Verify(ctx, r.Objects, roots, push.Options{})
	if err != nil {
		return fmt.Errorf("check %s: %w", r.where, err)
	}
	fmt.Printf("checked structure and data: %d roots, %d objects in %.1fs: OK\n", len(roots), rep.Objects, time.Since(start).Seconds())
	return nil
}
