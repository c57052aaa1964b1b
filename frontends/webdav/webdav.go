// Package webdav serves a backend view read-only over WebDAV (RFC 4918,
// class 1) on golang.org/x/net/webdav, for desktops (macOS Finder, Windows
// Explorer, davfs2, GNOME and KDE), rclone and browsers.
//
// The handler answers OPTIONS itself (without authentication: DAV: 1 and
// an Allow header listing OPTIONS, GET, HEAD, PROPFIND), GET and HEAD
// itself (http.ServeContent over the backend reader: ranges, conditional
// requests, the content hash as a strong ETag, the stored mtime as
// Last-Modified, the content type by extension without reading content,
// and an HTML listing for collections), and passes PROPFIND with Depth 0
// or 1 to the library; Depth infinity, and a missing Depth header, get 403
// with the propfind-finite-depth precondition unless AllowInfinity. Every
// other method (PUT, DELETE, MKCOL, COPY, MOVE, PROPPATCH, LOCK, UNLOCK,
// POST, …) gets 405 with the same Allow header before the library sees it.
//
// WebDAV has no symlinks: a symlink whose target stays inside the served
// view is served as its target (a file or a collection, under the link's
// name); absolute, escaping, dangling and looping symlinks are left out of
// listings and answer 404. FIFOs, sockets and devices are left out too.
// Owners, modes, extended attributes, hard links and sub-second mtimes are
// not carried.
//
// Paths with "..", NUL bytes or encoded slashes are refused with 400; the
// probes macOS sends (._*, .DS_Store, .metadata_never_index,
// .ql_disablethumbnails, …) get a quick 404 logged only at debug level.
//
// A corrupt chunk fails the request with 500 and an error log naming the
// chunk if it lies in the first 256 KiB of the response (all of a small
// file or range: that much is read before the status line is sent);
// further in, the status is out and the connection is aborted, so that the
// client sees a response shorter than its Content-Length, never wrong
// bytes. Listings likewise: PROPFIND of a collection reads its listing
// (and resolves its symlinks) before the 207 status line, so a damaged one
// is a 500 naming the listing's hash, never an empty or partial
// collection; a Depth infinity walk that meets one deeper down is cut.
//
// Hostile clients are bounded: big listings share a few slots (see
// bigListing), and Htpasswd bounds bcrypt work.
package webdav

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/frontends/httpauth"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// Options configure a Handler.
type Options struct {
	// AllowInfinity lets PROPFIND with Depth infinity (or no Depth header)
	// walk whole trees; without it those requests get 403.
	AllowInfinity bool
	// NoListing turns off the HTML listing of collections on GET (they get
	// 403 then).
	NoListing bool
	// Auth, if set, checks HTTP basic credentials on every request but
	// OPTIONS.
	Auth *Htpasswd
	// MaxBody bounds request bodies (PROPFIND XML); 0 means 64 KiB.
	MaxBody int64
	// Log receives the access log (info), probes (debug) and errors; nil
	// means slog.Default().
	Log *slog.Logger
	// Report receives requests by HTTP status, bytes sent, corruption and
	// requests in flight (its open handles); nil reports nothing.
	Report report.Reporter
}

// Allowed is the Allow header of every response that names methods.
const Allowed = "OPTIONS, GET, HEAD, PROPFIND"

// defaultMaxBody is the default request body limit.
const defaultMaxBody = 64 << 10

// Big listings: a PROPFIND or HTML listing of a collection of more than
// bigListing entries (and any PROPFIND with Depth infinity) holds the
// whole listing, resolved, while its response goes out: about 60 MB at the
// peak for 200,000 entries. At most maxBigListings of them run at once;
// the others wait for a slot, up to bigWait, then get 503 with
// Retry-After. Smaller listings never wait. A client that stops reading a
// big listing for bigStall is cut off, so that it cannot keep its slot.
const (
	bigListing     = 10000
	maxBigListings = 2
	bigWait        = 2 * time.Minute
	bigStall       = 30 * time.Second
)

// Handler serves one view. It is safe for concurrent use.
type Handler struct {
	v   *backend.View
	fs  *davFS
	dav *webdav.Handler
	opt Options
	log *slog.Logger
	rep report.Reporter

	big        chan struct{} // slots of big listings
	bigEntries int64         // a listing with more entries is big
	bigWait    time.Duration
	bigStall   time.Duration
}

// New returns the handler serving v.
func New(v *backend.View, opt Options) *Handler {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = defaultMaxBody
	}
	f := &davFS{v: v}
	h := &Handler{v: v, fs: f, opt: opt, log: opt.Log, rep: report.Or(opt.Report),
		big: make(chan struct{}, maxBigListings), bigEntries: bigListing, bigWait: bigWait, bigStall: bigStall}
	h.dav = &webdav.Handler{FileSystem: f, LockSystem: webdav.NewMemLS(), Logger: func(r *http.Request, err error) {
		if err == nil {
			return
		}
		if c := cacheOf(r.Context()); c != nil {
			c.err = err
		}
		if !isHidden(err) {
			h.log.Debug("webdav", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w}
	quiet := false
	h.rep.Handles(1)
	defer func() {
		h.rep.Handles(-1)
		h.rep.Request(strconv.Itoa(rw.statusCode()))
		h.rep.Served(rw.n)
		level := slog.LevelInfo
		if quiet {
			level = slog.LevelDebug
		}
		h.log.Log(r.Context(), level, "webdav", "method", r.Method, "path", r.URL.EscapedPath(), "status", rw.statusCode(),
			"bytes", rw.n, "duration", time.Since(start).Round(time.Microsecond))
	}()
	defer func() {
		// A panic other than an abort must not take the server down: log
		// it, and abort the connection (the response may have started).
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				h.log.Error("webdav: internal error", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
			}
			rw.aborted = true
			panic(http.ErrAbortHandler)
		}
	}()
	quiet = h.serve(rw, r)
}

// serve answers one request; it reports whether the request was a probe
// to leave out of the access log.
func (h *Handler) serve(w *recorder, r *http.Request) bool {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodOptions {
		w.Header().Set("DAV", "1")
		w.Header().Set("MS-Author-Via", "DAV")
		w.Header().Set("Allow", Allowed)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return false
	}
	if h.opt.Auth != nil && !httpauth.Allow(w, r, h.opt.Auth, h.log) {
		return false
	}
	p, ok := cleanPath(r)
	if !ok {
		http.Error(w, "400 bad path", http.StatusBadRequest)
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, "PROPFIND":
	default:
		w.Header().Set("Allow", Allowed)
		http.Error(w, "405 read-only: allowed methods are "+Allowed, http.StatusMethodNotAllowed)
		return false
	}
	if isProbe(p) {
		http.Error(w, "404 not found", http.StatusNotFound)
		return true
	}
	ctx := withCache(r.Context())
	r = r.WithContext(ctx)
	if r.Method == "PROPFIND" {
		h.propfind(w, r)
		return false
	}
	h.get(w, r, p)
	return false
}

// cleanPath returns the request path if it is safe: absolute, without NUL
// bytes, "." or ".." segments, or encoded slashes (which would make one
// name look like several, or the other way round).
func cleanPath(r *http.Request) (string, bool) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", false
	}
	raw := strings.ToLower(r.URL.RawPath)
	if strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%00") {
		return "", false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." {
			return "", false
		}
	}
	return p, true
}

// isProbe reports paths macOS asks for on every volume and directory and
// that never exist here: AppleDouble files and Finder and Spotlight
// metadata.
func isProbe(p string) bool {
	base := path.Base(p)
	if strings.HasPrefix(base, "._") {
		return true
	}
	switch base {
	case ".DS_Store", ".metadata_never_index", ".metadata_never_index_unless_rootfs", ".metadata_direct_scope_only",
		".ql_disablethumbnails", ".ql_disablecache", ".Spotlight-V100", ".Trashes", ".TemporaryItems", ".hidden",
		".localized", ".fseventsd", ".VolumeIcon.icns", ".com.apple.timemachine.donotpresent", "Icon\r":
		return true
	}
	return false
}

// finiteDepth is the body of the 403 refusing Depth infinity (RFC 4918
// section 9.1, precondition propfind-finite-depth).
const finiteDepth = `<?xml version="1.0" encoding="utf-8"?>
<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>
`

// propfind checks the depth, bounds the body and rewrites allprop, then
// hands the request to the library.
func (h *Handler) propfind(w *recorder, r *http.Request) {
	depth := r.Header.Get("Depth")
	if (depth != "0" && depth != "1") && !h.opt.AllowInfinity {
		if depth == "" || strings.EqualFold(depth, "infinity") {
			w.Header().Set("Content-Type", "application/xml; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, finiteDepth)
			return
		}
		http.Error(w, "400 bad Depth header", http.StatusBadRequest)
		return
	}
	// The library answers every Stat error but "not exist" with 405:
	// resolve first, for 404 and 500 (logged) where they belong.
	ctx := r.Context()
	n, err := h.fs.resolve(ctx, r.URL.Path)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opt.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "400 cannot read the request body", http.StatusBadRequest)
		return
	}
	body, err = explicitProps(body)
	if err != nil {
		http.Error(w, "400 bad PROPFIND body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if n.IsDir() && depth != "0" {
		if depth != "1" || n.Size > h.bigEntries {
			release, ok := h.bigSlot(w, r)
			if !ok {
				return
			}
			defer release()
		}
		// Read the listing (and resolve its symlinks) before the library
		// writes the 207 status line, so that a damaged listing is a 500
		// and not an empty collection; the library's Readdir and Stat of
		// each child are answered from it.
		parts := splitClean(r.URL.Path)
		ns, err := h.fs.children(ctx, parts, n)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		cacheOf(ctx).lists[strings.Join(parts, "/")] = ns
	}
	h.dav.ServeHTTP(w, r)
	if err := cacheOf(ctx).err; err != nil && w.started {
		// The library failed after the 207 status line (Depth infinity
		// meeting a damaged listing, or a write error) and would append
		// its error text to a well-formed multistatus that reads as a
		// complete answer: cut the connection instead, so that the client
		// sees a truncated response.
		if errors.Is(err, backend.ErrCorrupt) {
			h.logErr(r, err)
		} else if !errors.Is(err, context.Canceled) {
			h.log.Warn("webdav: PROPFIND cut after the response started", "path", r.URL.Path, "err", err)
		}
		w.aborted = true
		panic(http.ErrAbortHandler)
	}
}

// bigSlot waits for a big-listing slot, up to h.bigWait; it returns the
// slot's release, or answers 503 (or nothing, for a client gone) and
// reports false. While the slot is held, writes to w that make no
// progress for h.bigStall fail.
func (h *Handler) bigSlot(w *recorder, r *http.Request) (func(), bool) {
	t := time.NewTimer(h.bigWait)
	defer t.Stop()
	select {
	case h.big <- struct{}{}:
		w.stall = h.bigStall
		return func() {
			w.stall = 0
			http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Time{})
			<-h.big
		}, true
	case <-r.Context().Done():
		return nil, false
	case <-t.C:
		h.log.Warn("webdav: too many big listings at once", "method", r.Method, "path", r.URL.Path)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "503 too many large listings at once; retry later", http.StatusServiceUnavailable)
		return nil, false
	}
}

// allProps are the properties an allprop PROPFIND gets (plus what it
// asks to include). The library would list its own supportedlock as well
// as ours, so allprop is rewritten to name them.
var allProps = []string{"resourcetype", "displayname", "getcontentlength", "getlastmodified", "creationdate",
	"getcontenttype", "getetag", "supportedlock", "lockdiscovery"}

// propfindBody is the part of a PROPFIND body explicitProps needs.
type propfindBody struct {
	XMLName  xml.Name  `xml:"DAV: propfind"`
	Allprop  *struct{} `xml:"DAV: allprop"`
	Propname *struct{} `xml:"DAV: propname"`
	Include  *struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"DAV: include"`
}

// explicitProps turns an allprop request (or an empty body, which means
// the same) into one naming allProps and the included properties; other
// bodies are returned as they are, for the library to check.
func explicitProps(body []byte) ([]byte, error) {
	var pf propfindBody
	if len(bytes.TrimSpace(body)) != 0 {
		if err := xml.Unmarshal(body, &pf); err != nil {
			return nil, fmt.Errorf("propfind body: %w", err)
		}
		if pf.Allprop == nil {
			return body, nil
		}
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>`)
	for _, p := range allProps {
		b.WriteString("<D:" + p + "/>")
	}
	if pf.Include != nil {
		b.Write(pf.Include.Inner)
	}
	b.WriteString(`</D:prop></D:propfind>`)
	return b.Bytes(), nil
}

// get answers GET and HEAD: a file's content, or a collection's listing.
func (h *Handler) get(w *recorder, r *http.Request, p string) {
	ctx := r.Context()
	n, err := h.fs.resolve(ctx, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if n.IsDir() {
		if h.opt.NoListing {
			http.Error(w, "403 directory listings are turned off", http.StatusForbidden)
			return
		}
		if !strings.HasSuffix(p, "/") {
			u := *r.URL
			u.Path, u.RawPath = p+"/", ""
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
		h.listing(w, r, p, n)
		return
	}
	rd, err := h.v.Open(ctx, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType(n.Name))
	if e := etag(n); e != "" {
		hdr.Set("ETag", e)
	}
	src := &errReader{r: rd, ctx: ctx}
	w.defer_ = true
	http.ServeContent(w, r, n.Name, time.Unix(0, n.MTime), src)
	if src.err == nil {
		w.flushHeader() // an error here is the client's, gone
		return
	}
	if !w.started {
		// Nothing sent yet (the held body is dropped): a clean error
		// response.
		for _, k := range []string{"Content-Length", "Content-Range", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges", "Content-Encoding"} {
			hdr.Del(k)
		}
		w.defer_, w.status, w.held = false, 0, nil
		h.fail(w, r, src.err)
		return
	}
	h.logErr(r, src.err)
	// Headers and part of the body are out: cut the connection so the
	// client sees a short response, never wrong bytes.
	w.aborted = true
	panic(http.ErrAbortHandler)
}

// fail answers an error from the view: 404 for what does not exist here,
// 500 (logged) for the rest, corruption included.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if isHidden(err) {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	h.logErr(r, err)
	http.Error(w, "500 internal server error", http.StatusInternalServerError)
}

func (h *Handler) logErr(r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if errors.Is(err, backend.ErrCorrupt) {
		h.rep.Corrupt()
		h.log.Error("webdav: corrupt data", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	h.log.Error("webdav: read failed", "method", r.Method, "path", r.URL.Path, "err", err)
}

// errReader is the backend reader for http.ServeContent, which drops read
// errors: it keeps the first one for the handler.
type errReader struct {
	r   *backend.Reader
	ctx context.Context
	err error
}

// Read implements io.Reader.
func (e *errReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// Seek implements io.Seeker.
func (e *errReader) Seek(off int64, whence int) (int64, error) { return e.r.Seek(off, whence) }

// ReadFrom implements io.ReaderFrom so that http.ServeContent's copy of
// the backend reader (an io.LimitedReader around an errReader) writes
// whole decoded chunks straight to the connection instead of going
// through a 32 KiB buffer; other sources are copied as usual.
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	e, ok := lr.R.(*errReader)
	if !ok || e.err != nil {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	lw := &limitWriter{w: w, n: lr.N}
	n, err := e.r.WriteToContext(e.ctx, lw)
	lr.N -= n
	switch {
	case err == errLimit:
		err = nil
	case err != nil && !lw.failed:
		e.err = err // a read error, not the client's
	}
	return n, err
}

// errLimit stops a WriteTo at the end of the range being sent.
var errLimit = errors.New("range sent")

// limitWriter passes n bytes on, then stops the writer with errLimit.
type limitWriter struct {
	w      io.Writer
	n      int64
	failed bool // the underlying writer failed
}

// Write implements io.Writer.
func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	short := int64(len(p)) > l.n
	if short {
		p = p[:l.n]
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	if err != nil {
		l.failed = true
		return n, err
	}
	if short {
		return n, errLimit
	}
	return n, nil
}

// holdBody is how much of a GET response is held back, with its status
// line, until it has been read (and so verified): a corrupt chunk in it is
// a clean 500. It covers the whole of small files and small ranges, and
// the first chunks of the rest (chunks average 64 KiB).
const holdBody = 256 << 10

// recorder is the ResponseWriter the handler writes to: it counts bytes
// for the access log and, while defer_ is set, holds the status line and
// the first holdBody bytes of the body back, so that a read error in them
// can still become a 500.
type recorder struct {
	http.ResponseWriter
	status  int
	n       int64
	started bool // status line sent
	defer_  bool
	held    []byte // body held back with the status line
	aborted bool

	stall    time.Duration // if set, each write must progress within it
	extended time.Time     // when the write deadline was last moved
}

// progress moves the write deadline on, at most every quarter stall, while
// stall is set.
func (w *recorder) progress() {
	if w.stall <= 0 {
		return
	}
	if now := time.Now(); now.Sub(w.extended) >= w.stall/4 {
		w.extended = now
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(now.Add(w.stall))
	}
}

// WriteHeader implements http.ResponseWriter.
func (w *recorder) WriteHeader(code int) {
	if w.started || (w.status != 0 && code >= 200) {
		return
	}
	if code < 200 { // informational: pass through
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.status = code
	if !w.defer_ {
		w.flushHeader()
	}
}

// flushHeader sends the held status line and body.
func (w *recorder) flushHeader() error {
	if w.started {
		return nil
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.started = true
	w.ResponseWriter.WriteHeader(w.status)
	held := w.held
	w.held = nil
	w.progress()
	n, err := w.ResponseWriter.Write(held)
	w.n += int64(n)
	return err
}

// Write implements http.ResponseWriter.
func (w *recorder) Write(p []byte) (int, error) {
	if !w.started && w.defer_ && len(w.held)+len(p) <= holdBody {
		w.held = append(w.held, p...)
		return len(p), nil
	}
	if err := w.flushHeader(); err != nil {
		return 0, err
	}
	w.progress()
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush implements http.Flusher.
func (w *recorder) Flush() {
	if err := w.flushHeader(); err != nil {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) statusCode() int {
	if w.aborted {
		return 0 // connection aborted
	}
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
