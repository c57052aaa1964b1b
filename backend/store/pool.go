package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"zombiezen.com/go/sqlite"
)

// connPool is a fixed set of read connections. Unlike sqlitex.Pool it binds
// no interrupt to each take: sqlitex.Pool starts (and then stops, with a
// handshake) a goroutine per Take to watch the context, which cost two
// context switches per chunk read. Reads here are single short queries;
// callers check the context around them, and long scans bind an interrupt
// themselves (see Check).
//
// Free connections form a stack: the connection used last is used next, so
// a lone reader keeps hitting one connection's page cache instead of
// spreading its pages over all of them (a cold read of a delta store's
// newest version went from 27 to 40 MB/s).
type connPool struct {
	mu    sync.Mutex
	stack []*sqlite.Conn // free connections, most recently used last
	free  chan struct{}  // one token per free connection; closed by close
	all   []*sqlite.Conn
}

var errPoolClosed = errors.New("store closed")

func newConnPool(n int, open func() (*sqlite.Conn, error)) (*connPool, error) {
	p := &connPool{free: make(chan struct{}, n)}
	for range n {
		c, err := open()
		if err != nil {
			p.close() // every connection opened so far is free
			return nil, err
		}
		p.all = append(p.all, c)
		p.put(c)
	}
	return p, nil
}

// take waits for a free connection.
func (p *connPool) take(ctx context.Context) (*sqlite.Conn, error) {
	select {
	case _, ok := <-p.free:
		if !ok {
			return nil, errPoolClosed
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a store connection: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.stack[len(p.stack)-1]
	p.stack = p.stack[:len(p.stack)-1]
	return c, nil
}

// put returns a connection taken with take.
func (p *connPool) put(c *sqlite.Conn) {
	p.mu.Lock()
	p.stack = append(p.stack, c)
	p.mu.Unlock()
	p.free <- struct{}{}
}

// close waits until every connection is back (reads in flight, such as a
// reader's prefetch, finish first), closes them, and makes later takes
// fail with errPoolClosed.
func (p *connPool) close() error {
	for range p.all {
		<-p.free
	}
	var first error
	for _, c := range p.stack {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	p.stack, p.all = nil, nil
	close(p.free)
	return first
}
