package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestAppModules checks that the app's page and every module it imports
// are served, as JavaScript, under the page's CSP: a module missing from
// the embed, or served with another type, stops the whole app in the
// browser.
func TestAppModules(t *testing.T) {
	mux := http.NewServeMux()
	serveApp(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	page := getAppFile(t, srv.URL+"/", "text/html")
	entry := regexp.MustCompile(`<script type="module" src="(/app/[a-z]+\.js)"></script>`).FindStringSubmatch(page)
	if entry == nil {
		t.Fatal("the page loads no module")
	}
	imports := regexp.MustCompile(`from "\./([a-z]+\.js)"`)
	seen := map[string]bool{}
	todo := []string{entry[1]}
	for len(todo) > 0 {
		path := todo[0]
		todo = todo[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		for _, m := range imports.FindAllStringSubmatch(getAppFile(t, srv.URL+path, "text/javascript"), -1) {
			todo = append(todo, "/app/"+m[1])
		}
	}
	if len(seen) < 8 {
		t.Fatalf("the app has %d modules, want its 8 or more: %v", len(seen), seen)
	}
}

// getAppFile fetches url and checks its status, type and security headers.
func getAppFile(t *testing.T, url, contentType string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, contentType) {
		t.Fatalf("GET %s: Content-Type %q, want %s", url, ct, contentType)
	}
	if csp := res.Header.Get("Content-Security-Policy"); csp != appCSP {
		t.Fatalf("GET %s: CSP %q", url, csp)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET %s: no nosniff", url)
	}
	return string(body)
}
