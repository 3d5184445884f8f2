package standalone

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// The public listener serves /ws, /socket.io/, the browser app (/ and
// /app/), /healthz and /readyz only: the metrics, whose connection gauge
// names every organization connected, are on their own listener.
func TestMetricsOnlyOnTheirListener(t *testing.T) {
	f := start(t, func(c *Config) { c.MetricsListen = "127.0.0.1:0" })
	f.dial("acme", "alice")
	public, metrics := "http://"+f.sys.Addr(), "http://"+f.sys.MetricsAddr()
	if public == metrics {
		t.Fatalf("one listener for both: %s", public)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/index.html", "/app/../metrics"} {
		if code, _ := httpGet(t, public+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the public listener: %d, want 404", path, code)
		}
	}
	if code, body := httpGet(t, public+"/"); code != http.StatusOK || !strings.Contains(body, "<title>Switchboard</title>") {
		t.Errorf("GET / on the public listener: %d, want the app", code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, public+path); code != http.StatusOK {
			t.Errorf("GET %s on the public listener: %d %q", path, code, body)
		}
		if code, body := httpGet(t, metrics+path); code != http.StatusOK {
			t.Errorf("GET %s on the metrics listener: %d %q", path, code, body)
		}
	}
	code, body := httpGet(t, metrics+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics on the metrics listener: %d", code)
	}
	// One registry: the edge's per-organization gauge and the services'
	// metrics side by side.
	for _, want := range []string{`switchboard_edge_connections{org="acme"} 1`, "switchboard_presence_connections", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Without MetricsListen there is no metrics listener.
func TestNoMetricsListenerByDefault(t *testing.T) {
	f := start(t)
	if a := f.sys.MetricsAddr(); a != "" {
		t.Fatalf("a metrics listener at %s without MetricsListen", a)
	}
	if code, _ := httpGet(t, "http://"+f.sys.Addr()+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public listener: %d, want 404", code)
	}
}
