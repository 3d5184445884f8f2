package standalone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/natsauth"
)

// Files (docs/protocol.md section 7), end to end: HTTP clients against the
// edge's listener, the object store of the embedded server, messaging's
// checks, the sweeper.

// heapPeak samples the process's heap until stop is called, and returns
// the peaks above where it started: of the heap in use (garbage not yet
// collected included) and of the live heap (what the last collection
// marked, runtime/metrics), which is what the process needs.
func heapPeak() (stop func() (inuse, live, base uint64)) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() (inuse, live uint64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		metrics.Read(sample)
		return ms.HeapInuse, sample[0].Value.Uint64()
	}
	baseInuse, baseLive := read()
	var peakInuse, peakLive atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			inuse, live := read()
			peakInuse.Store(max(peakInuse.Load(), inuse))
			peakLive.Store(max(peakLive.Load(), live))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	above := func(v, base uint64) uint64 {
		if v < base {
			return 0
		}
		return v - base
	}
	return func() (uint64, uint64, uint64) {
		close(done)
		wg.Wait()
		return above(peakInuse.Load(), baseInuse), above(peakLive.Load(), baseLive), baseInuse
	}
}

// A 24 MiB upload and its download go through the edge in chunks: the
// process's live heap (the edge, messaging and the embedded server
// together) grows by less than five sixths of the file either way (a copy
// of the file in memory would be more than all of it, with the server's
// block buffers), and the bytes come
// back whole, with the sha256 the upload reported. The first transfer
// warms the embedded server up (its store's block buffers, up to 8 MiB, are
// pooled and reused), then a second one of the same size is measured.
func TestFilesStreamedBoundedMemory(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	const size = 24 << 20
	for round, seed := range []byte{1, 2} {
		up, upTook, upInuse, upLive, base := measure(func() fileAck {
			gen := newGen(seed, size)
			resp := f.postFile(token("acme", "alice"), conv, "big.bin", "application/octet-stream", gen)
			up := decodeBody[fileAck](t, resp)
			if resp.StatusCode != http.StatusCreated || up.Size != size || up.SHA256 != gen.hex() {
				t.Fatalf("upload: %d %+v, want size %d sha256 %s", resp.StatusCode, up, size, gen.hex())
			}
			return up
		})
		_, downTook, downInuse, downLive, _ := measure(func() fileAck {
			get := f.getFile(token("acme", "bob"), up.FileID, nil)
			h := sha256.New()
			n, err := io.Copy(h, get.Body)
			if err != nil || get.StatusCode != http.StatusOK || n != size || hex.EncodeToString(h.Sum(nil)) != up.SHA256 {
				t.Fatalf("download: %d, %d bytes, %v", get.StatusCode, n, err)
			}
			if get.Header.Get("Content-Length") != fmt.Sprint(size) {
				t.Fatalf("Content-Length %q", get.Header.Get("Content-Length"))
			}
			return up
		})
		t.Logf("round %d, 24 MiB: upload %v, live heap peak +%.1f MiB (in use +%.1f MiB); download %v, live heap peak +%.1f MiB (in use +%.1f MiB); heap in use before: %.1f MiB",
			round+1, upTook.Round(time.Millisecond), mib(upLive), mib(upInuse), downTook.Round(time.Millisecond), mib(downLive), mib(downInuse), mib(base))
		if round == 0 {
			continue
		}
		// Most of what grows is the embedded server's: its store's block
		// buffers (8 MiB each, a block read stays cached for 10 s), which
		// an edge in a deployment does not share; the edge holds a few
		// chunks of 128 KiB. Alone this measured 8.5 to 11.2 MiB, after the
		// rest of the package under -race up to 16.4 MiB; a copy of the file
		// in the edge adds 24 MiB to that (41 MiB measured).
		for what, peak := range map[string]uint64{"upload": upLive, "download": downLive} {
			if peak > size*5/6 {
				t.Errorf("%s: live heap grew by %.1f MiB for a %d MiB file", what, mib(peak), size>>20)
			}
		}
	}
}

// measure runs fn under heapPeak, timing it.
func measure(fn func() fileAck) (up fileAck, took time.Duration, inuse, live, base uint64) {
	stop := heapPeak()
	began := time.Now()
	up = fn()
	took = time.Since(began)
	inuse, live, base = stop()
	return up, took, inuse, live, base
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// A download's headers: an image inline with its type, anything else an
// attachment with its name (RFC 6266, non-ASCII in filename*), and on both
// the ETag, private caching, nosniff and a policy that runs nothing;
// If-None-Match, ranges (206, a suffix, past the end 416).
func TestFilesDownloadHeaders(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create()
	tok := token("acme", "alice")
	png := f.upload(tok, conv, "dot.png", "image/png", "\x89PNG fake")
	html := f.upload(tok, conv, "résumé \"1\".html", "text/html; charset=utf-8", "<script>alert(1)</script>")

	common := func(t *testing.T, resp *http.Response, etag string) {
		t.Helper()
		for k, want := range map[string]string{
			"ETag": etag, "Cache-Control": "private", "X-Content-Type-Options": "nosniff",
			"Content-Security-Policy": "default-src 'none'",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
	}
	t.Run("inline image", func(t *testing.T) {
		resp := f.getFile(tok, png.FileID, nil)
		if b := status(t, resp, 200); string(b) != "\x89PNG fake" {
			t.Fatalf("body %q", b)
		}
		common(t, resp, `"`+png.SHA256+`"`)
		if resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Content-Disposition") != "inline" {
			t.Fatalf("type %q disposition %q", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
		}
	})
	t.Run("attachment", func(t *testing.T) {
		resp := f.getFile(tok, html.FileID, nil)
		status(t, resp, 200)
		common(t, resp, `"`+html.SHA256+`"`)
		want := `attachment; filename="r_sum_ _1_.html"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.html`
		if got := resp.Header.Get("Content-Disposition"); got != want {
			t.Fatalf("disposition %q, want %q", got, want)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Fatalf("type %q", got)
		}
	})
	t.Run("if-none-match", func(t *testing.T) {
		resp := f.getFile(tok, png.FileID, map[string]string{"If-None-Match": `"` + png.SHA256 + `"`})
		if b := status(t, resp, http.StatusNotModified); len(b) != 0 {
			t.Fatalf("304 with a body %q", b)
		}
		status(t, f.getFile(tok, png.FileID, map[string]string{"If-None-Match": `"other"`}), 200)
	})
	t.Run("ranges", func(t *testing.T) {
		body := "<script>alert(1)</script>"
		for _, c := range []struct {
			rng, want, contentRange string
			code                    int
		}{
			{"bytes=0-7", body[:8], "bytes 0-7/25", 206},
			{"bytes=8-", body[8:], "bytes 8-24/25", 206},
			{"bytes=-9", body[16:], "bytes 16-24/25", 206},
			{"bytes=20-100", body[20:], "bytes 20-24/25", 206},
			{"bytes=0-1,4-5", body, "", 200}, // several ranges: the whole file
			{"bytes=25-", "", "bytes */25", 416},
		} {
			resp := f.getFile(tok, html.FileID, map[string]string{"Range": c.rng})
			b := status(t, resp, c.code)
			if c.code != 416 && string(b) != c.want {
				t.Errorf("%s: %q, want %q", c.rng, b, c.want)
			}
			if got := resp.Header.Get("Content-Range"); got != c.contentRange {
				t.Errorf("%s: Content-Range %q, want %q", c.rng, got, c.contentRange)
			}
			if c.code != 416 && resp.Header.Get("Content-Length") != fmt.Sprint(len(c.want)) {
				t.Errorf("%s: Content-Length %q", c.rng, resp.Header.Get("Content-Length"))
			}
		}
	})
}

// Range over a file of many chunks: the bytes of the middle of the third
// chunk to the first of the fifth are those uploaded.
func TestFilesRangeAcrossChunks(t *testing.T) {
	f := start(t)
	conv := f.dial("acme", "alice").create()
	tok := token("acme", "alice")
	const chunk = 128 << 10
	var b strings.Builder
	for i := range 5*chunk + 100 {
		b.WriteByte(byte('a' + i%26 + i/chunk))
	}
	content := b.String()
	up := f.upload(tok, conv, "abc.txt", "text/plain", content)
	from, to := 2*chunk+chunk/2, 4*chunk
	resp := f.getFile(tok, up.FileID, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", from, to)})
	if got := status(t, resp, 206); string(got) != content[from:to+1] {
		t.Fatalf("range of %d bytes: got %d bytes, differing", to-from+1, len(got))
	}
}

// Who may not: without a token or with a bad one 401 (JSON, for POST and
// GET alike); a non-participant's download, another organization's, and
// an id that does not exist get one and the same 404; an upload to a
// conversation the caller is not in is 404 like one that does not exist;
// bad names and types are 400.
func TestFilesAccess(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	up := f.upload(token("acme", "alice"), conv, "a.txt", "", "secret")
	if up.ContentType != "application/octet-stream" || up.Name != "a.txt" || up.ConversationID != conv {
		t.Fatalf("upload %+v", up)
	}
	status(t, f.getFile(token("acme", "bob"), up.FileID, nil), 200)

	t.Run("401", func(t *testing.T) {
		for _, tok := range []string{"", "not-a-jwt", token("acme", "alice") + "x"} {
			errorCode(t, f.getFile(tok, up.FileID, nil), 401, "unauthenticated")
			errorCode(t, f.postFile(tok, conv, "x", "", strings.NewReader("x")), 401, "unauthenticated")
		}
		// The query's access_token works as the header does.
		resp, err := http.Get(f.httpURL("/files/" + up.FileID + "?access_token=" + token("acme", "bob")))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		status(t, resp, 200)
	})
	t.Run("404 alike", func(t *testing.T) {
		var bodies []string
		for _, c := range []struct{ org, user, id string }{
			{"acme", "carol", up.FileID},     // not a participant
			{"other", "alice", up.FileID},    // another org, same user name
			{"acme", "bob", files.NewID()},   // no such file
			{"acme", "bob", "not%20an%20id"}, // not an id
		} {
			resp := f.getFile(token(c.org, c.user), c.id, nil)
			b := status(t, resp, 404)
			bodies = append(bodies, string(b))
		}
		for _, b := range bodies[1:] {
			if b != bodies[0] {
				t.Fatalf("404 bodies differ: %q", bodies)
			}
		}
		e1 := errorCode(t, f.postFile(token("acme", "carol"), conv, "x", "", strings.NewReader("x")), 404, "not_found")
		e2 := errorCode(t, f.postFile(token("acme", "carol"), "nosuchconv", "x", "", strings.NewReader("x")), 404, "not_found")
		e3 := errorCode(t, f.postFile(token("other", "alice"), conv, "x", "", strings.NewReader("x")), 404, "not_found")
		if e1 != e2 || e2 != e3 {
			t.Fatalf("upload 404s differ: %+v %+v %+v", e1, e2, e3)
		}
	})
	t.Run("400", func(t *testing.T) {
		tok := token("acme", "alice")
		for _, name := range []string{"a/b", `a\b`, "a\x01b", "a\u0085b", strings.Repeat("x", 256), "\xff"} {
			errorCode(t, f.postFile(tok, conv, name, "", strings.NewReader("x")), 400, "validation_failed")
		}
		errorCode(t, f.postFile(tok, conv, "x", "not a type", strings.NewReader("x")), 400, "validation_failed")
		errorCode(t, f.postFile(tok, "bad id!", "x", "", strings.NewReader("x")), 400, "validation_failed")
		f.upload(tok, conv, strings.Repeat("é", 127), "", "x") // 254 bytes
	})
}

// chatFilesMsgs is how many messages chat_files' stream holds.
func chatFilesMsgs(t *testing.T, f *fixture) uint64 {
	t.Helper()
	js, err := jetstream.New(f.natsAs(natsauth.Admin))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), files.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A body over the limit gets 413, with Content-Length before anything is
// read and chunked once it grows past it, and nothing is stored: the
// bucket's stream holds no message after either.
func TestFilesTooLarge(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.MaxFileBytes = 1 << 20 })
	conv := f.dial("acme", "alice").create()
	tok := token("acme", "alice")
	errorCode(t, f.postFile(tok, conv, "big", "", strings.NewReader(strings.Repeat("x", 1<<20+1))), 413, "validation_failed")
	// Chunked (a reader of unknown length): 3 MiB, refused after 1 MiB.
	errorCode(t, f.postFile(tok, conv, "big", "", io.LimitReader(newGen(2, 3<<20), 3<<20)), 413, "validation_failed")
	if n := chatFilesMsgs(t, f); n != 0 {
		t.Fatalf("chat_files holds %d messages after refused uploads", n)
	}
	up := f.upload(tok, conv, "max", "", strings.Repeat("y", 1<<20)) // exactly the limit
	if up.Size != 1<<20 {
		t.Fatalf("size %d", up.Size)
	}
}

// Uploads have their own bucket: past it, 429 with Retry-After, and the
// upload is not stored.
func TestFilesRateLimited(t *testing.T) {
	set, err := limits.Parse(generous(), "file:upload=2/1m")
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, func(c *Config) { c.Edge.Limits = set })
	conv := f.dial("acme", "alice").create()
	tok := token("acme", "alice")
	f.upload(tok, conv, "1", "", "1")
	f.upload(tok, conv, "2", "", "2")
	before := chatFilesMsgs(t, f)
	resp := f.postFile(tok, conv, "3", "", strings.NewReader("3"))
	errorCode(t, resp, 429, "rate_limited")
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if n := chatFilesMsgs(t, f); n != before {
		t.Fatalf("a refused upload stored %d messages", n-before)
	}
}
