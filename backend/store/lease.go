package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Leases keep garbage collection from deleting what a running ingest may
// rely on. An ingest relies on objects it never writes: chunks and chunk
// lists its claims found stored, listings its writes found present, the
// parent version it dries against and reuses files from, root: sources.
// So an ingest takes an ingest lease before it reads anything, and gives
// it back after its root is committed; Sweep deletes nothing while a live
// ingest lease exists, and before it deletes, it spares everything the
// roots committed since garbage collection's mark need. Leases are rows
// written in write transactions, which SQLite serializes with Sweep's: an
// ingest either started before a sweep transaction (which then sees its
// lease and deletes nothing) or after it (and then never sees what it
// deleted). A lease names its process (pid, start time, boot id): one
// whose process is gone (kill -9, a crash, a reboot) is stale, and the
// next sweep or gc lease drops it, so nothing waits on it.

// Lease kinds.
const (
	LeaseIngest = "ingest"
	LeaseGC     = "gc"
)

// ErrLeased: a live lease stands in the way (an ingest runs, so Sweep
// deletes nothing; or another garbage collection runs).
var ErrLeased = errors.New("leased")

// Lease is a held lease; Release gives it back.
type Lease struct {
	s  *Store
	id int64
}

// LeaseInfo is a lease as stored.
type LeaseInfo struct {
	ID      int64
	Kind    string
	PID     int
	Started time.Time
}

func (l LeaseInfo) String() string {
	return fmt.Sprintf("%s (pid %d, since %s)", l.Kind, l.PID, l.Started.Format(time.DateTime))
}

// AcquireLease records a lease of kind for this process. A gc lease is
// refused with ErrLeased while another live one exists. It must not be
// called while a Writer of s is open (it needs the write connection).
func (s *Store) AcquireLease(kind string) (*Lease, error) {
	if s.wconn == nil {
		return nil, errors.New("store opened read-only")
	}
	me, err := self()
	if err != nil {
		return nil, fmt.Errorf("take %s lease: %w", kind, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	l := &Lease{s: s}
	err = s.leaseTx(func(c *sqlite.Conn, live []LeaseInfo) error {
		if kind == LeaseGC {
			for _, o := range live {
				if o.Kind == LeaseGC {
					return fmt.Errorf("another garbage collection runs: %s: %w", o, ErrLeased)
				}
			}
		}
		if err := exec(c, `INSERT INTO leases(kind, pid, pstart, boot, started) VALUES (?, ?, ?, ?, ?)`,
			kind, int64(me.pid), me.start, me.boot, time.Now().UnixNano()); err != nil {
			return err
		}
		l.id = c.LastInsertRowID()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take %s lease: %w", kind, err)
	}
	return l, nil
}

// Release gives the lease back. It waits for the write connection, so a
// Writer of the store must be closed first.
func (l *Lease) Release() error {
	s := l.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := sqlitex.Execute(s.wconn, `DELETE FROM leases WHERE id = ?`, &sqlitex.ExecOptions{Args: []any{l.id}}); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// leaseTx runs f in an immediate transaction on the write connection
// (the caller holds s.wmu), after dropping stale leases; live lists the
// remaining ones.
func (s *Store) leaseTx(f func(c *sqlite.Conn, live []LeaseInfo) error) (err error) {
	c := s.wconn
	end, err := sqlitex.ImmediateTransaction(c)
	if err != nil {
		return err
	}
	defer end(&err)
	live, err := liveLeases(c)
	if err != nil {
		return err
	}
	return f(c, live)
}

// liveLeases drops stale leases and returns the others.
func liveLeases(c *sqlite.Conn) ([]LeaseInfo, error) {
	var live, stale []LeaseInfo
	err := sqlitex.Execute(c, `SELECT id, kind, pid, pstart, boot, started FROM leases ORDER BY id`, &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error {
			l := LeaseInfo{ID: st.ColumnInt64(0), Kind: st.ColumnText(1), PID: st.ColumnInt(2), Started: time.Unix(0, st.ColumnInt64(5))}
			if alive(l.PID, st.ColumnInt64(3), st.ColumnText(4)) {
				live = append(live, l)
			} else {
				stale = append(stale, l)
			}
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	for _, l := range stale {
		if err := exec(c, `DELETE FROM leases WHERE id = ?`, l.ID); err != nil {
			return nil, fmt.Errorf("drop stale lease: %w", err)
		}
	}
	return live, nil
}

// proc identifies a process across pid reuse and reboots, as far as the
// platform tells (proc_linux.go, proc_other.go).
type proc struct {
	pid   int
	start int64 // Linux: clock ticks after boot (/proc/PID/stat field 22)
	boot  string
}

// sweepTx runs f in an immediate transaction unless a live ingest lease
// exists, in which case it returns ErrLeased naming it.
func (s *Store) sweepTx(ctx context.Context, f func(c *sqlite.Conn) error) error {
	if s.wconn == nil {
		return errors.New("store opened read-only")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.leaseTx(func(c *sqlite.Conn, live []LeaseInfo) error {
		for _, l := range live {
			if l.Kind == LeaseIngest {
				return fmt.Errorf("%s: %w", l, ErrLeased)
			}
		}
		return f(c)
	})
}
