// Package httplayout serves a store as a published layout (package
// layout) over HTTP, read-only: the objects and the roots index that
// `spraydryfs push` would write, made from the store on each request, so
// that readers, HTTP caches and CDNs see the same bytes as from a pushed
// directory behind a static web server.
//
// Objects are immutable (Cache-Control: public, max-age=31536000,
// immutable; a strong ETag, the object's address); the index may change
// (max-age=61, as CernVM-FS: Squid does not cache 60 s and below; an ETag
// of its content, so If-None-Match revalidates it with a 304). GET and
// HEAD are served; everything else gets 405. With a signing key, the
// index is signed (see layout.SignIndex).
package httplayout

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/httpauth"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// Options tune a Handler.
type Options struct {
	// Roots limits the index to these (NAME or NAME@VERSION); empty is
	// every root. Objects are served by address whatever root names them.
	Roots []store.Ref
	// Auth, if set, is asked on every request.
	Auth httpauth.Checker
	// Log receives one line per request (Info) and failures (Error).
	Log *slog.Logger
	// Report receives requests by HTTP status, bytes sent, corruption and
	// requests in flight; nil reports nothing.
	Report report.Reporter
	// Sign, if set, signs the index. An index is signed again, published
	// later, only when its roots change, so that its bytes and ETag stay
	// the same for caches in between.
	Sign ed25519.PrivateKey
}

// Handler serves the layout of a store.
type Handler struct {
	o   *store.Objects // decodes listings, for packs
	src store.Source
	opt Options

	mu        sync.Mutex
	plain     []byte    // the unsigned index last signed
	signed    []byte    // its signed form
	published time.Time // when it was signed
}

// New returns the handler serving the layout of o's source.
func New(o *store.Objects, opt Options) *Handler {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	opt.Report = report.Or(opt.Report)
	return &Handler{o: o, src: o.Source(), opt: opt}
}

// Cache-Control values.
const (
	Immutable  = "public, max-age=31536000, immutable"
	IndexCache = "public, max-age=61"
)

// status records the response status and the bytes sent.
type status struct {
	http.ResponseWriter
	code int
	n    int64
}

func (s *status) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *status) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &status{ResponseWriter: w, code: http.StatusOK}
	h.opt.Report.Handles(1)
	h.serve(sw, r)
	h.opt.Report.Handles(-1)
	h.opt.Report.Request(strconv.Itoa(sw.code))
	h.opt.Report.Served(sw.n)
	h.opt.Log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.code, "ms", time.Since(start).Milliseconds())
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 read-only: allowed methods are GET, HEAD", http.StatusMethodNotAllowed)
		return
	}
	if h.opt.Auth != nil && !httpauth.Allow(w, r, h.opt.Auth, h.opt.Log) {
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
	if key == layout.IndexKey {
		h.index(w, r)
		return
	}
	kind, addr, err := layout.ParseKey(key)
	if err != nil {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	body, err := h.object(r, kind, addr)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", Immutable)
	w.Header().Set("ETag", `"`+hex.EncodeToString(addr[1:])+`"`)
	h.send(w, r, body)
}

// object encodes object addr of kind from the source.
func (h *Handler) object(r *http.Request, kind layout.Kind, addr [33]byte) ([]byte, error) {
	ctx := r.Context()
	switch kind {
	case layout.Chunk:
		f, err := h.src.Frame(ctx, addr)
		return layout.EncodeChunk(addr, f), err
	case layout.Listing:
		rec, _, err := layout.WholeRecord(ctx, h.o, addr) // as push publishes it
		return layout.EncodeListing(addr, rec), err
	case layout.ChunkList:
		f, err := h.src.ChunkList(ctx, addr)
		if err == nil && f.List == nil { // a one-chunk file is its chunk
			err = store.ErrNotFound
		}
		return layout.EncodeChunkList(addr, f), err
	case layout.Dict:
		d, err := h.src.Dict(ctx, addr)
		return layout.EncodeDict(addr, d), err
	case layout.Tree:
		return layout.BuildTree(ctx, h.o, addr)
	default:
		d, err := h.o.Dir(ctx, addr)
		if err == nil && !layout.HasPack(d) {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		return layout.BuildPack(ctx, h.o, addr, d, h.src.Frame)
	}
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	all, err := h.src.Roots(r.Context())
	if err == nil {
		all, err = layout.Select(all, h.opt.Roots)
	}
	var body []byte
	if err == nil {
		body, err = layout.EncodeIndex(all)
	}
	if err == nil && h.opt.Sign != nil {
		body, err = h.sign(all, body)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sum := sha256.Sum256(body)
	w.Header().Set("Cache-Control", IndexCache)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	h.send(w, r, body)
}

// sign returns the signed index of roots, whose unsigned index is plain:
// the one signed last if plain is the same, else a new one published
// later than it.
func (h *Handler) sign(roots []store.Root, plain []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.signed != nil && bytes.Equal(plain, h.plain) {
		return h.signed, nil
	}
	published := time.Now()
	if !published.After(h.published) {
		published = h.published.Add(time.Nanosecond)
	}
	b, err := layout.SignIndex(roots, published, h.opt.Sign)
	if err != nil {
		return nil, err
	}
	h.plain, h.signed, h.published = plain, b, published
	return b, nil
}

// send writes body with HEAD, Range and If-None-Match handled.
func (h *Handler) send(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if strings.HasSuffix(r.URL.Path, ".json") {
		w.Header().Set("Content-Type", "application/json")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	report.Failed(h.opt.Report, err)
	h.opt.Log.Error("request failed", "path", r.URL.Path, "err", err)
	http.Error(w, "500 internal error", http.StatusInternalServerError)
}
