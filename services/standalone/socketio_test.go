package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
)

// Protocol tests of the Socket.IO binding (docs/protocol.md section 6)
// with raw frames; tests/node runs the real socket.io-client.

func TestSocketIOQueryRefused(t *testing.T) {
	f := start(t)
	for _, tc := range []struct{ target, method, want string }{
		{"/socket.io/?EIO=4&transport=polling", "GET", "Transport unknown"},
		{"/socket.io/?EIO=4&transport=polling&t=abc", "POST", "Transport unknown"},
		{"/socket.io/?EIO=4", "GET", "Transport unknown"},
		{"/socket.io/?EIO=4&transport=flash", "GET", "Transport unknown"},
		{"/socket.io/?transport=websocket", "GET", "Unsupported protocol version"},
		{"/socket.io/?EIO=3&transport=websocket", "GET", "Unsupported protocol version"},
		{"/socket.io/?EIO=4&transport=websocket&sid=abc", "GET", "Session ID unknown"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+f.sys.Addr()+tc.target, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if resp.StatusCode != 400 || err != nil || body.Code == nil || !strings.HasPrefix(body.Message, tc.want) {
			t.Errorf("%s %s: %d %+v (%v), want 400 %q", tc.method, tc.target, resp.StatusCode, body, err, tc.want)
		}
	}
	// An upgrade with a wrong query is refused the same way, not upgraded.
	if w, resp, body := upgrade(t, f.sys.Addr(), "/socket.io/?EIO=3&transport=websocket", nil); w != nil || resp.StatusCode != 400 || !strings.Contains(body, "Engine.IO 4") {
		t.Fatalf("EIO=3 upgrade: %v %q", resp.Status, body)
	}
}

func TestSocketIOOpenConnectAndSession(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.IdleTimeout = 50 * time.Second; c.Edge.PingInterval = 20 * time.Second })
	w, resp, body := upgrade(t, f.sys.Addr(), "/socket.io/?EIO=4&transport=websocket", nil)
	if w == nil {
		t.Fatalf("upgrade: %s %s", resp.Status, body)
	}
	s := &sioConn{wireConn: w, autoPong: true, name: "acme/alice"}
	open := s.packet("open")
	var keys map[string]json.RawMessage
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &keys) != nil {
		t.Fatalf("open packet %q", open)
	}
	if len(keys) != 5 || string(keys["upgrades"]) != "[]" || string(keys["pingInterval"]) != "20000" ||
		string(keys["pingTimeout"]) != "30000" || string(keys["maxPayload"]) != "65536" || len(keys["sid"]) < 3 {
		t.Fatalf("open packet %q: want exactly sid, upgrades [], pingInterval 20000, pingTimeout 30000, maxPayload 65536", open)
	}
	s.text(`40{"token":"` + token("acme", "alice") + `"}`)
	reply := s.packet("connect reply")
	var replyKeys map[string]any
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &replyKeys) != nil || len(replyKeys) != 1 || replyKeys["sid"] == nil {
		t.Fatalf("connect reply %q, want 40{\"sid\":...} alone (no pid)", reply)
	}
	s.connectedFrom(reply)
	if s.session.UserID != "alice" || s.session.OrgID != "acme" || s.session.ConnectionID != s.sid || len(s.session.Limits) == 0 {
		t.Fatalf("session %+v, sid %s", s.session, s.sid)
	}
	// A second connect for "/" changes nothing; one for another namespace
	// is refused as socket.io refuses it.
	s.text(`40`)
	s.text(`40/admin,{"token":"x"}`)
	if p := s.packet("namespace refusal"); p != `44/admin,{"message":"Invalid namespace"}` {
		t.Fatalf("connect to /admin: %q", p)
	}
	s.do("conversation:list", map[string]any{})
}

// connectedFrom is connected with the connect reply already read.
func (s *sioConn) connectedFrom(reply string) {
	s.t.Helper()
	var r struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(reply[2:]), &r); err != nil || r.SID == "" {
		s.t.Fatalf("connect reply %q", reply)
	}
	s.sid = r.SID
	name, data := splitEvent(s.t, s.packet("session"))
	if name != "session" {
		s.t.Fatalf("first event %q, want session", name)
	}
	s.session = decode[sessionJSON](s.t, data)
}

func TestSocketIOConnectRefusals(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.SocketIOConnectTimeout = 500 * time.Millisecond })
	const unauthorized = `44{"message":"unauthorized","data":{"code":"unauthenticated"}}`
	past := claimsFor("acme", "alice", -time.Minute)
	future := claimsFor("acme", "alice", time.Hour)
	future["nbf"] = time.Now().Add(time.Hour).Unix()
	for name, connect := range map[string]string{
		"no auth":           `40`,
		"no token":          `40{}`,
		"token not string":  `40{"token":42}`,
		"garbage token":     `40{"token":"not.a.jwt"}`,
		"expired":           `40{"token":"` + mintHS(t, past) + `"}`,
		"not yet valid":     `40{"token":"` + mintHS(t, future) + `"}`,
		"alg none":          `40{"token":"` + unsignedJWT(t, claimsFor("acme", "alice", time.Hour)) + `"}`,
		"wrong secret":      `40{"token":"` + mintJWT(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), claimsFor("acme", "alice", time.Hour)) + `"}`,
		"sub not an id":     `40{"token":"` + mintHS(t, claimsFor("acme", "al ice", time.Hour)) + `"}`,
		"org missing":       `40{"token":"` + mintHS(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}) + `"}`,
		"exp missing":       `40{"token":"` + mintHS(t, jwt.MapClaims{"sub": "alice", "org": "acme"}) + `"}`,
		"header token only": `40{"access_token":"` + token("acme", "alice") + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := f.dialSIO()
			s.text(connect)
			if p := s.packet("refusal"); p != unauthorized {
				t.Fatalf("got %q, want %s", p, unauthorized)
			}
			code, rest := s.closed(wait)
			if code != 1000 || len(rest) != 0 {
				t.Fatalf("after the refusal: close %d, packets %q", code, rest)
			}
		})
	}
	t.Run("first packet not a connect", func(t *testing.T) {
		s := f.dialSIO()
		s.text(`42["conversation:list",{}]`)
		if code, _ := s.closed(wait); code != 1008 {
			t.Fatalf("close %d, want 1008", code)
		}
	})
	t.Run("no connect packet in time", func(t *testing.T) {
		s := f.dialSIO()
		began := time.Now()
		code, rest := s.closed(wait)
		if took := time.Since(began); code != 1008 || len(rest) != 0 || took < 400*time.Millisecond || took > 3*time.Second {
			t.Fatalf("close %d after %v (packets %q), want 1008 after about 500ms", code, took, rest)
		}
	})
}

// A user past the per-user limit is refused at the connect packet with a
// transport close (1013): a retry can fix it, so no connect error.
func TestSocketIOConnectionLimit(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.MaxConnectionsPerUser = 2 })
	f.dial("acme", "alice") // the count is shared with /ws
	f.connectSIO("acme", "alice")
	s := f.dialSIO()
	s.text(`40{"token":"` + token("acme", "alice") + `"}`)
	if code, rest := s.closed(wait); code != 1013 || len(rest) != 0 {
		t.Fatalf("third connection: close %d, packets %q; want 1013 and no packet", code, rest)
	}
	c, err := f.dialRaw("access_token="+token("acme", "alice"), wsclient.Options{})
	refusedWith(t, c, err, 429)
}

func TestSocketIOCommandsAcksAndEvents(t *testing.T) {
	f := start(t, func(c *Config) {
		set, err := limits.Parse(generous(), "message:edit=2/1m")
		if err != nil {
			t.Fatal(err)
		}
		c.Edge.Limits = set
	})
	alice := f.connectSIO("acme", "alice")
	bob := f.dial("acme", "bob") // the JSON protocol on the other side

	created := decode[createAck](t, alice.do("conversation:create", map[string]any{"participants": []string{"bob"}, "title": "sio"}))
	conv := created.ConversationID
	if conv == "" || len(created.Participants) != 2 {
		t.Fatalf("create ack %+v", created)
	}
	join := decode[joinAckJSON](t, alice.do("conversation:join", map[string]any{"conversationId": conv}))
	if join.Conversation.ConversationID != conv {
		t.Fatalf("join ack %+v", join)
	}
	bob.join(conv)

	// Another user's message is an event; one's own send is acked.
	sent := bob.send(conv, "hello alice")
	m := decode[msgEvent](t, alice.event("message:new"))
	if m.Seq != sent.Seq || m.SenderID != "bob" || m.Content != "hello alice" {
		t.Fatalf("message:new %+v, sent %+v", m, sent)
	}
	ack := decode[sendAck](t, alice.do("message:send", map[string]any{"conversationId": conv, "content": "hi bob", "clientMsgId": "a-1"}))
	fromAlice, err := bob.Wait(wait, func(fr wsclient.Frame) bool {
		return fr.Type == "message:new" && strings.Contains(string(fr.Data), `"senderId":"alice"`)
	})
	if err != nil {
		t.Fatalf("bob: no message from alice: %v", err)
	}
	if got := decode[msgEvent](t, fromAlice.Data); got.Seq != ack.Seq {
		t.Fatalf("bob got %+v, ack %+v", got, ack)
	}
	// Typing and receipts are events.
	bob.do("message:typing", map[string]any{"conversationId": conv, "isTyping": true})
	var typing struct {
		UserID   string `json:"userId"`
		IsTyping bool   `json:"isTyping"`
	}
	if err := json.Unmarshal(alice.event("typing"), &typing); err != nil || typing.UserID != "bob" || !typing.IsTyping {
		t.Fatalf("typing %+v %v", typing, err)
	}
	bob.do("message:read", map[string]any{"conversationId": conv, "seq": ack.Seq})
	var receipt struct {
		UserID string `json:"userId"`
		Read   uint64 `json:"read"`
	}
	if err := json.Unmarshal(alice.event("receipt"), &receipt); err != nil || receipt.UserID != "bob" || receipt.Read != ack.Seq {
		t.Fatalf("receipt %+v %v", receipt, err)
	}
	// Without an ack id a success sends nothing back; the next command's
	// ack comes next.
	alice.emit("message:typing", map[string]any{"conversationId": conv, "isTyping": false})
	alice.do("conversation:list", map[string]any{})

	// Validation errors: as the ack's error, and as an event without one.
	e := decode[ackError](t, alice.emitAck("message:send", map[string]any{"conversationId": conv}))
	if e.Error == nil || e.Error.Type != "validation-error" || e.Error.Code != "validation_failed" || !hasField(e.Error.errData, "content", "clientMsgId") {
		t.Fatalf("ack of an invalid send: %+v", e.Error)
	}
	alice.emit("message:send", map[string]any{"conversationId": "not an id", "content": "x", "clientMsgId": "x"})
	v := decode[errData](t, alice.event("validation-error"))
	if v.Code != "validation_failed" || !hasField(v, "conversationId") {
		t.Fatalf("validation-error event %+v", v)
	}
	e = decode[ackError](t, alice.emitAck("no:such", map[string]any{}))
	if e.Error == nil || e.Error.Type != "validation-error" || !hasField(e.Error.errData, "type") {
		t.Fatalf("unknown event: %+v", e.Error)
	}
	e = decode[ackError](t, alice.emitAck("conversation:list", map[string]any{"bogus": 1}))
	if e.Error == nil || e.Error.Type != "validation-error" || !hasField(e.Error.errData, "bogus") {
		t.Fatalf("unknown field: %+v", e.Error)
	}
	alice.text(`42999["conversation:list",{},{}]`) // two arguments
	if e := decode[ackError](t, alice.ackOf("999")); e.Error == nil || e.Error.Type != "validation-error" {
		t.Fatalf("two arguments: %+v", e.Error)
	}
	// Other errors are of type error.
	e = decode[ackError](t, alice.emitAck("conversation:join", map[string]any{"conversationId": "nope"}))
	if e.Error == nil || e.Error.Type != "error" || e.Error.Code != "not_found" || e.Error.Message == "" {
		t.Fatalf("join of an unknown conversation: %+v", e.Error)
	}
	alice.emit("message:edit", map[string]any{"conversationId": conv, "messageId": sent.MessageID, "content": "mine now"})
	if d := decode[errData](t, alice.event("error")); d.Code != "forbidden" {
		t.Fatalf("error event %+v", d)
	}

	// Rate limits (message:edit: 2 a minute, one used above): as the ack's
	// error, then as an event.
	alice.do("message:edit", map[string]any{"conversationId": conv, "messageId": ack.MessageID, "content": "hi again"})
	e = decode[ackError](t, alice.emitAck("message:edit", map[string]any{"conversationId": conv, "messageId": ack.MessageID, "content": "3"}))
	if e.Error == nil || e.Error.Type != "rate-limit-exceeded" || e.Error.Code != "rate_limited" || e.Error.RetryAfterMs == nil || *e.Error.RetryAfterMs <= 0 {
		t.Fatalf("rate-limited ack: %+v", e.Error)
	}
	alice.emit("message:edit", map[string]any{"conversationId": conv, "messageId": ack.MessageID, "content": "4"})
	if d := decode[errData](t, alice.event("rate-limit-exceeded")); d.Code != "rate_limited" || d.RetryAfterMs == nil {
		t.Fatalf("rate-limit-exceeded event %+v", d)
	}

	// ping is answered with an empty ack, or a pong event.
	if a := alice.emitAck("ping", nil); string(a) != "{}" {
		t.Fatalf("ping ack %s", a)
	}
	alice.emit("ping", nil)
	if p := alice.packet("pong"); p != `42["pong"]` {
		t.Fatalf("pong: %q", p)
	}
}

// ackOf waits for the ack of id.
func (s *sioConn) ackOf(id string) json.RawMessage {
	s.t.Helper()
	for {
		p := s.packet("ack " + id)
		if strings.HasPrefix(p, "43"+id+"[") {
			var args []json.RawMessage
			if err := json.Unmarshal([]byte(p[2+len(id):]), &args); err != nil || len(args) != 1 {
				s.t.Fatalf("ack %q", p)
			}
			return args[0]
		}
	}
}

// Packets that break Socket.IO's rules close the session: an error event
// with 1008, a disconnect packet, the close frame.
func TestSocketIOBadPacketsClose(t *testing.T) {
	f := start(t)
	for name, p := range map[string]string{
		"object payload":          `42{"type":"ping"}`,
		"empty array":             `42[]`,
		"no payload":              `42`,
		"string payload":          `42"ping"`,
		"ack id not numeric":      `42abc["ping"]`,
		"ack id then garbage":     `421x["ping"]`,
		"not JSON":                `42["ping"`,
		"unknown engine packet":   `9`,
		"unknown socket.io type":  `49["ping"]`,
		"namespace not connected": `42/admin,["ping"]`,
		"connect error":           `44{"message":"x"}`,
		"ack without array":       `431{}`,
		"disconnect with payload": `41{}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := f.connectSIO("acme", "alice")
			s.text(p)
			code, texts := s.closed(wait)
			if code != 1008 || len(texts) != 2 || texts[1] != "41" || !strings.HasPrefix(texts[0], `42["error",{"code":1008,"message":`) {
				t.Fatalf("close %d after %q, want 1008 after an error event and 41", code, texts)
			}
		})
	}
}

func TestSocketIOBinaryEventsRefused(t *testing.T) {
	f := start(t)
	s := f.connectSIO("acme", "alice")
	// With an ack id: the ack is the refusal; the attachment is dropped.
	s.text(`451-0["message:send",{"conversationId":"c","content":{"_placeholder":true,"num":0},"clientMsgId":"b"}]`)
	s.write(ws.OpBinary, true, []byte{1, 2, 3})
	e := decode[ackError](t, s.ackOf("0"))
	if e.Error == nil || e.Error.Type != "validation-error" || e.Error.Code != "validation_failed" {
		t.Fatalf("binary event ack: %+v", e.Error)
	}
	// Without: an event. Two attachments, the second fragmented.
	s.text(`452-["message:send",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
	s.write(ws.OpBinary, true, []byte("one"))
	s.write(ws.OpBinary, false, []byte("tw"))
	s.write(ws.OpContinuation, true, []byte("o"))
	if d := decode[errData](t, s.event("validation-error")); d.Code != "validation_failed" {
		t.Fatalf("binary event refusal %+v", d)
	}
	s.acks = 1
	s.do("conversation:list", map[string]any{}) // still served
	// A binary frame that no binary packet announced closes as at /ws.
	s.write(ws.OpBinary, true, []byte{9})
	if code, texts := s.closed(wait); code != 1003 || len(texts) != 2 || texts[1] != "41" {
		t.Fatalf("stray binary frame: close %d, packets %q", code, texts)
	}
	// So does a text packet where an attachment is due.
	s = f.connectSIO("acme", "alice")
	s.text(`451-["message:send",{"_placeholder":true,"num":0}]`)
	s.text(`42["ping"]`)
	if code, _ := s.closed(wait); code != 1008 {
		t.Fatalf("text among attachments: close %d, want 1008", code)
	}
}

func TestSocketIOPingPong(t *testing.T) {
	const interval = 400 * time.Millisecond // pingTimeout is the same: idle 800ms
	f := start(t, func(c *Config) {
		c.Edge.IdleTimeout = 2 * interval
		c.Edge.PingInterval = interval
		c.Edge.SweepInterval = 50 * time.Millisecond
	})
	t.Run("a client that answers stays", func(t *testing.T) {
		s := f.connectSIO("acme", "alice")
		end := time.Now().Add(6 * interval)
		for time.Now().Before(end) {
			_ = s.nc.SetReadDeadline(end)
			fr, err := s.read(end)
			if err != nil {
				break
			}
			if fr.op != ws.OpText {
				t.Fatalf("frame op %d %q while idle", fr.op, fr.payload)
			}
			if string(fr.payload) == "2" {
				s.pings++
				s.text("3")
			}
		}
		if s.pings < 3 {
			t.Fatalf("%d pings in %v, want at least 3", s.pings, 6*interval)
		}
		s.do("conversation:list", map[string]any{})
	})
	t.Run("no pong within pingTimeout ends the session", func(t *testing.T) {
		s := f.connectSIO("acme", "alice")
		s.autoPong = false
		if p := s.packet("ping"); p != "2" {
			t.Fatalf("got %q, want a ping", p)
		}
		pinged := time.Now()
		// Other packets do not stand in for the pong.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(interval / 4):
					_ = s.nc.SetWriteDeadline(time.Now().Add(wait))
					if ws.WriteFrame(s.nc, maskedFrame(ws.OpText, true, []byte(`42["ping"]`))) != nil {
						return
					}
				}
			}
		}()
		code, texts := s.closed(3 * time.Second)
		close(stop)
		<-done
		took := time.Since(pinged)
		if code != 1000 || took < interval-100*time.Millisecond || took > interval+time.Second {
			t.Fatalf("close %d after %v, want 1000 about %v after the ping", code, took, interval)
		}
		for _, p := range texts {
			if p == "41" || strings.HasPrefix(p, `42["error"`) {
				t.Fatalf("a ping timeout sent %q: the client must be free to reconnect", p)
			}
		}
	})
}

func TestSocketIOClientDisconnect(t *testing.T) {
	f := start(t)
	for _, p := range []string{"41", "1"} {
		s := f.connectSIO("acme", "alice")
		s.text(p)
		if code, texts := s.closed(wait); code != 1000 || len(texts) != 0 {
			t.Fatalf("after %q: close %d, packets %q", p, code, texts)
		}
	}
}

// The close codes of section 5 become an error event with the code, then
// a disconnect packet (41), then the close frame.
func TestSocketIOServerCloses(t *testing.T) {
	t.Run("token expiry 4001", func(t *testing.T) {
		f := start(t, func(c *Config) { c.Edge.ExpiryWarning = time.Second; c.Edge.SweepInterval = 50 * time.Millisecond })
		s := f.dialSIO()
		s.text(`40{"token":"` + mintHS(t, claimsFor("acme", "alice", 2*time.Second)) + `"}`)
		s.connected()
		if d := s.event("auth:expiring"); !strings.Contains(string(d), "expiresAt") {
			t.Fatalf("auth:expiring %s", d)
		}
		code, texts := s.closed(4 * time.Second)
		if code != 4001 || len(texts) < 2 || texts[len(texts)-1] != "41" || !strings.HasPrefix(texts[len(texts)-2], `42["error",{"code":4001,`) {
			t.Fatalf("close %d after %q", code, texts)
		}
	})
	t.Run("shutdown 1012", func(t *testing.T) {
		f := start(t)
		s := f.connectSIO("acme", "alice")
		waiting := f.dialSIO() // in its handshake
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.sys.Edge.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		code, texts := s.closed(wait)
		if code != 1012 || len(texts) != 2 || texts[0] != `42["error",{"code":1012,"message":"server restarting"}]` || texts[1] != "41" {
			t.Fatalf("close %d after %q", code, texts)
		}
		if code, texts := waiting.closed(wait); code != 1012 || len(texts) != 0 {
			t.Fatalf("session in its handshake: close %d after %q", code, texts)
		}
	})
}

func TestSocketIOOriginAndAttempts(t *testing.T) {
	f := start(t, func(c *Config) {
		c.Edge.AllowedOrigins = []string{"https://chat.example"}
		c.Edge.MaxUpgradesPerIP = 3
	})
	if w, resp, _ := upgrade(t, f.sys.Addr(), "/socket.io/?EIO=4&transport=websocket", http.Header{"Origin": {"https://evil.example"}}); w != nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v", resp.Status)
	}
	statuses := []int{}
	for range 7 {
		w, resp, _ := upgrade(t, f.sys.Addr(), "/socket.io/?EIO=4&transport=websocket", http.Header{"Origin": {"https://chat.example"}})
		if w != nil {
			_ = w.nc.Close()
		}
		statuses = append(statuses, resp.StatusCode)
	}
	if !strings.Contains(fmt.Sprint(statuses), "429") || statuses[0] != 101 {
		t.Fatalf("upgrade statuses %v, want 429 past 3 a second", statuses)
	}
}
