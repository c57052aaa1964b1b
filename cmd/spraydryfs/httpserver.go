package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/spraydryfs/spraydryfs/frontends/webdav"
)

// httpFlags are the options every HTTP server command shares: the
// address, TLS and basic auth.
type httpFlags struct {
	listen, htpasswd, cert, key string
	tls                         *tls.Config // loaded by load
}

// register adds --listen (defaulting to listen), --htpasswd, --tls-cert
// and --tls-key to f.
func (h *httpFlags) register(f *pflag.FlagSet, listen string) {
	f.StringVar(&h.listen, "listen", listen, "address to listen on (host:port; port 0 picks a free one)")
	h.registerShared(f)
}

// registerShared adds --htpasswd, --tls-cert and --tls-key to f: serve
// applies them to all its HTTP frontends.
func (h *httpFlags) registerShared(f *pflag.FlagSet) {
	f.StringVar(&h.htpasswd, "htpasswd", "", "require HTTP basic auth against this htpasswd file (bcrypt)")
	f.StringVar(&h.cert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&h.key, "tls-key", "", "the certificate's private key (PEM)")
}

// load checks the flags and loads the TLS pair and the htpasswd file, if
// any (nil if none), so that a bad one fails before the server announces
// itself.
func (h *httpFlags) load(cmd string) (*webdav.Htpasswd, error) {
	if (h.cert == "") != (h.key == "") {
		return nil, usageError{fmt.Errorf("%s: --tls-cert and --tls-key go together", cmd)}
	}
	if h.cert != "" {
		pair, err := tls.LoadX509KeyPair(h.cert, h.key)
		if err != nil {
			return nil, fmt.Errorf("%s: TLS certificate %s, key %s: %w", cmd, h.cert, h.key, err)
		}
		h.tls = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	if h.htpasswd == "" {
		return nil, nil
	}
	return webdav.LoadHtpasswd(h.htpasswd)
}

// frontend listens on addr for an HTTP server of handler (over TLS when
// asked: load first) named name. Its run serves until ctx ends, then lets
// requests in flight finish for a while.
func (h *httpFlags) frontend(cmd, name, addr string, handler http.Handler, log *slog.Logger) (*frontend, error) {
	if err := checkTCPAddr(cmd, addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	scheme := "http"
	if h.tls != nil {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s/", scheme, ln.Addr())
	run := func(ctx context.Context) error {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return ctx },
			TLSConfig:         h.tls,
		}
		errc := make(chan error, 1)
		go func() {
			if h.tls != nil {
				errc <- srv.ServeTLS(ln, "", "")
			} else {
				errc <- srv.Serve(ln)
			}
		}()
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("%s: %s: %w", cmd, name, err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		return nil
	}
	return &frontend{name: name, where: url, banner: "read-only over " + name + " at " + url + " (Ctrl-C to stop)",
		run: run, stop: func() { ln.Close() }}, nil
}

// accessLog returns the logger of an HTTP server: requests at Info unless
// quiet, everything with -v.
func (g *globals) accessLog(quiet bool) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case g.verbose:
		level = slog.LevelDebug
	case quiet:
		level = slog.LevelWarn
	}
	return g.newLogger(level)
}
