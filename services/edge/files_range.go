package edge

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/kit/files"
)

// The headers and ranges of a download (docs/protocol.md section 7).

// fileHeaders sets what every 200, 206 and 304 of a file carries: its
// ETag, private caching, no sniffing, a policy that runs nothing, and
// either an inline image type or an attachment disposition.
func fileHeaders(h http.Header, f *files.File) {
	h.Set("ETag", f.ETag())
	h.Set("Cache-Control", "private")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Accept-Ranges", "bytes")
	if typ, ok := files.Inline(f.ContentType); ok {
		h.Set("Content-Type", typ)
		h.Set("Content-Disposition", "inline")
		return
	}
	h.Set("Content-Type", f.ContentType)
	name := f.Name
	if name == "" {
		name = f.ID
	}
	h.Set("Content-Disposition", attachment(name))
}

// attachment is an RFC 6266 disposition: an ASCII filename for old
// clients and the exact UTF-8 name in filename* (RFC 5987).
func attachment(name string) string {
	return `attachment; filename="` + asciiName(name) + `"; filename*=UTF-8''` + extValue(name)
}

// extValue percent-encodes every byte of s that is not an attr-char of
// RFC 5987 (letters, digits and !#$&+-.^_`|~), so that no ';', ',', quote
// or space reaches the header's syntax.
func extValue(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// asciiName replaces what a quoted ASCII filename cannot hold with '_'.
func asciiName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// etagMatch reports whether an If-None-Match header names etag (or is *).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// byteRange is the part of a file a response carries.
type byteRange struct{ start, length uint64 }

func (r byteRange) contentRange(size uint64) string {
	return "bytes " + strconv.FormatUint(r.start, 10) + "-" + strconv.FormatUint(r.start+r.length-1, 10) + "/" + strconv.FormatUint(size, 10)
}

// requestedRange is the part of f a request asks for, with the status to
// answer: 200 and the whole file without a Range header, with one that is
// not a single byte range (several ranges, another unit: RFC 9110 lets a
// server ignore them) or an If-Range that is not f's ETag; 206 and the
// range; 416 for a range that starts past the end.
func requestedRange(r *http.Request, f *files.File) (byteRange, int) {
	whole := byteRange{0, f.Size}
	h := r.Header.Get("Range")
	if h == "" {
		return whole, http.StatusOK
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != f.ETag() {
		return whole, http.StatusOK
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return whole, http.StatusOK
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return whole, http.StatusOK
	}
	return parseRange(first, last, f.Size)
}

// parseRange is "first-last", "first-" or "-suffix" of a file of size.
func parseRange(first, last string, size uint64) (byteRange, int) {
	whole := byteRange{0, size}
	if first == "" { // the last n bytes
		n, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return whole, http.StatusOK
		}
		if n == 0 || size == 0 {
			return byteRange{}, http.StatusRequestedRangeNotSatisfiable
		}
		n = min(n, size)
		return byteRange{size - n, n}, http.StatusPartialContent
	}
	start, err := strconv.ParseUint(first, 10, 64)
	if err != nil {
		return whole, http.StatusOK
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseUint(last, 10, 64); err != nil || end < start {
			return whole, http.StatusOK
		}
		end = min(end, size-1)
	}
	if start >= size {
		return byteRange{}, http.StatusRequestedRangeNotSatisfiable
	}
	return byteRange{start, end - start + 1}, http.StatusPartialContent
}
