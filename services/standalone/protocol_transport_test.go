package standalone

// Conformance to docs/protocol.md section 1, "Transport and connection",
// end to end (a real standalone system, real sockets, real WebSocket
// clients): the upgrade and its refusals, the JWT rules, the session event
// (its fields are in section 4's table), fragments and control frames
// (with the echo of a client's close, the last line of section 5), and
// keep-alive with the idle timeout. The subsection "Token expiry on a live
// connection" is in protocol_token_expiry_test.go.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
)

func TestUpgradeRefusals(t *testing.T) {
	const iss, aud = "https://id.example.com", "switchboard"
	const allowed = "https://chat.example.com"
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	f := start(t, func(c *Config) {
		c.Edge.Auth = edge.AuthConfig{Secret: secret, PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}, Issuer: iss, Audience: aud}
		c.Edge.AllowedOrigins = []string{allowed}
	})

	// good are valid claims for user; mod changes them.
	good := func(user string, mod func(jwt.MapClaims)) jwt.MapClaims {
		c := claimsFor("acme", user, time.Hour)
		c["iss"], c["aud"] = iss, aud
		if mod != nil {
			mod(c)
		}
		return c
	}
	set := func(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
	del := func(k string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, k) } }
	hs := func(mod func(jwt.MapClaims)) string { return mintHS(t, good("alice", mod)) }
	now := time.Now()
	alice := hs(nil)
	bob := mintHS(t, good("bob", nil))

	refused := []struct {
		name   string
		header http.Header
		query  string
		status int
	}{
		{"no token", nil, "", 401},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, "", 401},
		{"not a bearer scheme", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw"))}}, "", 401},
		{"malformed token", bearerHeader("not-a-jwt"), "", 401},
		{"expired", bearerHeader(hs(set("exp", now.Add(-time.Second).Unix()))), "", 401},
		{"nbf in the future", bearerHeader(hs(set("nbf", now.Add(time.Minute).Unix()))), "", 401},
		{"iat in the future", bearerHeader(hs(set("iat", now.Add(time.Minute).Unix()))), "", 401},
		{"wrong signature", bearerHeader(mintJWT(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), good("alice", nil))), "", 401},
		{"RS256 by another key", bearerHeader(mintJWT(t, jwt.SigningMethodRS256, otherRSA, good("alice", nil))), "", 401},
		{"alg none", bearerHeader(unsignedJWT(t, good("alice", nil))), "", 401},
		{"HS512 with the right secret", bearerHeader(mintJWT(t, jwt.SigningMethodHS512, secret, good("alice", nil))), "", 401},
		{"HS256 signed with the RSA public key PEM", bearerHeader(mintJWT(t, jwt.SigningMethodHS256, pubPEM, good("alice", nil))), "", 401},
		{"missing sub", bearerHeader(hs(del("sub"))), "", 401},
		{"missing org", bearerHeader(hs(del("org"))), "", 401},
		{"sub a.b", bearerHeader(hs(set("sub", "a.b"))), "", 401},
		{"sub a*", bearerHeader(hs(set("sub", "a*"))), "", 401},
		{"sub of 65 characters", bearerHeader(hs(set("sub", strings.Repeat("u", 65)))), "", 401},
		{"org a.b", bearerHeader(hs(set("org", "a.b"))), "", 401},
		{"org a*", bearerHeader(hs(set("org", "a*"))), "", 401},
		{"org of 65 characters", bearerHeader(hs(set("org", strings.Repeat("o", 65)))), "", 401},
		{"missing exp", bearerHeader(hs(del("exp"))), "", 401},
		{"wrong iss", bearerHeader(hs(set("iss", "https://evil.example.com"))), "", 401},
		{"missing iss", bearerHeader(hs(del("iss"))), "", 401},
		{"wrong aud", bearerHeader(hs(set("aud", "other"))), "", 401},
		{"missing aud", bearerHeader(hs(del("aud"))), "", 401},
		{"expired token in access_token", nil, "access_token=" + url.QueryEscape(hs(set("exp", now.Add(-time.Second).Unix()))), 401},
		{"alg none in access_token", nil, "access_token=" + url.QueryEscape(unsignedJWT(t, good("alice", nil))), 401},
		{"bad header wins over a good access_token", bearerHeader("not-a-jwt"), "access_token=" + url.QueryEscape(alice), 401},
		{"origin not allowed", http.Header{"Authorization": {"Bearer " + alice}, "Origin": {"https://evil.example.com"}}, "", 403},
		{"origin not allowed, token in access_token", http.Header{"Origin": {"https://evil.example.com"}}, "access_token=" + url.QueryEscape(alice), 403},
		{"origin null", http.Header{"Authorization": {"Bearer " + alice}, "Origin": {"null"}}, "", 403},
		{"origin differs only by scheme", http.Header{"Authorization": {"Bearer " + alice}, "Origin": {"http://chat.example.com"}}, "", 403},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			f := f.with(t)
			c, err := f.dialRaw(tc.query, wsclient.Options{Header: tc.header})
			refusedWith(t, c, err, tc.status)
		})
	}

	accepted := []struct {
		name     string
		header   http.Header
		query    string
		wantUser string
	}{
		{"HS256 in the header", bearerHeader(alice), "", "alice"},
		{"RS256 in the header", bearerHeader(mintJWT(t, jwt.SigningMethodRS256, rsaKey, good("alice", nil))), "", "alice"},
		{"aud in a list", bearerHeader(hs(set("aud", []string{"other", aud}))), "", "alice"},
		{"token in access_token", nil, "access_token=" + url.QueryEscape(bob), "bob"},
		{"header wins over access_token", bearerHeader(alice), "access_token=" + url.QueryEscape(bob), "alice"},
		{"allowed origin", http.Header{"Authorization": {"Bearer " + alice}, "Origin": {allowed}}, "", "alice"},
		{"allowed origin, token in access_token", http.Header{"Origin": {allowed}}, "access_token=" + url.QueryEscape(bob), "bob"},
		{"no Origin header", bearerHeader(bob), "", "bob"},
	}
	for _, tc := range accepted {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			f := f.with(t)
			c, err := f.dialRaw(tc.query, wsclient.Options{Header: tc.header})
			cl, s := f.accepted(c, err)
			if s.UserID != tc.wantUser || s.OrgID != "acme" {
				t.Fatalf("session for %s/%s, want acme/%s", s.OrgID, s.UserID, tc.wantUser)
			}
			cl.stillServes()
			cl.Close()
		})
	}

	t.Run("RSA key only: HS256 signed with its PEM is refused, RS256 accepted", func(t *testing.T) {
		g := start(t, func(c *Config) {
			c.Edge.Auth = edge.AuthConfig{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}}
		})
		forged := mintJWT(t, jwt.SigningMethodHS256, pubPEM, claimsFor("acme", "alice", time.Hour))
		c, err := g.dialRaw("", wsclient.Options{Header: bearerHeader(forged)})
		refusedWith(t, c, err, 401)
		_, s := g.accepted(g.dialRaw("", wsclient.Options{Header: bearerHeader(mintJWT(t, jwt.SigningMethodRS256, rsaKey, claimsFor("acme", "alice", time.Hour)))}))
		if s.UserID != "alice" {
			t.Fatalf("session for %q", s.UserID)
		}
	})

	t.Run("after the refusals two users still chat", func(t *testing.T) {
		f := f.with(t)
		a, _ := f.accepted(f.dialRaw("", wsclient.Options{Header: bearerHeader(alice)}))
		b, _ := f.accepted(f.dialRaw("access_token="+url.QueryEscape(bob), wsclient.Options{Header: http.Header{"Origin": {allowed}}}))
		a.name, b.name = "alice", "bob"
		conv := a.create("bob")
		a.join(conv)
		b.join(conv)
		sent := a.send(conv, "still here")
		for _, c := range []*client{a, b} {
			e := decode[msgEvent](t, c.event("message:new").Data)
			if e.MessageID != sent.MessageID || e.Content != "still here" || e.SenderID != "alice" {
				t.Fatalf("%s got %+v", c.name, e)
			}
		}
	})
}

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestSessionEvent(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.Limits = limits.Defaults() })
	claims := claimsFor("acme", "alice", time.Hour)
	tok := mintHS(t, claims)
	c1, s1 := f.accepted(f.dialRaw("", wsclient.Options{Header: bearerHeader(tok)}))
	_, s2 := f.accepted(f.dialRaw("", wsclient.Options{Header: bearerHeader(tok)}))

	t.Run("identity", func(t *testing.T) {
		if s1.UserID != "alice" || s1.OrgID != "acme" {
			t.Fatalf("userId %q orgId %q", s1.UserID, s1.OrgID)
		}
		if !ids.Valid(s1.ConnectionID) || !ids.Valid(s2.ConnectionID) || s1.ConnectionID == s2.ConnectionID {
			t.Fatalf("connectionIds %q and %q: want two different valid ids", s1.ConnectionID, s2.ConnectionID)
		}
	})
	t.Run("expiresAt is the token's exp, RFC 3339 UTC with milliseconds", func(t *testing.T) {
		if !timeRE.MatchString(s1.ExpiresAt) {
			t.Fatalf("expiresAt %q is not RFC 3339 UTC with milliseconds", s1.ExpiresAt)
		}
		if want := rfc3339ms(expOf(claims)); s1.ExpiresAt != want {
			t.Fatalf("expiresAt %q, want %q", s1.ExpiresAt, want)
		}
	})
	t.Run("limits", func(t *testing.T) {
		// Every command type of docs/protocol.md section 3: seven have their
		// own bucket, the others share the default one (no command is
		// unlimited).
		want := map[string][2]float64{
			"message:send":        {10, 10.0 / 60},
			"message:typing":      {5, 0.5},
			"message:edit":        {3, 3.0 / 60},
			"message:delete":      {3, 3.0 / 60},
			"message:react":       {30, 0.5},
			"conversation:create": {10, 10.0 / 60},
			"conversation:add":    {30, 0.5},
		}
		for _, typ := range []string{
			"conversation:remove", "conversation:list",
			"conversation:join", "conversation:leave", "conversation:history", "message:delivered",
			"message:read", "message:reactions", "presence:set", "presence:query", "auth:refresh", "ping",
		} {
			want[typ] = [2]float64{60, 6}
		}
		for typ, w := range want {
			l, ok := s1.Limits[typ]
			if !ok || l.Capacity == nil || l.RefillPerSecond == nil {
				t.Errorf("limits[%q] missing or incomplete: %+v", typ, s1.Limits[typ])
				continue
			}
			if *l.Capacity != w[0] || math.Abs(*l.RefillPerSecond-w[1]) > 1e-9 {
				t.Errorf("limits[%q] = {%v, %v}, want {%v, %v}", typ, *l.Capacity, *l.RefillPerSecond, w[0], w[1])
			}
		}
		for typ, l := range s1.Limits {
			if l.Capacity == nil || *l.Capacity < 1 || l.RefillPerSecond == nil || *l.RefillPerSecond <= 0 {
				t.Errorf("limits[%q] is not a {capacity, refillPerSecond} of positive numbers", typ)
			}
		}
	})
	t.Run("one session event", func(t *testing.T) {
		c1.with(t).none("session", 300*time.Millisecond)
	})
	t.Run("configured limits are shown", func(t *testing.T) {
		g := start(t, func(c *Config) {
			set, err := limits.Parse(limits.Defaults(), "message:send=1000/1s")
			if err != nil {
				t.Fatal(err)
			}
			c.Edge.Limits = set
		})
		_, s := g.accepted(g.dialRaw("", wsclient.Options{Header: bearerHeader(tok)}))
		l := s.Limits["message:send"]
		if l.Capacity == nil || *l.Capacity != 1000 || l.RefillPerSecond == nil || *l.RefillPerSecond != 1000 {
			t.Fatalf("limits[message:send] = %+v, want {1000, 1000}", l)
		}
	})
}

func TestFragmentsControlFramesAndClose(t *testing.T) {
	f := start(t)
	t.Run("fragmented text is reassembled", func(t *testing.T) {
		f := f.with(t)
		c := f.dial("acme", "alice")
		parts := []string{`{"id":"fr`, `ag","ty`, `pe":"ping"}`}
		for i, p := range parts {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			if err := c.WriteFrame(maskedFrame(op, i == len(parts)-1, []byte(p))); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := c.Reply("frag", wait); err != nil || r.Type != "pong" {
			t.Fatalf("reply to a fragmented ping: %s %v", r, err)
		}
		c.stillServes()
	})
	t.Run("a ping gets a pong with its payload", func(t *testing.T) {
		w := dialWire(t, f.sys.Addr(), token("acme", "alice"), 0)
		w.write(ws.OpPing, true, []byte("are you there"))
		p, _ := w.until(wait, "pong", func(fr wireFrame) bool { return fr.op == ws.OpPong })
		if string(p.payload) != "are you there" {
			t.Fatalf("pong payload %q", p.payload)
		}
	})
	t.Run("a ping between fragments is answered and the message reassembled", func(t *testing.T) {
		w := dialWire(t, f.sys.Addr(), token("acme", "alice"), 0)
		w.write(ws.OpText, false, []byte(`{"id":"mid","type":`))
		w.write(ws.OpPing, true, []byte("mid"))
		w.write(ws.OpContinuation, true, []byte(`"ping"}`))
		var gotPong, gotReply bool
		w.until(wait, "pong and reply", func(fr wireFrame) bool {
			switch {
			case fr.op == ws.OpPong && string(fr.payload) == "mid":
				gotPong = true
			case fr.op == ws.OpText && bytes.Contains(fr.payload, []byte(`"id":"mid"`)):
				var r wsclient.Frame
				_ = json.Unmarshal(fr.payload, &r)
				if r.Type != "pong" {
					t.Fatalf("reply %s", fr.payload)
				}
				gotReply = true
			}
			return gotPong && gotReply
		})
	})
	for _, code := range []int{1000, 1001, 4000} {
		t.Run(fmt.Sprintf("a close %d is echoed", code), func(t *testing.T) {
			w := dialWire(t, f.sys.Addr(), token("acme", "alice"), 0)
			body := binary16(code)
			w.write(ws.OpClose, true, append(body, "bye"...))
			cl, _ := w.until(wait, "close", func(fr wireFrame) bool { return fr.op == ws.OpClose })
			if cl.closeCode() != code {
				t.Fatalf("echoed close %d, want %d", cl.closeCode(), code)
			}
			if _, err := w.read(time.Now().Add(wait)); err == nil || !isEOF(err) {
				t.Fatalf("after the close: %v, want the end of the connection", err)
			}
		})
	}
	t.Run("a close without a code is answered", func(t *testing.T) {
		w := dialWire(t, f.sys.Addr(), token("acme", "alice"), 0)
		w.write(ws.OpClose, true, nil)
		cl, _ := w.until(wait, "close", func(fr wireFrame) bool { return fr.op == ws.OpClose })
		if c := cl.closeCode(); c != 1000 && c != 1005 {
			t.Fatalf("answered a close without code with %d", c)
		}
	})
}

func binary16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func TestKeepAliveAndIdleTimeout(t *testing.T) {
	const idle = 1500 * time.Millisecond
	f := start(t, func(c *Config) {
		c.Edge.IdleTimeout = idle
		c.Edge.SweepInterval = 100 * time.Millisecond
	})
	t.Run("the server pings and a client that answers stays", func(t *testing.T) {
		f := f.with(t)
		c := f.dial("acme", "alice")
		time.Sleep(2*idle + 200*time.Millisecond)
		if n := c.Pings(); n < 2 {
			t.Fatalf("%d server pings in %v, want at least 2", n, 2*idle)
		}
		c.stillServes()
	})
	t.Run("a silent client is closed", func(t *testing.T) {
		w := dialWire(t, f.sys.Addr(), token("acme", "alice"), 0)
		began := time.Now()
		pings := 0
		cl, _ := w.until(3*idle, "close", func(fr wireFrame) bool {
			if fr.op == ws.OpPing {
				pings++ // never answered
			}
			return fr.op == ws.OpClose
		})
		took := time.Since(began)
		if took < idle-100*time.Millisecond || took > idle+time.Second {
			t.Fatalf("closed after %v, want about %v", took, idle)
		}
		if pings < 1 {
			t.Fatalf("closed without a ping first")
		}
		if cl.closeCode() != 1000 {
			t.Fatalf("idle close code %d, want 1000", cl.closeCode())
		}
		if _, err := w.read(time.Now().Add(wait)); err == nil || !isEOF(err) {
			t.Fatalf("after the close: %v, want the end of the connection", err)
		}
	})
	t.Run("a client that keeps sending stays, without answering pings", func(t *testing.T) {
		w := dialWire(t, f.sys.Addr(), token("acme", "alice"), 0)
		end := time.Now().Add(2*idle + 500*time.Millisecond)
		for i := 0; time.Now().Before(end); i++ {
			id := fmt.Sprintf("k-%d", i)
			w.command(id, "ping", nil)
			if r := w.reply(id); r.Type != "pong" {
				t.Fatalf("reply %s", r)
			}
			time.Sleep(idle / 4)
		}
	})
}
