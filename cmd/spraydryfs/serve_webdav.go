package main

import (
	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/frontends/webdav"
)

func newServeWebDAVCommand(g *globals) *cobra.Command {
	var (
		hf    httpFlags
		opt   webdav.Options
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "webdav [NAME[@VERSION[/path]]]",
		Short: "Serve roots read-only over WebDAV",
		Long: `Serve webdav shares the store read-only over WebDAV (class 1) for macOS
Finder, Windows Explorer, davfs2, GNOME/KDE, rclone and web browsers, until
interrupted (Ctrl-C, SIGTERM). It prints the URL it serves on stdout.

Without a root, it serves every root as /<name>/<version>/… with a
'latest' per name; with NAME, that name's versions; with NAME@VERSION (or
NAME@VERSION/sub/dir), that tree alone.

WebDAV has no symlinks: a symlink whose target stays inside what is served
is served as its target; absolute, escaping and dangling symlinks (and
FIFOs, sockets, devices) are left out of listings and answer 404. Owners,
modes, extended attributes and hard links are not carried; times are
whole seconds.

Writes (PUT, DELETE, MKCOL, COPY, MOVE, PROPPATCH, LOCK, UNLOCK) get 405.
PROPFIND with Depth infinity gets 403 unless --allow-infinity. Browsers
get an HTML listing of directories unless --no-listing.

The address is loopback unless --listen says otherwise; --htpasswd FILE
(bcrypt entries: 'htpasswd -B') asks for a password on everything but
OPTIONS, and --tls-cert/--tls-key serve HTTPS. Requests are logged on
stderr (-q: errors only). A corrupt chunk or damaged listing is logged
and fails the request: with 500 if it lies in the first 256 KiB of a GET
(all of a small file) or in a listing; further into a file, after the
status is out, by closing the connection short of the Content-Length.`,
		Example: `  spraydryfs serve webdav
  spraydryfs serve webdav --listen 127.0.0.1:9000 toolchain@latest
  rclone lsf :webdav,url=http://127.0.0.1:8080/:
  mount -t davfs -o ro http://127.0.0.1:8080/ /mnt/dav`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			auth, err := hf.load("serve webdav")
			if err != nil {
				return err
			}
			opt.Auth = auth
			which := ""
			if len(a) == 1 {
				which = a[0]
			}
			s, v, err := g.openServed(ctx, which)
			if err != nil {
				return err
			}
			defer s.Close()
			m, mf, err := g.startMetrics("serve webdav", s)
			if err != nil {
				return err
			}
			opt.Log, opt.Report = g.accessLog(quiet), m.reporter("webdav", true)
			f, err := hf.frontend("serve webdav", "webdav", hf.listen, webdav.New(v, opt), opt.Log)
			if err != nil {
				if mf != nil {
					mf.stop()
				}
				return err
			}
			return g.runFrontends(ctx, describe(which), false, withMetrics(f, mf)...)
		},
	}
	f := cmd.Flags()
	hf.register(f, "127.0.0.1:8080")
	registerMetrics(f, &g.metricsAddr)
	f.BoolVar(&opt.AllowInfinity, "allow-infinity", false, "answer PROPFIND with Depth infinity (walks whole trees)")
	f.BoolVar(&opt.NoListing, "no-listing", false, "no HTML listings of directories for browsers")
	f.BoolVarP(&quiet, "quiet", "q", false, "log errors only, no access log")
	return cmd
}
