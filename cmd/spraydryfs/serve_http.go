package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/httplayout"
	"github.com/spraydryfs/spraydryfs/frontends/report"
	"github.com/spraydryfs/spraydryfs/frontends/webdav"
)

func newServeHTTPCommand(g *globals) *cobra.Command {
	var (
		hf    httpFlags
		quiet bool
		sign  string
	)
	cmd := &cobra.Command{
		Use:   "http [NAME[@VERSION]]",
		Short: "Serve the store as a published layout over HTTP",
		Long: `Serve http publishes the store (every root, one name's versions, or one
root) over HTTP as the layout 'spraydryfs push' writes, until interrupted
(Ctrl-C, SIGTERM): /index.json names the roots and /objects/<kind>/ab/cdef…
are the objects, made from the store on each request. Readers mount it with
'spraydryfs -s http://HOST:PORT/ mount DIR'; any HTTP cache or CDN in
between can keep the objects forever (Cache-Control: immutable, strong
ETags) and revalidate the index (max-age 61 s, ETag).

GET and HEAD only; anything else gets 405. The address is loopback unless
--listen says otherwise; --htpasswd FILE (bcrypt entries: 'htpasswd -B')
asks for a password, and --tls-cert/--tls-key serve HTTPS. Requests are
logged on stderr (-q: errors only). Objects are served by address: a reader
that knows one can fetch it whether or not a served root names it.

--sign KEYFILE (see 'spraydryfs keygen') signs the index; readers given
the public key with --trust refuse any other. It is signed again, with a
later publication time, only when the roots change, so its ETag holds.`,
		Example: `  spraydryfs serve http
  spraydryfs serve http --listen 127.0.0.1:8090 toolchain
  spraydryfs -s http://127.0.0.1:8090/ ls toolchain@latest
  spraydryfs serve http --sign publish.key   # readers: --trust publish.key.pub`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			auth, err := hf.load("serve http")
			if err != nil {
				return err
			}
			which := ""
			if len(a) == 1 {
				which = a[0]
			}
			roots, err := parseLayoutRoots(which)
			if err != nil {
				return err
			}
			key, err := loadSign(sign)
			if err != nil {
				return err
			}
			limitMemory(cmd.Context())
			s, err := g.openReader()
			if err != nil {
				return err
			}
			defer s.Close()
			log := g.accessLog(quiet)
			m, mf, err := g.startMetrics("serve http", s)
			if err != nil {
				return err
			}
			h, err := roots.handler(ctx, s, auth, key, log, m.reporter("http", true))
			if err == nil {
				var f *frontend
				if f, err = hf.frontend("serve http", "http", hf.listen, h, log); err == nil {
					return g.runFrontends(ctx, describe(which), false, withMetrics(f, mf)...)
				}
			}
			if mf != nil {
				mf.stop()
			}
			return err
		},
	}
	hf.register(cmd.Flags(), "127.0.0.1:8090")
	registerMetrics(cmd.Flags(), &g.metricsAddr)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "log errors only, no access log")
	registerSign(cmd.Flags(), &sign)
	return cmd
}

// registerSign adds --sign, which signs a served layout's index, to f.
func registerSign(f *pflag.FlagSet, sign *string) {
	f.StringVar(sign, "sign", "", "sign the published index with the secret key in `KEYFILE` (made by 'spraydryfs keygen')")
}

// loadSign loads the --sign key, if any (nil if none).
func loadSign(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	k, err := loadSecretKey(path)
	if err != nil {
		return nil, usageError{err}
	}
	return k, nil
}

// layoutRoots are the roots a published layout serves: all if empty.
type layoutRoots []store.Ref

// parseLayoutRoots parses serve http's argument: empty, NAME or
// NAME@VERSION, without a path.
func parseLayoutRoots(arg string) (layoutRoots, error) {
	if arg == "" {
		return nil, nil
	}
	ref, err := store.ParseRef(arg, false)
	if err != nil {
		return nil, usageError{err}
	}
	if ref.Path != "" {
		return nil, usageError{errors.New("serve http: serves NAME or NAME@VERSION, without a path")}
	}
	return layoutRoots{ref}, nil
}

// handler checks that the roots are in s and returns the HTTP handler
// publishing them, signing the index with sign if set, reporting to rep.
func (r layoutRoots) handler(ctx context.Context, s *readStore, auth *webdav.Htpasswd, sign ed25519.PrivateKey, log *slog.Logger, rep report.Reporter) (*httplayout.Handler, error) {
	all, err := s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := layout.Select(all, r); err != nil {
		return nil, err
	}
	opt := httplayout.Options{Log: log, Roots: r, Report: rep, Sign: sign}
	if auth != nil {
		opt.Auth = auth
	}
	return httplayout.New(s.Objects, opt), nil
}
