// Package httpauth guards the HTTP frontends (WebDAV and the layout
// server) with basic auth: one place that asks a password checker and
// answers 401 or 503.
package httpauth

import (
	"context"
	"log/slog"
	"net/http"
)

// Checker checks basic credentials (webdav.Htpasswd is one). An error
// means the check could not be made, such as no bcrypt slot in time.
type Checker interface {
	Check(ctx context.Context, user, password string) (bool, error)
}

// Allow reports whether request r may go on. Otherwise it has answered:
// 401 with a challenge for missing or wrong credentials, 503 with
// Retry-After when the check could not be made.
func Allow(w http.ResponseWriter, r *http.Request, c Checker, log *slog.Logger) bool {
	user, pass, ok := r.BasicAuth()
	if ok {
		var err error
		if ok, err = c.Check(r.Context(), user, pass); err != nil {
			log.Warn("http: password check not made", "method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "503 too many password checks at once; retry later", http.StatusServiceUnavailable)
			return false
		}
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="spraydryfs", charset="UTF-8"`)
		http.Error(w, "401 authentication required", http.StatusUnauthorized)
	}
	return ok
}
