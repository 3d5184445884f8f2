package files

import (
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes bounds a file's name, MaxTypeBytes its content type.
const (
	MaxNameBytes = 255
	MaxTypeBytes = 255
)

// DefaultContentType is the type of an upload without Content-Type.
const DefaultContentType = "application/octet-stream"

// CheckName says what is wrong with a file name, "" when nothing: at most
// MaxNameBytes of UTF-8, no control characters, no slashes (a name never
// names a directory, on any system). An empty name is allowed.
func CheckName(name string) string {
	switch {
	case len(name) > MaxNameBytes:
		return fmt.Sprintf("must be at most %d bytes", MaxNameBytes)
	case !utf8.ValidString(name):
		return "must be valid UTF-8"
	case strings.ContainsAny(name, `/\`):
		return "must not contain slashes"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

// ContentType normalizes an upload's Content-Type header (absent:
// DefaultContentType), or says why it is refused.
func ContentType(header string) (string, string) {
	if strings.TrimSpace(header) == "" {
		return DefaultContentType, ""
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil || !strings.Contains(mt, "/") {
		return "", "must be a media type (type/subtype)"
	}
	out := mime.FormatMediaType(mt, params)
	if out == "" || len(out) > MaxTypeBytes {
		return "", fmt.Sprintf("must be a media type of at most %d bytes", MaxTypeBytes)
	}
	return out, ""
}

// inlineTypes are served inline: images that browsers render without
// running anything (never SVG, which may hold scripts).
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// Inline reports whether a content type is served inline, and the type to
// serve it with.
func Inline(contentType string) (string, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && inlineTypes[mt] {
		return mt, true
	}
	return "", false
}
