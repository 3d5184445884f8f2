package standalone

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
)

// Helpers of the protocol conformance tests (protocol_*_test.go).

// claimsFor are valid claims for user of org, expiring after ttl.
func claimsFor(org, user string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": user, "org": org, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
}

// mintJWT signs claims with method and key.
func mintJWT(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// mintHS signs claims with the fixture's secret.
func mintHS(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	return mintJWT(t, jwt.SigningMethodHS256, secret, c)
}

// unsignedJWT is an alg "none" token, made by hand.
func unsignedJWT(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(body) + "."
}

// expOf is a token's exp claim as a time.
func expOf(c jwt.MapClaims) time.Time {
	switch v := c["exp"].(type) {
	case int64:
		return time.Unix(v, 0)
	case float64:
		return time.Unix(int64(v), 0)
	}
	return time.Time{}
}

// rfc3339ms is the wire format of times: RFC 3339, UTC, milliseconds.
func rfc3339ms(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// bearerHeader is an Authorization header with tok.
func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// dialRaw dials the fixture's endpoint with opts (query appended to the
// URL when not empty) and returns what wsclient returns.
func (f *fixture) dialRaw(query string, opts wsclient.Options) (*wsclient.Client, error) {
	f.t.Helper()
	u := f.url
	if query != "" {
		u += "?" + query
	}
	if opts.Timeout == 0 {
		opts.Timeout = wait
	}
	c, err := wsclient.Dial(context.Background(), u, opts)
	if err == nil {
		f.t.Cleanup(c.Kill)
	}
	return c, err
}

// sessionJSON is the session event's data.
type sessionJSON struct {
	UserID       string `json:"userId"`
	OrgID        string `json:"orgId"`
	ConnectionID string `json:"connectionId"`
	ExpiresAt    string `json:"expiresAt"`
	Limits       map[string]struct {
		Capacity        *float64 `json:"capacity"`
		RefillPerSecond *float64 `json:"refillPerSecond"`
	} `json:"limits"`
}

// accepted wraps a connection that must have been accepted: it takes the
// session event (which must be the first frame) and returns its data.
func (f *fixture) accepted(c *wsclient.Client, err error) (*client, sessionJSON) {
	f.t.Helper()
	name := "conn"
	if err != nil {
		f.t.Fatalf("%s: dial: %v", name, err)
	}
	first, err := c.Wait(wait, func(wsclient.Frame) bool { return true })
	if err != nil {
		f.t.Fatalf("%s: no first frame: %v", name, err)
	}
	if first.Type != "session" || first.ID != "" {
		f.t.Fatalf("%s: first frame is %s, want a session event", name, first)
	}
	s := decode[sessionJSON](f.t, first.Data)
	return &client{Client: c, f: f, name: s.OrgID + "/" + s.UserID}, s
}

// refusedWith asserts an upgrade refused with HTTP status.
func refusedWith(t *testing.T, c *wsclient.Client, err error, status int) {
	t.Helper()
	var se wsclient.StatusError
	if !errors.As(err, &se) {
		if c != nil {
			c.Kill()
		}
		t.Fatalf("upgrade: got %v, want HTTP %d", err, status)
	}
	if int(se) != status {
		t.Fatalf("upgrade refused with HTTP %d, want %d", int(se), status)
	}
}

// closedWith asserts that the server closes c with code, soon.
func closedWith(t *testing.T, c *wsclient.Client, code int) {
	t.Helper()
	got, reason, err := c.CloseCode(wait)
	if err != nil {
		t.Fatalf("connection still open %v after the fault; want close %d (queued: %v)", wait, code, c.Pending())
	}
	if got != code {
		t.Fatalf("closed with %d %q, want %d", got, reason, code)
	}
}

// stillServes asserts that c gets an ack for a command.
func (c *client) stillServes() {
	c.f.t.Helper()
	c.do("conversation:list", map[string]any{})
}

// errData is an error reply's data.
type errData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fields  []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"fields"`
	RetryAfterMs *int64 `json:"retryAfterMs"`
}

// wantError asserts that r is an error reply of type typ with code.
func wantError(t *testing.T, r wsclient.Frame, typ, code string) errData {
	t.Helper()
	var d errData
	if err := r.Decode(&d); err != nil || r.Type != typ || d.Code != code {
		t.Fatalf("got %s, want %s with code %s", r, typ, code)
	}
	if d.Message == "" {
		t.Fatalf("%s without a message: %s", typ, r)
	}
	return d
}

// maskedFrame is a client frame (masked) of op with payload.
func maskedFrame(op ws.OpCode, fin bool, payload []byte) ws.Frame {
	return ws.MaskFrame(ws.NewFrame(op, fin, payload))
}

// wireConn is a WebSocket client made by hand on a raw TCP connection: it
// reads only when told (a slow client, a client that does not answer
// pings) and shows every frame as it came.
type wireConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

type wireFrame struct {
	op      ws.OpCode
	fin     bool
	payload []byte
}

func (w wireFrame) closeCode() int {
	if len(w.payload) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(w.payload))
}

// dialWire connects to addr and upgrades by hand with tok. With rcvBuf > 0
// the socket's receive buffer is set before connecting, so that a client
// that does not read fills it quickly.
func dialWire(t *testing.T, addr, tok string, rcvBuf int) *wireConn {
	t.Helper()
	d := net.Dialer{Timeout: wait}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	_ = nc.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatalf("write upgrade: %v", err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	_ = resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("upgrade: %s %v", resp.Status, resp.Header)
	}
	_ = nc.SetDeadline(time.Time{})
	return &wireConn{t: t, nc: nc, br: br}
}

// write sends one masked frame.
func (w *wireConn) write(op ws.OpCode, fin bool, payload []byte) {
	w.t.Helper()
	_ = w.nc.SetWriteDeadline(time.Now().Add(wait))
	if err := ws.WriteFrame(w.nc, maskedFrame(op, fin, payload)); err != nil {
		w.t.Fatalf("write frame: %v", err)
	}
}

// command sends a command as a text frame.
func (w *wireConn) command(id, typ string, data any) {
	w.t.Helper()
	m := map[string]any{"type": typ}
	if id != "" {
		m["id"] = id
	}
	if data != nil {
		m["data"] = data
	}
	b, _ := json.Marshal(m)
	w.write(ws.OpText, true, b)
}

// read returns the next frame, waiting until deadline.
func (w *wireConn) read(deadline time.Time) (wireFrame, error) {
	_ = w.nc.SetReadDeadline(deadline)
	h, err := ws.ReadHeader(w.br)
	if err != nil {
		return wireFrame{}, err
	}
	if h.Masked {
		return wireFrame{}, fmt.Errorf("server frame is masked")
	}
	if h.Length > 1<<20 {
		return wireFrame{}, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(w.br, p); err != nil {
		return wireFrame{}, err
	}
	return wireFrame{op: h.OpCode, fin: h.Fin, payload: p}, nil
}

// until reads frames until match is true, for at most d; it returns the
// frames skipped.
func (w *wireConn) until(d time.Duration, what string, match func(wireFrame) bool) (wireFrame, []wireFrame) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	var skipped []wireFrame
	for {
		f, err := w.read(deadline)
		if err != nil {
			w.t.Fatalf("waiting for %s: %v (after %d frames)", what, err, len(skipped))
		}
		if match(f) {
			return f, skipped
		}
		skipped = append(skipped, f)
	}
}

// reply waits for the text frame that replies to command id.
func (w *wireConn) reply(id string) wsclient.Frame {
	w.t.Helper()
	var out wsclient.Frame
	w.until(wait, "reply "+id, func(f wireFrame) bool {
		if f.op != ws.OpText || json.Unmarshal(f.payload, &out) != nil {
			return false
		}
		return out.ID == id
	})
	return out
}

// textType is a text frame's type, "" for anything else.
func textType(f wireFrame) string {
	var v struct {
		Type string `json:"type"`
	}
	if f.op != ws.OpText || json.Unmarshal(f.payload, &v) != nil {
		return ""
	}
	return v.Type
}

// isEOF reports whether err is the end of the connection.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "connection reset")
}
