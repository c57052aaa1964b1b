package main

import (
	"errors"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/httplayout"
)

func newServeHTTPCommand(g *globals) *cobra.Command {
	var (
		hf    httpFlags
		quiet bool
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
that knows one can fetch it whether or not a served root names it.`,
		Example: `  spraydryfs serve http
  spraydryfs serve http --listen 127.0.0.1:8090 toolchain
  spraydryfs -s http://127.0.0.1:8090/ ls toolchain@latest`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			auth, err := hf.load("serve http")
			if err != nil {
				return err
			}
			opt := httplayout.Options{Log: g.accessLog(quiet)}
			if auth != nil {
				opt.Auth = auth
			}
			what := "all roots"
			if len(a) == 1 {
				ref, err := store.ParseRef(a[0], false)
				if err != nil {
					return usageError{err}
				}
				if ref.Path != "" {
					return usageError{errors.New("serve http: serves NAME or NAME@VERSION, without a path")}
				}
				opt.Roots, what = []store.Ref{ref}, a[0]
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(serverMemoryLimit)
			}
			s, err := g.openReader()
			if err != nil {
				return err
			}
			defer s.Close()
			all, err := s.Roots(ctx)
			if err != nil {
				return err
			}
			if _, err := layout.Select(all, opt.Roots); err != nil {
				return err
			}
			return hf.serve(ctx, "serve http", what, httplayout.New(s.Source(), opt), opt.Log)
		},
	}
	hf.register(cmd.Flags(), "127.0.0.1:8090")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "log errors only, no access log")
	return cmd
}
