package store

import (
	"context"
	"errors"
	"fmt"

	"zombiezen.com/go/sqlite"
)

// connPool is a fixed set of read connections. Unlike sqlitex.Pool it binds
// no interrupt to each take: sqlitex.Pool starts (and then stops, with a
// handshake) a goroutine per Take to watch the context, which cost two
// context switches per chunk read. Reads here are single short queries;
// callers check the context around them, and long scans bind an interrupt
// themselves (see Check).
type connPool struct {
	free chan *sqlite.Conn
	all  []*sqlite.Conn
}

var errPoolClosed = errors.New("store closed")

func newConnPool(path string, flags sqlite.OpenFlags, n int, prepare func(*sqlite.Conn) error) (*connPool, error) {
	p := &connPool{free: make(chan *sqlite.Conn, n)}
	for range n {
		c, err := sqlite.OpenConn(path, flags)
		if err == nil {
			if err = prepare(c); err != nil {
				c.Close()
			}
		}
		if err != nil {
			p.close() // every connection opened so far is free
			return nil, err
		}
		p.all = append(p.all, c)
		p.free <- c
	}
	return p, nil
}

// take waits for a free connection.
func (p *connPool) take(ctx context.Context) (*sqlite.Conn, error) {
	select {
	case c, ok := <-p.free:
		if !ok {
			return nil, errPoolClosed
		}
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a store connection: %w", ctx.Err())
	}
}

// put returns a connection taken with take.
func (p *connPool) put(c *sqlite.Conn) { p.free <- c }

// close waits until every connection is back (reads in flight, such as a
// reader's prefetch, finish first), closes them, and makes later takes
// fail with errPoolClosed.
func (p *connPool) close() error {
	var first error
	for range p.all {
		if err := (<-p.free).Close(); err != nil && first == nil {
			first = err
		}
	}
	p.all = nil
	close(p.free)
	return first
}
