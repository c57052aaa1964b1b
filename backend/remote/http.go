// Package remote fetches published layouts (package layout) over HTTP(S):
// from `spraydryfs serve http`, a static web server or a CDN, through any
// HTTP cache.
package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// HTTP is a layout.Fetcher over HTTP(S). It keeps connections alive
// between requests, bounds every request in time, retries network errors
// and server errors a few times with backoff, and revalidates the index
// with its ETag. It is safe for concurrent use.
type HTTP struct {
	base   *url.URL
	client *http.Client
	opt    Options

	mu        sync.Mutex
	indexETag string
	indexBody []byte

	down Outage
}

// Outage tracks whether a remote is taken to be down: for DownFor after a
// request failed every attempt, each request is tried once, so that a
// walk over what is not cached fails at once rather than after every
// retry of every file. Any answer (an object, or its absence) ends it.
// The zero value is a remote that is up; it is safe for concurrent use.
type Outage struct{ until atomic.Int64 } // Unix ns

// DownFor is how long an Outage lasts without an answer.
const DownFor = 5 * time.Second

// Attempts returns how many times to try a request: n, or 1 while down.
func (o *Outage) Attempts(n int) int {
	if time.Now().UnixNano() < o.until.Load() {
		return 1
	}
	return n
}

// Answered records an answer from the remote. It writes only to end an
// outage: every successful fetch calls it, from many goroutines.
func (o *Outage) Answered() {
	if o.until.Load() != 0 {
		o.until.Store(0)
	}
}

// Failed records a request that failed every attempt.
func (o *Outage) Failed() { o.until.Store(time.Now().Add(DownFor).UnixNano()) }

// Options tune an HTTP fetcher (and an S3 bucket's, package bucket);
// zero values pick the defaults.
type Options struct {
	// Timeout bounds one request, from dialling to the last byte (30 s).
	Timeout time.Duration
	// Attempts is how many times a request is tried (3).
	Attempts int
	// Backoff is the wait before the second attempt; it doubles (200 ms).
	Backoff time.Duration
	// Conns is how many idle connections are kept (32).
	Conns int
	// Log receives retry warnings; nil is slog.Default.
	Log *slog.Logger
}

// WithDefaults returns o with its zero values replaced by the defaults.
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.Conns <= 0 {
		o.Conns = 32
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// IsURL reports whether s names an HTTP(S) layout.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// NewHTTP returns the fetcher of the layout at rawURL
// (http[s]://HOST[:PORT]/PREFIX).
func NewHTTP(rawURL string, opt Options) (*HTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("not an http(s) URL: %q", rawURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("layout URL %q: no query or fragment allowed", rawURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	opt = opt.WithDefaults()
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          opt.Conns,
		MaxIdleConnsPerHost:   opt.Conns,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		// Objects are compressed already; asking for gzip would only
		// cost the server time.
		DisableCompression: true,
	}
	return &HTTP{base: u, client: &http.Client{Transport: tr}, opt: opt}, nil
}

// String returns the layout's URL, without a password.
func (h *HTTP) String() string { return h.base.Redacted() }

// Close drops idle connections.
func (h *HTTP) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

// ErrUnavailable reports that the remote could not be reached or did not
// answer in time or in full. It carries no errno of its own, so that file
// system frontends answer EIO, as for any other failed read.
var ErrUnavailable = errors.New("remote unavailable")

// errPermanent marks failures that another attempt would not change.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// Fetch implements layout.Fetcher.
func (h *HTTP) Fetch(ctx context.Context, key string, limit int64, fresh bool) ([]byte, error) {
	target := h.base.JoinPath(key)
	u := target.Redacted() // for messages: no password
	wait := h.opt.Backoff
	attempts := h.down.Attempts(h.opt.Attempts)
	var err error
	for attempt := 1; ; attempt++ {
		var b []byte
		b, err = h.get(ctx, target, u, key, limit, fresh)
		var perm errPermanent
		if err == nil || errors.As(err, &perm) {
			h.down.Answered()
			if err != nil {
				err = perm.error
			}
			return b, err
		}
		if ctx.Err() != nil {
			return b, err
		}
		if attempt >= attempts {
			h.down.Failed()
			return b, err
		}
		h.opt.Log.Warn("fetch failed; retrying", "url", u, "attempt", attempt, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (after: %v)", ctx.Err(), err)
		}
		wait *= 2
	}
}

// get makes one attempt at target, u in messages.
func (h *HTTP) get(ctx context.Context, target *url.URL, u, key string, limit int64, fresh bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, errPermanent{err}
	}
	isIndex := key == layout.IndexKey
	if fresh {
		req.Header.Set("Cache-Control", "no-cache")
		req.Header.Set("Pragma", "no-cache")
	}
	if isIndex {
		h.mu.Lock()
		if h.indexETag != "" {
			req.Header.Set("If-None-Match", h.indexETag)
		}
		h.mu.Unlock()
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, h.unavailable(ctx, u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotModified && isIndex:
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.indexBody != nil {
			return h.indexBody, nil
		}
		return nil, fmt.Errorf("GET %s: 304 without a cached copy", u)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, errPermanent{fmt.Errorf("%s: %w", u, layout.ErrNotFound)}
	case resp.StatusCode == http.StatusForbidden && layout.IsObjectKey(key):
		// S3 without s3:ListBucket: see layout.IsObjectKey.
		return nil, errPermanent{fmt.Errorf("%s: %s: %w", u, resp.Status, layout.ErrNotFound)}
	case resp.StatusCode == http.StatusForbidden:
		return nil, errPermanent{fmt.Errorf("GET %s: %s: access denied (does the server or bucket let this client read the layout?)", u, resp.Status)}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return nil, fmt.Errorf("%w: GET %s: %s", ErrUnavailable, u, resp.Status)
	default:
		return nil, errPermanent{fmt.Errorf("GET %s: %s", u, resp.Status)}
	}
	if resp.ContentLength > limit {
		return nil, errPermanent{fmt.Errorf("%w: %s is %d bytes, more than %d", store.ErrCorrupt, u, resp.ContentLength, limit)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, h.unavailable(ctx, u, err)
	}
	if int64(len(b)) > limit {
		return nil, errPermanent{fmt.Errorf("%w: %s is more than %d bytes", store.ErrCorrupt, u, limit)}
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("%w: GET %s: %d of %d bytes", ErrUnavailable, u, len(b), resp.ContentLength)
	}
	if isIndex {
		h.mu.Lock()
		h.indexETag, h.indexBody = resp.Header.Get("ETag"), b
		h.mu.Unlock()
	}
	return b, nil
}

// unavailable describes a failed request: the caller's cancellation as
// such, anything else (refused, reset, timed out) as ErrUnavailable
// without the errno underneath.
func (h *HTTP) unavailable(ctx context.Context, u string, err error) error {
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("GET %s: %w", u, ctx.Err())
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) { // another attempt would be refused alike
		return errPermanent{fmt.Errorf("%w: GET %s: %v", ErrUnavailable, u, err)}
	}
	return fmt.Errorf("%w: GET %s: %v", ErrUnavailable, u, err)
}
