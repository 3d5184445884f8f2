package standalone

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Helpers of the files tests (files_test.go): HTTP requests to /files as a
// client makes them, and bodies generated as they are read.

// fileAck is the 201 body of an upload.
type fileAck struct {
	FileID         string `json:"fileId"`
	ConversationID string `json:"conversationId"`
	Name           string `json:"name"`
	Size           uint64 `json:"size"`
	ContentType    string `json:"contentType"`
	SHA256         string `json:"sha256"`
	CreatedAt      string `json:"createdAt"`
}

// httpError is the body of an error answer.
type httpError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// httpURL is the system's edge over HTTP.
func (f *fixture) httpURL(path string) string { return "http://" + f.sys.Addr() + path }

// postFile uploads body as user tok (empty: no token) to conv. A body of
// known length (a *strings.Reader) is sent with Content-Length, any other
// chunked.
func (f *fixture) postFile(tok, conv, name, contentType string, body io.Reader) *http.Response {
	f.t.Helper()
	q := url.Values{"conversationId": {conv}}
	if name != "" {
		q.Set("name", name)
	}
	req, err := http.NewRequest(http.MethodPost, f.httpURL("/files?"+q.Encode()), body)
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("POST /files: %v", err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// upload uploads content and returns the 201 body, failing on anything else.
func (f *fixture) upload(tok, conv, name, contentType, content string) fileAck {
	f.t.Helper()
	resp := f.postFile(tok, conv, name, contentType, strings.NewReader(content))
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	return decodeBody[fileAck](f.t, resp)
}

// getFile downloads fileID as tok (its query access_token when
// viaQuery), with extra request headers.
func (f *fixture) getFile(tok, fileID string, header map[string]string) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.httpURL("/files/"+fileID), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("GET /files: %v", err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// status asserts a response's status and returns its body.
func status(t *testing.T, resp *http.Response, want int) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d (%s), want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, b, want)
	}
	return b
}

// errorCode asserts an error answer's status and JSON code.
func errorCode(t *testing.T, resp *http.Response, want int, code string) httpError {
	t.Helper()
	b := status(t, resp, want)
	var e httpError
	if err := json.Unmarshal(b, &e); err != nil || e.Code != code || e.Message == "" {
		t.Fatalf("%s: body %s, want code %s and a message", resp.Request.URL.Path, b, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	return e
}

func decodeBody[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

// genReader is n pseudo-random bytes of seed, made as they are read (a
// body of any size costs no memory), hashing what it gives.
type genReader struct {
	rng  *rand.ChaCha8
	left int64
	sum  hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newGen(seed byte, n int64) *genReader {
	var s [32]byte
	s[0] = seed
	return &genReader{rng: rand.NewChaCha8(s), left: n, sum: sha256.New()}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	_, _ = g.rng.Read(p)
	g.sum.Write(p)
	g.left -= int64(len(p))
	return len(p), nil
}

func (g *genReader) hex() string { return hex.EncodeToString(g.sum.Sum(nil)) }
