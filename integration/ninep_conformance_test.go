//go:build linux

package integration

import (
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/ninep"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
	"github.com/spraydryfs/spraydryfs/integration/ninepfuse"
)

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "9p")
		conns[i], err = net.FileConn(f) // a dup of fd
		f.Close()
		if err != nil {
			if i == 1 {
				conns[0].Close()
			}
			return nil, nil, err
		}
	}
	return conns[0], conns[1], nil
}

// mountNineP is the conformance Mounter of the 9P frontend: our ninep
// server on the store, in this process, with the namespace as its default
// view, and the bridge (package ninepfuse) attached with aname which:
// "" the namespace, NAME a name's versions, NAME@VERSION one root, as
// `mount -t 9p -o aname=…` would. Every connection is a socket pair
// served by the server's ServeConn.
func mountNineP(t *testing.T, storePath, which string) (string, func()) {
	t.Helper()
	s, err := store.Open(storePath, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	srv := ninep.New(s.Objects, backend.OpenNamespace(s.Objects), ninep.Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	var served sync.WaitGroup
	dial := func() (net.Conn, error) {
		client, server, err := socketPair()
		if err != nil {
			return nil, err
		}
		served.Add(1)
		go func() {
			defer served.Done()
			srv.ServeConn(server)
		}()
		return client, nil
	}
	stop := func() {
		srv.Close()
		served.Wait()
		// The store stays open, as in frontends/ninep's tests: the
		// backend's read-ahead goroutines are not waited for, and
		// closing the store under them crashes SQLite.
		if l := log.String(); l != "" {
			t.Logf("9P server log (%s):\n%s", which, strings.TrimSpace(l))
		}
	}
	dir := t.TempDir()
	m, err := ninepfuse.New(dir, dial, which)
	if err != nil {
		stop()
		t.Fatalf("bridge mount of %q: %v", which, err)
	}
	return dir, func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		stop()
		if mounted(dir) {
			t.Errorf("%s still mounted", dir)
		}
	}
}

// TestNinePConformance runs the frontend suite against frontends/ninep
// through p9's Go client: a FUSE bridge (package ninepfuse) forwards every
// file-system call the suite makes to the server over a socket pair, so
// find, tar, diff, fstest.TestFS and fixture.Compare read the tree as the
// 9P server serves it, and the writes of the ReadOnly check get the
// server's own answer (the bridge mount is not read-only). The Linux
// v9fs client is TestNinePGuest's; it needs a VM, as this host has no 9p
// module.
func TestNinePConformance(t *testing.T) {
	requireFUSE(t)
	t.Parallel() // a long suite (doc.go)
	conformance.Run(t, conformance.Suite{
		Caps: conformance.Caps{
			// 9P2000.L carries everything the fixture has: types,
			// modes, owners, nanosecond mtimes, link counts, device
			// numbers, symlink targets, stable QID paths (inode numbers,
			// shared by hard links) and xattrs (on the bridge's second
			// connection, see ninepfuse).
			Caps:         fixture.All(),
			StableInodes: true,
			Tools:        true,
			WriteErrno:   syscall.EROFS,
			CorruptErrno: syscall.EIO,
		},
		Mount: mountNineP,
	})
}
