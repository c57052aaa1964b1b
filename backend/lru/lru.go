// Package lru is a least-recently-used cache bounded by the bytes its values
// occupy, with coalesced loading: concurrent misses on one key run one load.
package lru

import (
	"container/list"
	"context"
	"sync"

	"github.com/spraydryfs/spraydryfs/backend/flight"
)

// Cache maps K to V within a byte budget. It is safe for concurrent use.
// Values are shared between callers and must not be modified.
type Cache[K comparable, V any] struct {
	mu       sync.Mutex
	max      int64
	used     int64
	order    list.List // front: most recent; values are *item[K, V]
	items    map[K]*list.Element
	inflight flight.Group[K, V]
}

type item[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

// New returns a cache holding at most max bytes of values.
func New[K comparable, V any](max int64) *Cache[K, V] {
	return &Cache[K, V]{max: max, items: map[K]*list.Element{}}
}

// Get returns the cached value for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*item[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Load returns the value for k, calling load on a miss. load returns the
// value and its size in bytes; errors are not cached. Concurrent Loads of
// one key wait for a single call of load, made with the first caller's
// ctx (load uses it); see package flight for the other callers' contexts.
func (c *Cache[K, V]) Load(ctx context.Context, k K, load func() (V, int64, error)) (V, error) {
	if v, ok := c.Get(k); ok {
		return v, nil
	}
	return c.inflight.Do(ctx, k, func() (V, error) {
		if v, ok := c.Get(k); ok { // loaded while this caller looked
			return v, nil
		}
		v, size, err := load()
		if err == nil {
			c.Put(k, v, size)
		}
		return v, err
	})
}

// Put inserts or replaces the value for k.
func (c *Cache[K, V]) Put(k K, v V, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(k, v, size)
}

// add inserts under c.mu and evicts from the back until within budget.
func (c *Cache[K, V]) add(k K, v V, size int64) {
	if size > c.max {
		return // larger than the whole cache: serve it, do not keep it
	}
	if e, ok := c.items[k]; ok {
		old := e.Value.(*item[K, V])
		c.used += size - old.size
		old.val, old.size = v, size
		c.order.MoveToFront(e)
	} else {
		c.items[k] = c.order.PushFront(&item[K, V]{key: k, val: v, size: size})
		c.used += size
	}
	for c.used > c.max {
		e := c.order.Back()
		it := e.Value.(*item[K, V])
		c.order.Remove(e)
		delete(c.items, it.key)
		c.used -= it.size
	}
}

// Remove drops the value for k.
func (c *Cache[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.Remove(e)
		delete(c.items, k)
		c.used -= e.Value.(*item[K, V]).size
	}
}

// Used returns the bytes held.
func (c *Cache[K, V]) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Purge drops every entry.
func (c *Cache[K, V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = map[K]*list.Element{}
	c.order.Init()
	c.used = 0
}
