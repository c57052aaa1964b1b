package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/frontends/ninep"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

func newServe9PCommand(g *globals) *cobra.Command {
	var (
		listen  string
		maxFids int
	)
	cmd := &cobra.Command{
		Use:   "9p [NAME[@VERSION[/path]]]",
		Short: "Serve roots read-only over 9P2000.L (for virtual machines)",
		Long: `Serve 9p shares the store read-only over 9P2000.L, the protocol Linux
guests mount with v9fs, until interrupted (Ctrl-C, SIGTERM). It prints the
address it serves on stdout.

The guest's attach name (aname) picks the tree: empty for the default,
which is the root given here or else every root as /<name>/<version>/…
with a 'latest' per name; NAME for that name's versions; NAME@VERSION or
NAME@VERSION/sub/dir for one root or a directory inside it. A tree given
here is the limit: an aname must name it or a directory inside it, and
anything else is refused with EACCES. An unknown aname is refused with
ENOENT, a malformed one (including . or ..) with EINVAL. Any number of
guests and mounts can share one server.

Mount in the guest with (HOST: the host as the guest reaches it, e.g.
10.0.2.2 with QEMU user networking; PORT: the --listen port):

  mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=NAME@VERSION,ro,cache=loose,msize=1048576 HOST /mnt

cache=loose is safe (stored content never changes) and makes repeated
reads local; msize=1048576 is the largest Linux allows over TCP and lets
each read carry 1 MiB. Every write fails with EROFS. Owners, modes, times
(ns), symlinks, hard links (shared inode numbers), devices and extended
attributes are served as stored; inode numbers (QID paths) are stable. A
corrupt chunk fails the reads that need it with EIO and is logged; the
rest keeps being served.

The address is loopback unless --listen says otherwise (9P has no
authentication or encryption: expose it only to guests you trust);
--listen unix:/path/to/sock serves on a Unix socket (e.g. for
'-chardev socket' setups or socat). One connection holds at most
--max-fids fids (v9fs keeps one per cached name; with cache=loose until
the guest's dentry cache shrinks); walks beyond it fail with EMFILE.`,
		Example: `  spraydryfs serve 9p
  spraydryfs serve 9p --listen 127.0.0.1:5640 toolchain@latest
  spraydryfs serve 9p --listen unix:/run/sdfs.sock
  # in a QEMU guest (-netdev user): every root, or one root
  mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,ro,cache=loose,msize=1048576 10.0.2.2 /mnt
  mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,aname=toolchain@1.2,ro,cache=loose,msize=1048576 10.0.2.2 /mnt`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			if _, _, err := ninepListen(listen); err != nil {
				return err
			}
			which := ""
			if len(a) == 1 {
				which = a[0]
			}
			s, v, err := g.openServed(ctx, which)
			if err != nil {
				return err
			}
			defer s.Close()
			m, mf, err := g.startMetrics("serve 9p", s)
			if err != nil {
				return err
			}
			f, err := ninepFrontend(g, listen, maxFids, s, v, m.reporter("9p", false))
			if err != nil {
				if mf != nil {
					mf.stop()
				}
				return err
			}
			return g.runFrontends(ctx, describe(which), false, withMetrics(f, mf)...)
		},
	}
	registerMetrics(cmd.Flags(), &g.metricsAddr)
	cmd.Flags().IntVar(&maxFids, "max-fids", ninep.DefaultMaxFids, "most fids one connection may hold (about 630 bytes each); more fail with EMFILE")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5640", "address to listen on: host:port (port 0 picks a free one) or unix:/path/to/socket")
	return cmd
}

// ninepListen splits a 9P address into a network and an address:
// unix:/path/to/socket or host:port.
func ninepListen(listen string) (network, addr string, err error) {
	if rest, ok := strings.CutPrefix(listen, "unix:"); ok {
		if rest == "" {
			return "", "", usageError{errors.New("serve 9p: unix: needs a socket path")}
		}
		return "unix", rest, nil
	}
	if err := checkTCPAddr("serve 9p", listen); err != nil {
		return "", "", err
	}
	return "tcp", listen, nil
}

// checkTCPAddr refuses a listen address that is not host:port with a port
// of 0 to 65535, as a usage error naming cmd.
func checkTCPAddr(cmd, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(port, 10, 16); err == nil && n > 65535 {
			err = strconv.ErrRange
		}
	}
	if err != nil {
		return usageError{fmt.Errorf("%s: listen address %q: want host:port, such as 127.0.0.1:8080", cmd, addr)}
	}
	return nil
}

// ninepFrontend listens on listen for a 9P server of view v over s,
// reporting to rep.
func ninepFrontend(g *globals, listen string, maxFids int, s *readStore, v *backend.View, rep report.Reporter) (*frontend, error) {
	network, addr, err := ninepListen(listen)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("serve 9p: %w", err)
	}
	where := ln.Addr().String()
	if network == "unix" {
		where = "unix:" + where
	}
	srv := ninep.New(s.Objects, v, ninep.Options{Log: g.log, MaxFids: maxFids, Report: rep})
	run := func(ctx context.Context) error {
		defer ln.Close()
		if err := srv.Serve(ctx, ln); err != nil {
			return fmt.Errorf("serve 9p: %w", err)
		}
		return nil
	}
	return &frontend{name: "9p", where: where, banner: "read-only over 9P at " + where + " (Ctrl-C to stop)",
		run: run, stop: func() { ln.Close() }}, nil
}
