package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/files"
)

func TestRequestedRange(t *testing.T) {
	f := &files.File{Size: 100, SHA256: "abc"}
	for _, c := range []struct {
		rng, ifRange  string
		start, length uint64
		status        int
	}{
		{"", "", 0, 100, 200},
		{"bytes=0-9", "", 0, 10, 206},
		{"bytes=90-", "", 90, 10, 206},
		{"bytes=-5", "", 95, 5, 206},
		{"bytes=-500", "", 0, 100, 206},
		{"bytes=50-1000", "", 50, 50, 206},
		{"bytes=100-", "", 0, 0, 416},
		{"bytes=-0", "", 0, 0, 416},
		{"bytes=9-3", "", 0, 100, 200},
		{"bytes=0-1,5-6", "", 0, 100, 200},
		{"items=0-1", "", 0, 100, 200},
		{"bytes=x-", "", 0, 100, 200},
		{"bytes=0-9", `"abc"`, 0, 10, 206},
		{"bytes=0-9", `"old"`, 0, 100, 200},
	} {
		r := httptest.NewRequest(http.MethodGet, "/files/x", nil)
		if c.rng != "" {
			r.Header.Set("Range", c.rng)
		}
		if c.ifRange != "" {
			r.Header.Set("If-Range", c.ifRange)
		}
		got, status := requestedRange(r, f)
		if status != c.status || (status != 416 && (got.start != c.start || got.length != c.length)) {
			t.Errorf("%q (If-Range %q): %+v %d, want %d+%d %d", c.rng, c.ifRange, got, status, c.start, c.length, c.status)
		}
	}
	if _, status := requestedRange(rangeReq("bytes=0-"), &files.File{Size: 0}); status != 416 {
		t.Errorf("range of an empty file: %d", status)
	}
}

func rangeReq(h string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/files/x", nil)
	r.Header.Set("Range", h)
	return r
}

func TestAttachmentDisposition(t *testing.T) {
	for name, want := range map[string]string{
		"a.txt":         `attachment; filename="a.txt"; filename*=UTF-8''a.txt`,
		"日本 \"x\"%.pdf": `attachment; filename="__ _x__.pdf"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%22x%22%25.pdf`,
	} {
		if got := attachment(name); got != want {
			t.Errorf("%q: %s, want %s", name, got, want)
		}
	}
	if !etagMatch(`W/"a", "b"`, `"a"`) || !etagMatch("*", `"a"`) || etagMatch(`"b"`, `"a"`) {
		t.Error("etagMatch")
	}
}
