package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/frontends/webdav"
)

func newServeWebDAVCommand(g *globals) *cobra.Command {
	var (
		listen, htpasswd, cert, key string
		opt                         webdav.Options
		quiet                       bool
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
			if (cert == "") != (key == "") {
				return usageError{errors.New("serve webdav: --tls-cert and --tls-key go together")}
			}
			// Everything that can fail is checked before the URL is
			// announced: the certificate, the password file, the store and
			// root, the address.
			var tlsConfig *tls.Config
			if cert != "" {
				pair, err := tls.LoadX509KeyPair(cert, key)
				if err != nil {
					return fmt.Errorf("serve webdav: TLS certificate %s, key %s: %w", cert, key, err)
				}
				tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
			}
			if htpasswd != "" {
				h, err := webdav.LoadHtpasswd(htpasswd)
				if err != nil {
					return err
				}
				opt.Auth = h
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
			level := slog.LevelInfo
			switch {
			case g.verbose:
				level = slog.LevelDebug
			case quiet:
				level = slog.LevelWarn
			}
			opt.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("serve webdav: %w", err)
			}
			srv := &http.Server{
				Handler:           webdav.New(v, opt),
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       60 * time.Second,
				IdleTimeout:       120 * time.Second,
				MaxHeaderBytes:    64 << 10,
				ErrorLog:          slog.NewLogLogger(opt.Log.Handler(), slog.LevelDebug),
				BaseContext:       func(net.Listener) context.Context { return ctx },
				TLSConfig:         tlsConfig,
			}
			scheme := "http"
			if cert != "" {
				scheme = "https"
			}
			url := fmt.Sprintf("%s://%s/", scheme, ln.Addr())
			fmt.Fprintln(os.Stdout, url)
			fmt.Fprintf(os.Stderr, "spraydryfs: serving %s read-only at %s (Ctrl-C to stop)\n", describe(which), url)
			errc := make(chan error, 1)
			go func() {
				if tlsConfig != nil {
					errc <- srv.ServeTLS(ln, "", "")
				} else {
					errc <- srv.Serve(ln)
				}
			}()
			select {
			case err := <-errc:
				return fmt.Errorf("serve webdav: %w", err)
			case <-ctx.Done():
			}
			// Let requests in flight finish, for a while.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.BoolVar(&opt.AllowInfinity, "allow-infinity", false, "answer PROPFIND with Depth infinity (walks whole trees)")
	f.BoolVar(&opt.NoListing, "no-listing", false, "no HTML listings of directories for browsers")
	f.StringVar(&htpasswd, "htpasswd", "", "require HTTP basic auth against this htpasswd file (bcrypt)")
	f.StringVar(&cert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&key, "tls-key", "", "the certificate's private key (PEM)")
	f.BoolVarP(&quiet, "quiet", "q", false, "log errors only, no access log")
	return cmd
}
