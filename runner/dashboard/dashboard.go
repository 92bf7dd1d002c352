// Package dashboard holds the runner's web dashboard: plain HTML, CSS and
// JavaScript (no build step, no CDN, works offline), embedded into the
// binary with go:embed and served at / by the API server.
//
// It owns only static assets. Everything the page shows comes from the
// REST API under /api/v1 (see runner/api); it must not read runner state
// any other way.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// FS returns the dashboard's files (index.html, app.js, style.css, ...).
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embedded tree is fixed at build time; a missing directory
		// is a build error, not an input error.
		panic("dashboard: embedded static directory missing: " + err.Error())
	}
	return sub
}

// Handler serves the dashboard. Unknown paths that are not files get
// index.html, so deep links into the single-page app work.
func Handler() http.Handler {
	files := FS()
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		p := strings.TrimPrefix(r.URL.Path, "/")
		if p == "" {
			p = "index.html"
		}
		if _, err := fs.Stat(files, p); err != nil {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			p = "index.html"
			r = r2
		}
		if p == "index.html" {
			w.Header().Set("Cache-Control", "no-cache")
		}
		fileServer.ServeHTTP(w, r)
	})
}
