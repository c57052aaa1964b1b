package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/frontends/ninep"
	"github.com/spraydryfs/spraydryfs/frontends/webdav"
)

func newServeCommand(g *globals) *cobra.Command {
	var (
		hf                        httpFlags
		davAddr, ninepAddr, lhttp string
		mountDir                  string
		dav                       webdav.Options
		mopt                      mountOptions
		maxFids                   int
		quiet                     bool
		sign                      string
	)
	cmd := &cobra.Command{
		Use:   "serve [--webdav ADDR] [--9p ADDR] [--http ADDR] [--mount DIR] [NAME[@VERSION[/path]]]",
		Short: "Serve roots read-only over WebDAV, 9P2000.L, HTTP (a published layout) and FUSE, from one process",
		Long: `Serve shares the store's roots read-only, until interrupted (Ctrl-C,
SIGTERM), over every frontend asked for, from one process with one open
store and one cache: --webdav ADDR (as 'serve webdav'), --9p ADDR (as
'serve 9p', unix:/path for a socket), --http ADDR (the published layout,
as 'serve http'; the root, if any, is NAME or NAME@VERSION) and --mount DIR
(a FUSE mount, as 'mount'). At least one is needed. Addresses are
host:port (port 0 picks a free one): give loopback ones, as in the
examples, unless clients are elsewhere.

Everything that can fail (the store, the root, the addresses, TLS,
htpasswd, the mount point) is checked before anything is served. Then
serve prints one line per frontend on stdout ("webdav URL", "9p ADDR",
"http URL", "mount DIR") and, under systemd (Type=notify), sends READY=1
once all are up. SIGINT or SIGTERM stops every frontend and unmounts; a
mount unmounted from outside ends the server too. SIGHUP reopens the
--log-file. --metrics ADDR serves Prometheus metrics at /metrics: requests,
errors, bytes and open handles per frontend, the shared cache's hits and
misses, chunk decode times and corruption events (see the README).

The subcommands serve one protocol each, with all of its options.`,
		Example: `  spraydryfs serve --webdav 127.0.0.1:8080 --9p 127.0.0.1:5640 --mount /mnt/trees
  spraydryfs serve --http 127.0.0.1:8090 --webdav 127.0.0.1:8080 toolchain`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			if davAddr == "" && ninepAddr == "" && lhttp == "" && mountDir == "" {
				if len(a) == 1 { // without a frontend, only a subcommand can follow
					return unknownSubcommand(cmd, a)
				}
				return usageError{errors.New("serve: say what to serve with --webdav ADDR, --9p ADDR, --http ADDR or --mount DIR (or use 'serve webdav', 'serve 9p' or 'serve http'; see 'spraydryfs serve --help')")}
			}
			which := ""
			if len(a) == 1 {
				which = a[0]
			}
			var roots layoutRoots
			if lhttp != "" {
				var err error
				if roots, err = parseLayoutRoots(which); err != nil {
					return err
				}
			} else if sign != "" {
				return usageError{errors.New("serve: --sign signs the index --http serves; give --http ADDR")}
			}
			key, err := loadSign(sign)
			if err != nil {
				return err
			}
			if ninepAddr != "" {
				if _, _, err := ninepListen(ninepAddr); err != nil {
					return err
				}
			}
			auth, err := hf.load("serve")
			if err != nil {
				return err
			}
			s, v, err := g.openServed(ctx, which)
			if err != nil {
				return err
			}
			defer s.Close()
			var fes []*frontend
			defer func() {
				for _, f := range fes {
					f.stop()
				}
			}()
			add := func(f *frontend, err error) error {
				if err == nil {
					fes = append(fes, f)
				}
				return err
			}
			m, mf, err := g.startMetrics("serve", s)
			if err != nil {
				return err
			}
			if mf != nil {
				fes = append(fes, mf)
			}
			log := g.accessLog(quiet)
			if davAddr != "" {
				dav.Auth, dav.Log, dav.Report = auth, log, m.reporter("webdav", true)
				if err := add(hf.frontend("serve --webdav", "webdav", davAddr, webdav.New(v, dav), log)); err != nil {
					return err
				}
			}
			if ninepAddr != "" {
				if err := add(ninepFrontend(g, ninepAddr, maxFids, s, v, m.reporter("9p", false))); err != nil {
					return err
				}
			}
			if lhttp != "" {
				h, err := roots.handler(ctx, s, auth, key, log, m.reporter("http", true))
				if err != nil {
					return err
				}
				if err := add(hf.frontend("serve --http", "http", lhttp, h, log)); err != nil {
					return err
				}
			}
			if mountDir != "" { // last: the one start-up step others can see
				mopt.FsName, mopt.Log, mopt.Report = "spraydryfs", g.log, m.reporter("fuse", false)
				if err := add(mountFrontend(mountDir, v, mopt)); err != nil {
					return err
				}
			}
			started := fes
			fes = nil // runFrontends stops them
			return g.runFrontends(ctx, describe(which), true, started...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&davAddr, "webdav", "", "serve WebDAV at this address (host:port)")
	f.StringVar(&ninepAddr, "9p", "", "serve 9P2000.L at this address (host:port or unix:/path/to/socket)")
	f.StringVar(&lhttp, "http", "", "serve the store as a published layout over HTTP at this address (host:port)")
	f.StringVar(&mountDir, "mount", "", "mount with FUSE at this directory")
	hf.registerShared(f)
	f.BoolVar(&dav.AllowInfinity, "allow-infinity", false, "WebDAV: answer PROPFIND with Depth infinity (walks whole trees)")
	f.BoolVar(&dav.NoListing, "no-listing", false, "WebDAV: no HTML listings of directories for browsers")
	f.IntVar(&maxFids, "max-fids", ninep.DefaultMaxFids, "9P: most fids one connection may hold; more fail with EMFILE")
	f.BoolVar(&mopt.AllowOther, "allow-other", false, "FUSE: let other users see the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	f.BoolVar(&mopt.ReadDirPlus, "readdirplus", true, "FUSE: send attributes with directory listings")
	f.BoolVarP(&quiet, "quiet", "q", false, "log errors only, no access log")
	registerSign(f, &sign)
	registerMetrics(f, &g.metricsAddr)
	cmd.AddCommand(newServeWebDAVCommand(g), newServe9PCommand(g), newServeHTTPCommand(g))
	return cmd
}

// frontend is a frontend ready to serve: its listener is open or its
// mount is in the kernel, so nothing that can go wrong at start-up is
// left.
type frontend struct {
	name   string // "webdav", "9p", "http", "mount"
	where  string // its URL, address or mount point
	banner string // what it says on stderr once serving; "" for nothing
	// run serves until ctx ends (or, for a mount, until unmounted), then
	// shuts down and releases what it holds.
	run func(ctx context.Context) error
	// stop releases it when run is not called.
	stop func()
}

// runFrontends announces fes (stdout: each one's address after its name if
// labelled, else the first one's address alone; stderr: their banners), tells whoever waits that they are
// ready (notifyReady) and serves them all until ctx ends or one fails,
// which stops the others. SIGHUP meanwhile reopens the logs.
func (g *globals) runFrontends(ctx context.Context, what string, labelled bool, fes ...*frontend) error {
	for _, f := range fes {
		switch {
		case labelled:
			fmt.Fprintln(os.Stdout, f.name, f.where)
		case f == fes[0] && f.where != "":
			fmt.Fprintln(os.Stdout, f.where)
		}
		if f.banner != "" {
			fmt.Fprintf(os.Stderr, "spraydryfs: serving %s %s\n", what, f.banner)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before READY=1: a reload may follow at once
	defer signal.Stop(hup)
	defer notifyReady(ctx)()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-hup:
				g.reopenLogs()
			case <-ctx.Done():
				return
			}
		}
	}()
	errs := make([]error, len(fes))
	var wg sync.WaitGroup
	for i, f := range fes {
		wg.Go(func() {
			errs[i] = f.run(ctx)
			cancel() // one ending (a mount unmounted from outside, a failure) ends all
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
