package edge

import (
	"embed"
	"io/fs"
	"net/http"
)

// The browser app (app/): plain HTML, CSS and JavaScript on the JSON
// protocol, embedded in the binary and served at / (index.html) and
// /app/ (its files). It needs nothing from the network but this edge.

//go:embed app
var appFiles embed.FS

// appCSP lets the page load its own files, talk to this edge's /ws and
// /files, and show images it fetched itself (blob: URLs; see files.js).
const appCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// serveApp registers the app's routes on mux.
func serveApp(mux *http.ServeMux) {
	dir, err := fs.Sub(appFiles, "app")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	files := http.StripPrefix("/app/", http.FileServerFS(dir))
	mux.Handle("GET /app/", appHeaders(files))
	mux.Handle("GET /{$}", appHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, dir, "index.html")
	})))
}

func appHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", appCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
