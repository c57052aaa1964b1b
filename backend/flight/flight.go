// Package flight joins concurrent calls for one key into one, keeping
// each caller's context its own: a waiting caller stops when its context
// ends, and one whose wait ended because the calling caller's context did
// makes the call again itself, so no caller fails with another's
// cancellation.
package flight

import (
	"context"
	"sync"
)

// Group joins the calls of each key. The zero Group is ready for use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done     chan struct{}
	val      V
	err      error
	canceled bool // the calling caller's context ended: its error is its own
}

// Do returns the result of fn, which must run with ctx, for key k: of a
// call for k already in flight if there is one, else of calling fn.
func (g *Group[K, V]) Do(ctx context.Context, k K, fn func() (V, error)) (V, error) {
	for {
		g.mu.Lock()
		if c, ok := g.calls[k]; ok {
			g.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
			if c.canceled && ctx.Err() == nil {
				continue
			}
			return c.val, c.err
		}
		if g.calls == nil {
			g.calls = map[K]*call[V]{}
		}
		c := &call[V]{done: make(chan struct{})}
		g.calls[k] = c
		g.mu.Unlock()

		c.val, c.err = fn()
		c.canceled = c.err != nil && ctx.Err() != nil
		g.mu.Lock()
		delete(g.calls, k)
		g.mu.Unlock()
		close(c.done)
		return c.val, c.err
	}
}
