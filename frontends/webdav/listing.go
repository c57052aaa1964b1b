package webdav

import (
	"bufio"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// listingHead is the page's start; %s are the escaped title, then the
// breadcrumb.
const listingHead = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of %s</title>
<style>
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.3em;font-weight:600;word-break:break-all}
table{border-collapse:collapse;width:100%%}
th,td{padding:.25em .75em;text-align:left;border-bottom:1px solid #e4e4e4}
th{font-weight:600;color:#555}
td.size,th.size{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.date{white-space:nowrap;color:#555;font-variant-numeric:tabular-nums}
a{color:#0645ad;text-decoration:none;word-break:break-all}a:hover{text-decoration:underline}
tr:hover td{background:#f6f8fa}
footer{margin-top:1.5em;color:#888;font-size:.85em}
</style></head>
<body>
<h1>Index of %s</h1>
<table>
<thead><tr><th>Name</th><th class="size">Size</th><th>Modified (UTC)</th></tr></thead>
<tbody>
`

// listing writes a collection's HTML index: a breadcrumb of links to
// every ancestor, a parent link, then the subdirectories and then the
// files, each with its size and date, names escaped. A symlink (such as
// latest) is shown as "name → target" with a link to its target too.
func (h *Handler) listing(w *recorder, r *http.Request, p string, dir *backend.Node) {
	if dir.Size > h.bigEntries {
		release, ok := h.bigSlot(w, r)
		if !ok {
			return
		}
		defer release()
	}
	ns, err := h.fs.children(r.Context(), splitClean(p), dir)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	raw, err := h.fs.v.ReadDir(r.Context(), dir) // children shows symlinks as their targets
	if err != nil {
		h.fail(w, r, err)
		return
	}
	targets := map[string]string{}
	for _, n := range raw {
		if n.Type == tree.TypeSymlink {
			targets[n.Name] = n.Target
		}
	}
	slices.SortStableFunc(ns, func(a, b *backend.Node) int {
		switch {
		case a.IsDir() == b.IsDir():
			return 0
		case a.IsDir():
			return -1
		}
		return 1
	})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	hdr.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, listingHead, escapeName(p), breadcrumb(p))
	if p != "/" {
		bw.WriteString(`<tr><td><a href="../">../</a></td><td class="size">—</td><td class="date"></td></tr>` + "\n")
	}
	for _, n := range ns {
		name, href, size := n.Name, url.PathEscape(n.Name), humanSize(n.Size)
		if n.IsDir() {
			name, href, size = name+"/", href+"/", "—"
		}
		link := ""
		if target, ok := targets[n.Name]; ok {
			thref := escapePath(target)
			if n.IsDir() {
				thref += "/"
			}
			link = fmt.Sprintf(` → <a href="./%s">%s</a>`, html.EscapeString(thref), escapeName(target))
		}
		// PathEscape leaves ':' alone; "./" keeps a name like "a:b" from
		// reading as a URL scheme.
		fmt.Fprintf(bw, "<tr><td><a href=\"./%s\">%s</a>%s</td><td class=\"size\">%s</td><td class=\"date\">%s</td></tr>\n",
			html.EscapeString(href), escapeName(name), link, size,
			time.Unix(0, n.MTime).UTC().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintf(bw, "</tbody></table>\n<footer>%d entries · SprayDryFS, read-only</footer>\n</body></html>\n", len(ns))
	if err := bw.Flush(); err != nil {
		h.log.Debug("webdav: listing", "path", p, "err", err)
	}
}

// escapeName makes a stored name (any bytes) safe to show in HTML.
func escapeName(s string) string { return html.EscapeString(strings.ToValidUTF8(s, "\uFFFD")) }

// escapePath escapes each segment of a slash-separated path for a URL.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// breadcrumb is collection path p as links to each ancestor, relative to
// p itself (so the page works under any prefix): "/" first, then every
// name but the last, which is plain text.
func breadcrumb(p string) string {
	parts := splitClean(p)
	up := func(n int) string { return strings.Repeat("../", n) }
	if len(parts) == 0 {
		return "/"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<a href="%s">/</a>`, up(len(parts)))
	for i, name := range parts[:len(parts)-1] {
		fmt.Fprintf(&b, `<a href="%s">%s</a>/`, up(len(parts)-1-i), escapeName(name))
	}
	b.WriteString(escapeName(parts[len(parts)-1]) + "/")
	return b.String()
}

// humanSize formats a byte count for people (KiB, MiB, … with one decimal).
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, units := float64(n), []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
