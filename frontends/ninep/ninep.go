// Package ninep serves backend views over 9P2000.L
// (github.com/hugelgupf/p9), the protocol virtual machines mount with the
// Linux v9fs client:
//
//	mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,aname=NAME@VERSION,ro,cache=loose,msize=1048576 HOST /mnt
//
// Everything is read-only: every call that would change the tree answers
// EROFS. QID paths are the view's stable inode numbers. The attach name
// (aname) picks the tree: empty for the server's default view, NAME for
// that name's versions, NAME@VERSION or NAME@VERSION/sub/dir for one root
// or a directory inside it.
//
// The package is a thin adapter; it works around three faults of p9
// v0.4.1 in its own code: directory entries carry DT_* types, not QID type
// bits (see direntType); mutating calls answer EROFS, not ENOSYS; and the
// server's reply to an xattr lookup is corrected on the wire (see wire.go),
// because p9 turns every GetXattr error into EINVAL.
package ninep

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// Options configure a Server.
type Options struct {
	// Log receives errors (corrupt chunks, failed connections); nil means
	// slog.Default().
	Log *slog.Logger
	// MaxFids bounds the fids one connection holds (walks and attaches
	// beyond it fail with EMFILE); 0 means DefaultMaxFids.
	MaxFids int
	// MaxListed bounds the directory entries one connection's open
	// directories keep between reads; 0 means DefaultMaxListed.
	MaxListed int
	// Report receives requests by errno, bytes read, corruption and open
	// fids; nil reports nothing.
	Report report.Reporter
}

// Server serves a store over 9P2000.L. It is safe for concurrent use:
// any number of connections, each with any number of attaches.
type Server struct {
	s         *store.Objects
	def       *backend.View
	log       *slog.Logger
	maxFids   int
	maxListed int
	rep       report.Reporter

	ctx    context.Context // backend calls; cancelled when Serve stops
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[*wire]struct{}
	wg    sync.WaitGroup
}

// New returns a server of store s whose empty attach name means view def
// (typically backend.OpenNamespace(s), or the tree given on the command
// line, from backend.OpenSpec); def is also the limit of what any attach
// name can reach.
func New(s *store.Objects, def *backend.View, opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxFids <= 0 {
		opt.MaxFids = DefaultMaxFids
	}
	if opt.MaxListed <= 0 {
		opt.MaxListed = DefaultMaxListed
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{s: s, def: def, log: opt.Log, maxFids: opt.MaxFids, maxListed: opt.MaxListed, rep: report.Or(opt.Report), ctx: ctx, cancel: cancel,
		conns: make(map[*wire]struct{})}
}

// Serve accepts connections on ln and serves each until ctx is done; it
// then closes ln and every connection, waits for their handlers and
// returns nil. Other accept errors are returned.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		srv.Close()
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			srv.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("9p: accept: %w", err)
		}
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			srv.ServeConn(c)
		}()
	}
}

// ServeConn serves one connection until the client hangs up or the server
// is closed, and closes it.
func (srv *Server) ServeConn(c net.Conn) {
	fids := &fidCount{max: int64(srv.maxFids), maxListed: int64(srv.maxListed), rep: srv.rep}
	w := newWire(c, fids)
	srv.mu.Lock()
	if srv.conns == nil { // closed
		srv.mu.Unlock()
		w.Close()
		return
	}
	srv.conns[w] = struct{}{}
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.conns, w)
		srv.mu.Unlock()
	}()
	// One p9 server per connection: the attacher then never needs the
	// connection, and the wire shim's aname rewriting and the fid count
	// are per connection.
	ps := p9.NewServer(attacher{srv, fids})
	if err := ps.Handle(w, w); err != nil {
		srv.log.Error("9p: connection failed", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// Close ends every connection and fails requests in flight; Serve does it
// when its context is done.
func (srv *Server) Close() error {
	srv.cancel()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		c.Close()
	}
	srv.conns = nil
	return nil
}

// attacher gives p9 the attach point of every attach; the wire shim has
// turned the client's aname into one walk step from it (see wire.go).
type attacher struct {
	srv  *Server
	fids *fidCount
}

// Attach implements p9.Attacher.
func (a attacher) Attach() (p9.File, error) {
	f, err := newFile(a.srv, a.fids, a.srv.def, a.srv.def.Root(), true)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// anameMark starts the walk step the wire shim makes of an aname: no Linux
// path component can contain NUL, so it cannot clash with a real name.
const anameMark = "\x00"

// openAname opens the view an attach name selects within the server's
// view (backend.OpenWithin): "" that view; NAME, NAME@VERSION or
// NAME@VERSION/sub/dir inside it. Malformed names (including ., .. and
// empty components) fail with EINVAL, unknown ones with ENOENT, and names
// outside the server's view with EACCES.
func (srv *Server) openAname(aname string) (*backend.View, error) {
	v, err := backend.OpenWithin(srv.ctx, srv.def, strings.Trim(aname, "/"))
	if err != nil {
		return nil, srv.errno("attach", aname, err)
	}
	return v, nil
}

// errno maps a backend error to the errno the client gets, logging what
// it will only see as EIO (corruption names the chunk in err).
func (srv *Server) errno(op, name string, err error) linux.Errno {
	e := backend.Errno(err)
	if e == syscall.EIO {
		srv.log.Error("9p: "+op+" failed", "name", name, "err", err)
	}
	report.Failed(srv.rep, err)
	return linuxErrno(e)
}
