package standalone

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Helpers of the Socket.IO tests (socketio_test.go): a Socket.IO client
// made by hand on raw frames, so that every packet is seen as it came.

// sioConn is one Socket.IO session over a wireConn.
type sioConn struct {
	*wireConn
	name     string
	acks     int
	autoPong bool // answer Engine.IO pings (2) with 3 while reading
	pings    int  // pings seen
	sid      string
	session  sessionJSON
}

// upgrade sends a WebSocket upgrade for target (path and query) and
// returns the connection when it is accepted, else the response and its
// body.
func upgrade(t *testing.T, addr, target string, header http.Header) (*wireConn, *http.Response, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	var k [16]byte
	_, _ = rand.Read(k[:])
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", target, addr)
	fmt.Fprintf(&req, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", base64.StdEncoding.EncodeToString(k[:]))
	for name, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&req, "%s: %s\r\n", name, v)
		}
	}
	req.WriteString("\r\n")
	_ = nc.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(nc, req.String()); err != nil {
		t.Fatalf("write upgrade: %v", err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return nil, resp, string(body)
	}
	_ = nc.SetDeadline(time.Time{})
	return &wireConn{t: t, nc: nc, br: br}, resp, ""
}

// dialSIO opens a Socket.IO session (not yet connected) and checks its
// open packet.
func (f *fixture) dialSIO() *sioConn {
	f.t.Helper()
	w, resp, body := upgrade(f.t, f.sys.Addr(), "/socket.io/?EIO=4&transport=websocket", nil)
	if w == nil {
		f.t.Fatalf("socket.io upgrade refused: %s %s", resp.Status, body)
	}
	s := &sioConn{wireConn: w, autoPong: true}
	open := s.packet("the open packet")
	if !strings.HasPrefix(open, "0{") {
		f.t.Fatalf("first packet %q, want the open packet", open)
	}
	return s
}

// connectSIO opens a session and connects it as user of org: connect
// reply, then the session event.
func (f *fixture) connectSIO(org, user string) *sioConn {
	f.t.Helper()
	s := f.dialSIO()
	s.name = org + "/" + user
	s.text(`40{"token":"` + token(org, user) + `"}`)
	s.connected()
	return s
}

// connected takes the connect reply and the session event.
func (s *sioConn) connected() {
	s.t.Helper()
	reply := s.packet("the connect reply")
	var r struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &r) != nil || r.SID == "" {
		s.t.Fatalf("%s: connect reply %q, want 40{\"sid\":...}", s.name, reply)
	}
	s.sid = r.SID
	name, data := splitEvent(s.t, s.packet("the session event"))
	if name != "session" {
		s.t.Fatalf("%s: first event %q, want session", s.name, name)
	}
	s.session = decode[sessionJSON](s.t, data)
}

// text sends one text frame.
func (s *sioConn) text(p string) {
	s.t.Helper()
	s.write(ws.OpText, true, []byte(p))
}

// packet returns the next text frame's payload, answering pings when
// autoPong; it fails on anything else.
func (s *sioConn) packet(what string) string {
	s.t.Helper()
	for {
		fr, err := s.read(time.Now().Add(wait))
		if err != nil {
			s.t.Fatalf("%s waiting for %s: %v", s.name, what, err)
		}
		if fr.op != ws.OpText {
			s.t.Fatalf("%s waiting for %s: got frame op %d %q", s.name, what, fr.op, fr.payload)
		}
		p := string(fr.payload)
		if p == "2" {
			s.pings++
			if s.autoPong {
				s.text("3")
				continue
			}
		}
		return p
	}
}

// event waits for the event name, skipping others, and returns its
// argument.
func (s *sioConn) event(name string) json.RawMessage {
	s.t.Helper()
	var seen []string
	for {
		p := s.packet(name)
		if strings.HasPrefix(p, "42[") {
			if n, data := splitEvent(s.t, p); n == name {
				return data
			}
		}
		seen = append(seen, p)
		if len(seen) > 100 {
			s.t.Fatalf("%s: no %s event in %q", s.name, name, seen)
		}
	}
}

// emit sends an event without an ack id.
func (s *sioConn) emit(name string, data any) {
	s.t.Helper()
	s.text("42" + eventPayload(s.t, name, data))
}

// emitAck sends an event with an ack id and returns the ack's argument.
func (s *sioConn) emitAck(name string, data any) json.RawMessage {
	s.t.Helper()
	id := strconv.Itoa(s.acks)
	s.acks++
	s.text("42" + id + eventPayload(s.t, name, data))
	for {
		p := s.packet("ack " + id)
		if !strings.HasPrefix(p, "43"+id+"[") {
			continue // events meanwhile
		}
		var args []json.RawMessage
		if err := json.Unmarshal([]byte(p[2+len(id):]), &args); err != nil || len(args) != 1 {
			s.t.Fatalf("%s: ack %q, want one argument", s.name, p)
		}
		return args[0]
	}
}

// do emits with an ack and fails unless the ack is a success.
func (s *sioConn) do(name string, data any) json.RawMessage {
	s.t.Helper()
	a := s.emitAck(name, data)
	if bytes.Contains(a, []byte(`"error":{`)) && bytes.HasPrefix(a, []byte(`{"error"`)) {
		s.t.Fatalf("%s %s: %s", s.name, name, a)
	}
	return a
}

// closed reads until the close frame and returns its code and the text
// packets before it.
func (s *sioConn) closed(within time.Duration) (int, []string) {
	s.t.Helper()
	var texts []string
	deadline := time.Now().Add(within)
	for {
		fr, err := s.read(deadline)
		if err != nil {
			s.t.Fatalf("%s: no close within %v: %v (packets: %q)", s.name, within, err, texts)
		}
		switch fr.op {
		case ws.OpClose:
			return fr.closeCode(), texts
		case ws.OpText:
			texts = append(texts, string(fr.payload))
		}
	}
}

// ackError is the error of an ack that failed.
type ackError struct {
	Error *struct {
		Type string `json:"type"`
		errData
	} `json:"error"`
}

func eventPayload(t *testing.T, name string, data any) string {
	t.Helper()
	args := []any{name}
	if data != nil {
		args = append(args, data)
	}
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// splitEvent splits 42["name",data] into its name and data.
func splitEvent(t *testing.T, p string) (string, json.RawMessage) {
	t.Helper()
	var args []json.RawMessage
	if !strings.HasPrefix(p, "42[") || json.Unmarshal([]byte(p[2:]), &args) != nil || len(args) == 0 {
		t.Fatalf("%q is not an event packet", p)
	}
	var name string
	if err := json.Unmarshal(args[0], &name); err != nil {
		t.Fatalf("%q: event name: %v", p, err)
	}
	if len(args) > 2 {
		t.Fatalf("%q: more than one argument", p)
	}
	if len(args) == 1 {
		return name, nil
	}
	return name, args[1]
}
