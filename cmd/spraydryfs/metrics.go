package main

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/spraydryfs/spraydryfs/backend/cache"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// metrics are a server's Prometheus metrics (--metrics): what each
// frontend reports (report.Reporter), the store's caches and chunk
// decoding (store.ReadStats), a remote store's local cache (cache.Stats),
// and Go's and the process's own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	served   *prometheus.CounterVec
	corrupt  *prometheus.CounterVec
	handles  *prometheus.GaugeVec
}

// registerMetrics adds --metrics to f.
func registerMetrics(f *pflag.FlagSet, addr *string) {
	f.StringVar(addr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (host:port)")
}

// newMetrics makes the metrics of a server reading s.
func newMetrics(s *readStore) *metrics {
	fe := []string{"frontend"}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spraydryfs_requests_total",
			Help: "Requests (HTTP) or operations (FUSE, 9P) answered, by frontend and status (HTTP status or errno name, OK for none)."}, []string{"frontend", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spraydryfs_request_errors_total",
			Help: "Requests answered with an error (HTTP status 400 and up, an errno), by frontend and status."}, []string{"frontend", "status"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spraydryfs_served_bytes_total",
			Help: "Bytes of content served (file data; for WebDAV and HTTP, response bodies), by frontend."}, fe),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spraydryfs_corruption_events_total",
			Help: "Errors from corrupt stored data (a chunk or listing failing verification) that reached a frontend."}, fe),
		handles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spraydryfs_open_handles",
			Help: "Open handles: FUSE file readers, 9P fids, WebDAV and HTTP requests in flight."}, fe),
	}
	m.reg.MustRegister(m.requests, m.errors, m.served, m.corrupt, m.handles, objectsCollector{s.Objects, s.cache},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// reporter is what frontend (a label value: webdav, 9p, http, fuse)
// reports through; nil without metrics. Its statuses are HTTP statuses
// if http, else errno names.
func (m *metrics) reporter(frontend string, http bool) report.Reporter {
	if m == nil {
		return nil
	}
	l := prometheus.Labels{"frontend": frontend}
	return &reporter{requests: m.requests.MustCurryWith(l), errors: m.errors.MustCurryWith(l),
		served: m.served.With(l), corrupt: m.corrupt.With(l), handles: m.handles.With(l), http: http}
}

// startMetrics makes the metrics of s and listens for their HTTP server
// (/metrics) if --metrics gave an address; else it returns nil, nil.
func (g *globals) startMetrics(cmd string, s *readStore) (*metrics, *frontend, error) {
	if g.metricsAddr == "" {
		return nil, nil, nil
	}
	m := newMetrics(s)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	f, err := (&httpFlags{}).frontend(cmd+" --metrics", "metrics", g.metricsAddr, mux, g.log)
	if err != nil {
		return nil, nil, err
	}
	f.where += "metrics"
	f.banner = "metrics at " + f.where
	return m, f, nil
}

// withMetrics is f followed by the metrics' frontend, if any.
func withMetrics(f, metrics *frontend) []*frontend {
	if metrics == nil {
		return []*frontend{f}
	}
	return []*frontend{f, metrics}
}

// reporter is one frontend's report.Reporter.
type reporter struct {
	requests, errors *prometheus.CounterVec
	served, corrupt  prometheus.Counter
	handles          prometheus.Gauge
	http             bool
}

// Request implements report.Reporter.
func (r *reporter) Request(status string) {
	r.requests.WithLabelValues(status).Inc()
	if code, err := strconv.Atoi(status); (r.http && (err != nil || code >= 400)) || (!r.http && status != "OK") {
		r.errors.WithLabelValues(status).Inc()
	}
}

// Served implements report.Reporter.
func (r *reporter) Served(n int64) { r.served.Add(float64(n)) }

// Corrupt implements report.Reporter.
func (r *reporter) Corrupt() { r.corrupt.Inc() }

// Handles implements report.Reporter.
func (r *reporter) Handles(delta int) { r.handles.Add(float64(delta)) }

// objectsCollector exports a store.Objects' Stats, and the Stats of the
// local cache of a remote store when there is one.
type objectsCollector struct {
	o *store.Objects
	c *cache.Cache // nil unless the store is a remote read through a cache
}

var (
	cacheHits   = prometheus.NewDesc("spraydryfs_cache_hits_total", "Cache hits by cache: chunk (decoded chunks), listing (directories), chunklist (files' chunk lists); disk (objects of a remote store read from the local cache).", []string{"cache"}, nil)
	cacheMisses = prometheus.NewDesc("spraydryfs_cache_misses_total", "Cache misses by cache (each a read from the store, decoded and verified; disk: an object fetched from the remote).", []string{"cache"}, nil)
	decodeTime  = prometheus.NewDesc("spraydryfs_chunk_decode_seconds", "Time to read, decode and verify a chunk missing from the cache (reference chains included).", nil, nil)
	diskRead    = prometheus.NewDesc("spraydryfs_disk_cache_read_bytes_total", "Bytes of remote objects read, by source: cache (the local cache) or remote.", []string{"source"}, nil)
	diskHeld    = prometheus.NewDesc("spraydryfs_disk_cache_bytes", "Bytes the local cache of the remote store holds (in 4 KiB blocks per object), as far as this process knows.", nil, nil)
	diskLimit   = prometheus.NewDesc("spraydryfs_disk_cache_limit_bytes", "The local cache's budget (--cache-size).", nil, nil)
	diskKept    = prometheus.NewDesc("spraydryfs_disk_cache_kept_total", "Verified objects written to the local cache.", nil, nil)
	diskEvicted = prometheus.NewDesc("spraydryfs_disk_cache_evicted_total", "Objects removed from the local cache to stay within its budget.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c objectsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHits
	ch <- cacheMisses
	ch <- decodeTime
	if c.c != nil {
		ch <- diskRead
		ch <- diskHeld
		ch <- diskLimit
		ch <- diskKept
		ch <- diskEvicted
	}
}

// Collect implements prometheus.Collector.
func (c objectsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.o.ReadStats()
	for _, k := range []struct {
		cache        string
		hits, misses int64
	}{{"chunk", st.ChunkHits, st.ChunkMisses}, {"listing", st.DirHits, st.DirMisses}, {"chunklist", st.FileHits, st.FileMisses}} {
		ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(k.hits), k.cache)
		ch <- prometheus.MustNewConstMetric(cacheMisses, prometheus.CounterValue, float64(k.misses), k.cache)
	}
	buckets := make(map[float64]uint64, len(store.DecodeBuckets))
	var n uint64
	for i, b := range store.DecodeBuckets {
		n += uint64(st.Decodes[i])
		buckets[b.Seconds()] = n
	}
	n += uint64(st.Decodes[len(store.DecodeBuckets)])
	ch <- prometheus.MustNewConstHistogram(decodeTime, n, st.DecodeTime.Seconds(), buckets)
	if c.c == nil {
		return
	}
	cs := c.c.Stats()
	ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(cs.Hits), "disk")
	ch <- prometheus.MustNewConstMetric(cacheMisses, prometheus.CounterValue, float64(cs.Misses), "disk")
	ch <- prometheus.MustNewConstMetric(diskRead, prometheus.CounterValue, float64(cs.HitBytes), "cache")
	ch <- prometheus.MustNewConstMetric(diskRead, prometheus.CounterValue, float64(cs.MissBytes), "remote")
	ch <- prometheus.MustNewConstMetric(diskHeld, prometheus.GaugeValue, float64(cs.Bytes))
	ch <- prometheus.MustNewConstMetric(diskLimit, prometheus.GaugeValue, float64(cs.Limit))
	ch <- prometheus.MustNewConstMetric(diskKept, prometheus.CounterValue, float64(cs.Kept))
	ch <- prometheus.MustNewConstMetric(diskEvicted, prometheus.CounterValue, float64(cs.Evicted))
}
