package standalone

// Conformance of the edge to docs/protocol.md sections 1, 2 and 5, end to end:
// a real standalone system, real sockets, real WebSocket clients.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
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
		// Every command type of docs/protocol.md section 3: four have their own
		// bucket, the others share the default one (no command is unlimited).
		want := map[string][2]float64{
			"message:send":   {10, 10.0 / 60},
			"message:typing": {5, 0.5},
			"message:edit":   {3, 3.0 / 60},
			"message:delete": {3, 3.0 / 60},
		}
		for _, typ := range []string{
			"conversation:create", "conversation:add", "conversation:remove", "conversation:list",
			"conversation:join", "conversation:leave", "conversation:history", "message:delivered",
			"message:read", "presence:set", "presence:query", "auth:refresh", "ping",
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

// padJSON pads a command with spaces to n bytes.
func padJSON(cmd string, n int) []byte {
	return append([]byte(cmd), bytes.Repeat([]byte(" "), n-len(cmd))...)
}

func TestFrameDefectsClose(t *testing.T) {
	f := start(t)
	bystander := f.dial("acme", "bob")
	big := 64 << 10
	cases := []struct {
		name string
		send func(c *client) error
		code int
	}{
		{"binary frame", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpBinary, true, []byte(`{"type":"ping"}`)))
		}, 1003},
		{"message over 64 KiB", func(c *client) error {
			return c.SendText(padJSON(`{"id":"x","type":"ping"}`, big+1))
		}, 1009},
		{"fragmented message over 64 KiB", func(c *client) error {
			part := bytes.Repeat([]byte(" "), 30000)
			for i, op := range []ws.OpCode{ws.OpText, ws.OpContinuation, ws.OpContinuation} {
				if err := c.WriteFrame(maskedFrame(op, i == 2, part)); err != nil {
					return err
				}
			}
			return nil
		}, 1009},
		{"invalid UTF-8", func(c *client) error {
			return c.SendText([]byte("{\"id\":\"u\",\"type\":\"ping\",\"x\":\"\xff\xfe\"}"))
		}, 1007},
		{"invalid UTF-8 split across fragments", func(c *client) error {
			if err := c.WriteFrame(maskedFrame(ws.OpText, false, []byte("{\"id\":\"\xe2\x82"))); err != nil {
				return err
			}
			return c.WriteFrame(maskedFrame(ws.OpContinuation, true, []byte("\"}")))
		}, 1007},
		{"text that is not JSON", func(c *client) error { return c.SendText([]byte("hello")) }, 1008},
		{"truncated JSON", func(c *client) error { return c.SendText([]byte(`{"type":"ping"`)) }, 1008},
		{"unmasked client frame", func(c *client) error {
			return c.WriteFrame(ws.NewTextFrame([]byte(`{"type":"ping"}`)))
		}, 1002},
		{"continuation without a message", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpContinuation, true, []byte(`{}`)))
		}, 1002},
		{"fragmented ping", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpPing, false, []byte("p")))
		}, 1002},
		{"reserved bit set", func(c *client) error {
			fr := ws.NewTextFrame([]byte(`{"type":"ping"}`))
			fr.Header.Rsv = ws.Rsv(true, false, false)
			return c.WriteFrame(ws.MaskFrame(fr))
		}, 1002},
		{"reserved opcode", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpCode(0x3), true, []byte(`{}`)))
		}, 1002},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			victim := f.dial("acme", "alice")
			if err := tc.send(victim); err != nil {
				t.Fatalf("send: %v", err)
			}
			closedWith(t, victim.Client, tc.code)
			bystander.with(t).stillServes()
		})
	}
	t.Run("a message of exactly 64 KiB is accepted", func(t *testing.T) {
		f := f.with(t)
		c := f.dial("acme", "alice")
		if err := c.SendText(padJSON(`{"id":"exact","type":"ping"}`, big)); err != nil {
			t.Fatal(err)
		}
		r, err := c.Reply("exact", wait)
		if err != nil || r.Type != "pong" {
			t.Fatalf("reply to a 64 KiB ping: %s %v", r, err)
		}
	})
}

// hasField reports whether d names field (any field when field is "*").
func hasField(d errData, field ...string) bool {
	for _, f := range d.Fields {
		if f.Reason != "" && (field[0] == "*" || slices.Contains(field, f.Field)) {
			return true
		}
	}
	return false
}

func TestInvalidCommands(t *testing.T) {
	f := start(t)
	long := strings.Repeat("c", 65)
	cases := []struct {
		name  string
		frame string
		id    string   // the id the reply must carry, "" for none
		field []string // one of these must be named; "*" any
	}{
		{"unknown type", `{"id":"v1","type":"message:sing","data":{}}`, "v1", []string{"type"}},
		{"missing type", `{"id":"v2","data":{}}`, "v2", []string{"type"}},
		{"null type", `{"id":"v3","type":null}`, "v3", []string{"type"}},
		{"type not a string", `{"id":"v4","type":7}`, "v4", []string{"type"}},
		{"unknown top-level field", `{"id":"v5","type":"ping","extra":true}`, "v5", []string{"extra"}},
		{"top-level field in another case", `{"id":"v6","Type":"ping"}`, "v6", []string{"Type", "type"}},
		{"unknown data field", `{"id":"v7","type":"conversation:join","data":{"conversationId":"general","colour":"red"}}`, "v7", []string{"colour"}},
		{"data field in another case", `{"id":"v8","type":"conversation:join","data":{"ConversationId":"general"}}`, "v8", []string{"ConversationId", "conversationId"}},
		{"unknown field in ping data", `{"id":"v9","type":"ping","data":{"x":1}}`, "v9", []string{"x"}},
		{"ill-typed conversationId", `{"id":"v10","type":"conversation:join","data":{"conversationId":5}}`, "v10", []string{"conversationId"}},
		{"ill-typed content", `{"id":"v11","type":"message:send","data":{"conversationId":"general","content":true,"clientMsgId":"m1"}}`, "v11", []string{"content"}},
		{"ill-typed participants", `{"id":"v12","type":"conversation:create","data":{"participants":"bob"}}`, "v12", []string{"participants"}},
		{"ill-typed sinceSeq", `{"id":"v13","type":"conversation:join","data":{"conversationId":"general","sinceSeq":"ten"}}`, "v13", []string{"sinceSeq"}},
		{"negative sinceSeq", `{"id":"v14","type":"conversation:join","data":{"conversationId":"general","sinceSeq":-1}}`, "v14", []string{"sinceSeq"}},
		{"data not an object", `{"id":"v15","type":"conversation:join","data":"general"}`, "v15", []string{"data"}},
		{"missing data", `{"id":"v16","type":"conversation:join"}`, "v16", []string{"data", "conversationId"}},
		{"missing conversationId", `{"id":"v17","type":"conversation:join","data":{}}`, "v17", []string{"conversationId"}},
		{"missing clientMsgId", `{"id":"v18","type":"message:send","data":{"conversationId":"general","content":"hi"}}`, "v18", []string{"clientMsgId"}},
		{"missing content", `{"id":"v19","type":"message:send","data":{"conversationId":"general","clientMsgId":"m1"}}`, "v19", []string{"content"}},
		{"missing token", `{"id":"v20","type":"auth:refresh","data":{}}`, "v20", []string{"token"}},
		{"id not a string", `{"id":5,"type":"ping"}`, "", []string{"id"}},
		{"id of 65 characters", `{"id":"` + long + `","type":"ping"}`, "", []string{"id"}},
		{"conversationId a.b", `{"id":"v21","type":"conversation:join","data":{"conversationId":"a.b"}}`, "v21", []string{"conversationId"}},
		{"conversationId a*", `{"id":"v22","type":"conversation:join","data":{"conversationId":"a*"}}`, "v22", []string{"conversationId"}},
		{"conversationId with a space", `{"id":"v23","type":"message:send","data":{"conversationId":"a b","content":"hi","clientMsgId":"m1"}}`, "v23", []string{"conversationId"}},
		{"conversationId of 65 characters", `{"id":"v24","type":"conversation:history","data":{"conversationId":"` + long + `"}}`, "v24", []string{"conversationId"}},
		{"empty conversationId", `{"id":"v25","type":"conversation:join","data":{"conversationId":""}}`, "v25", []string{"conversationId"}},
		{"a user id outside the pattern", `{"id":"v26","type":"conversation:add","data":{"conversationId":"general","userIds":["bob","x.y"]}}`, "v26", []string{"userIds"}},
		{"a JSON array", `["ping"]`, "", []string{"*"}},
		{"a JSON number", `42`, "", []string{"*"}},
		{"no id, unknown type", `{"type":"message:sing"}`, "", []string{"type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			c := f.dial("acme", "carol")
			if err := c.SendText([]byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			var r wsclient.Frame
			var err error
			if tc.id != "" {
				r, err = c.Reply(tc.id, wait)
			} else {
				r, err = c.Wait(wait, func(fr wsclient.Frame) bool {
					return fr.ID != "" || strings.HasSuffix(fr.Type, "error") || fr.Type == "pong"
				})
			}
			if err != nil {
				t.Fatalf("no reply: %v (queued: %v)", err, c.Pending())
			}
			if r.ID != tc.id {
				t.Fatalf("reply %s carries id %q, want %q", r, r.ID, tc.id)
			}
			d := wantError(t, r, "validation-error", "validation_failed")
			if !hasField(d, tc.field...) {
				t.Fatalf("fields %+v: want an entry naming %q with a reason", d.Fields, tc.field)
			}
			c.stillServes()
		})
	}
}

func TestCommandsWithoutID(t *testing.T) {
	f := start(t)
	bob := f.dial("acme", "bob")
	private := bob.create("carol")
	c := f.dial("acme", "alice")
	for _, raw := range []string{
		`{"type":"conversation:list"}`,                                                           // ok: no ack
		`{"type":"conversation:list","data":{"limit":0}}`,                                        // validation-error
		`{"type":"conversation:join","data":{"conversationId":"` + private + `"}}`,               // forbidden
		`{"type":"conversation:leave","data":{"conversationId":"general"}}`,                      // ok: no ack
		`{"type":"conversation:create","data":{"participants":["bob"],"title":"no ack please"}}`, // ok: no ack
		`{"type":"ping"}`,             // pong
		`{"id":"last","type":"ping"}`, // pong with id
	} {
		if err := c.SendText([]byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.Reply("last", wait); err != nil || r.Type != "pong" {
		t.Fatalf("ping with id: %s %v", r, err)
	}
	// Commands run in order: every reply to the frames above is queued by
	// now, and the create without id ran.
	c.none("ack", 300*time.Millisecond)
	var types []string
	for _, fr := range c.Pending() {
		if fr.ID != "" {
			t.Errorf("unexpected reply with an id: %s", fr)
		}
		types = append(types, fr.Type)
	}
	want := []string{"validation-error", "error", "pong"}
	for _, typ := range want {
		if !slices.Contains(types, typ) {
			t.Errorf("no %s among the frames %v", typ, types)
		}
	}
	if slices.Contains(types, "ack") {
		t.Errorf("an ack for a command without id: %v", types)
	}
	e, err := c.Next("error", 0)
	if err == nil {
		wantError(t, e, "error", "forbidden")
	}
	v, err := c.Next("validation-error", 0)
	if err == nil {
		if d := wantError(t, v, "validation-error", "validation_failed"); !hasField(d, "limit") {
			t.Errorf("validation-error without the field limit: %s", v)
		}
	}
	p, err := c.Next("pong", 0)
	if err == nil && (p.ID != "" || len(p.Data) != 0) {
		t.Errorf("pong to a ping without id: %s, want {\"type\":\"pong\"}", p)
	}
	list := decode[struct {
		Conversations []struct {
			Title string `json:"title"`
		} `json:"conversations"`
	}](t, c.do("conversation:list", map[string]any{}))
	if !slices.ContainsFunc(list.Conversations, func(s struct {
		Title string `json:"title"`
	}) bool {
		return s.Title == "no ack please"
	}) {
		t.Errorf("the conversation:create without id did not run: %+v", list.Conversations)
	}
}

func TestTenInvalidCommandsClose1008(t *testing.T) {
	f := start(t)
	bystander := f.dial("acme", "bob")
	c := f.dial("acme", "alice")
	for i := 1; i <= 10; i++ {
		r := c.try("message:sing", map[string]any{"n": i})
		wantError(t, r, "validation-error", "validation_failed")
		if i < 10 {
			// Still open, and valid commands do not reset the count.
			if p, err := c.Request(fmt.Sprintf("ok-%d", i), "ping", nil, wait); err != nil || p.Type != "pong" {
				t.Fatalf("after %d invalid commands: %s %v", i, p, err)
			}
		}
	}
	closedWith(t, c.Client, 1008)
	bystander.stillServes()
	// Another connection of the same user has its own count.
	f.dial("acme", "alice").stillServes()
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

func TestPingCommand(t *testing.T) {
	f := start(t)
	c := f.dial("acme", "alice")
	if err := c.Send("", "ping", nil); err != nil {
		t.Fatal(err)
	}
	p, err := c.Next("pong", wait)
	if err != nil || p.ID != "" || len(p.Data) != 0 {
		t.Fatalf(`{"type":"ping"}: got %s %v, want {"type":"pong"}`, p, err)
	}
	for _, data := range []any{nil, map[string]any{}} {
		r, err := c.Request("p-1", "ping", data, wait)
		if err != nil || r.Type != "pong" || len(r.Data) != 0 {
			t.Fatalf("ping with id and data %v: %s %v", data, r, err)
		}
	}
	c.none("ack", 200*time.Millisecond)
}

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

func TestTokenExpiryOnALiveConnection(t *testing.T) {
	const warning = 2 * time.Second
	f := start(t, func(c *Config) {
		c.Edge.ExpiryWarning = warning
		c.Edge.SweepInterval = 100 * time.Millisecond
	})
	// short is a token of alice that expires in 2 to 3 seconds.
	short := func(t *testing.T) (string, time.Time) {
		t.Helper()
		c := claimsFor("acme", "alice", 3*time.Second)
		return mintHS(t, c), expOf(c)
	}
	dialShort := func(t *testing.T) (*client, time.Time) {
		t.Helper()
		tok, exp := short(t)
		f := f.with(t)
		c, s := f.accepted(f.dialRaw("", wsclient.Options{Header: bearerHeader(tok)}))
		if s.ExpiresAt != rfc3339ms(exp) {
			t.Fatalf("session expiresAt %s, want %s", s.ExpiresAt, rfc3339ms(exp))
		}
		return c, exp
	}
	expiring := func(t *testing.T, c *client, exp time.Time) {
		t.Helper()
		e, err := c.Next("auth:expiring", 4*time.Second)
		if err != nil {
			t.Fatalf("no auth:expiring: %v", err)
		}
		if time.Now().Before(exp.Add(-warning)) {
			t.Fatalf("auth:expiring at %v, more than %v before exp %v", time.Now(), warning, exp)
		}
		if d := decode[struct {
			ExpiresAt string `json:"expiresAt"`
		}](t, e.Data); d.ExpiresAt != rfc3339ms(exp) {
			t.Fatalf("auth:expiring expiresAt %q, want %q", d.ExpiresAt, rfc3339ms(exp))
		}
	}

	t.Run("auth:expiring once, then the janitor closes with 4001", func(t *testing.T) {
		c, exp := dialShort(t)
		expiring(t, c, exp)
		closedWith(t, c.Client, 4001)
		if time.Now().Before(exp) {
			t.Fatalf("closed before exp %v", exp)
		}
		for _, fr := range c.Pending() {
			if fr.Type == "auth:expiring" {
				t.Fatalf("a second auth:expiring: %s", fr)
			}
		}
	})
	t.Run("auth:refresh renews and the connection outlives the first exp", func(t *testing.T) {
		c, exp := dialShort(t)
		expiring(t, c, exp)
		next := claimsFor("acme", "alice", time.Hour)
		ack := c.do("auth:refresh", map[string]any{"token": mintHS(t, next)})
		if d := decode[struct {
			ExpiresAt string `json:"expiresAt"`
		}](t, ack); d.ExpiresAt != rfc3339ms(expOf(next)) {
			t.Fatalf("refresh ack expiresAt %q, want %q", d.ExpiresAt, rfc3339ms(expOf(next)))
		}
		time.Sleep(time.Until(exp) + 500*time.Millisecond)
		c.stillServes()
		c.none("auth:expiring", 0)
	})
	t.Run("a refreshed token is warned about again", func(t *testing.T) {
		c, exp := dialShort(t)
		expiring(t, c, exp)
		next := claimsFor("acme", "alice", 4*time.Second)
		c.do("auth:refresh", map[string]any{"token": mintHS(t, next)})
		expiring(t, c, expOf(next))
		closedWith(t, c.Client, 4001)
	})
	for _, other := range []struct{ name, org, user string }{
		{"another user", "acme", "mallory"},
		{"another org", "globex", "alice"},
	} {
		t.Run("auth:refresh naming "+other.name+" is forbidden and renews nothing", func(t *testing.T) {
			c, exp := dialShort(t)
			r := c.try("auth:refresh", map[string]any{"token": mintHS(t, claimsFor(other.org, other.user, time.Hour))})
			wantError(t, r, "error", "forbidden")
			c.stillServes()
			closedWith(t, c.Client, 4001)
			if time.Now().Before(exp) {
				t.Fatalf("closed before exp")
			}
		})
	}
	t.Run("auth:refresh with an invalid token is unauthenticated", func(t *testing.T) {
		f := f.with(t)
		c := f.dial("acme", "alice")
		for _, tok := range []string{
			mintHS(t, claimsFor("acme", "alice", -time.Minute)),
			unsignedJWT(t, claimsFor("acme", "alice", time.Hour)),
			"not-a-jwt",
		} {
			wantError(t, c.try("auth:refresh", map[string]any{"token": tok}), "error", "unauthenticated")
		}
		c.stillServes()
	})
	t.Run("a command after exp is unauthenticated and closes with 4001", func(t *testing.T) {
		// No janitor in this system: only the command sees the expiry.
		g := start(t, func(c *Config) { c.Edge.SweepInterval = time.Hour })
		for _, withID := range []bool{true, false} {
			claims := claimsFor("acme", "alice", 2*time.Second)
			c, _ := g.accepted(g.dialRaw("", wsclient.Options{Header: bearerHeader(mintHS(t, claims))}))
			time.Sleep(time.Until(expOf(claims)) + 200*time.Millisecond)
			id := ""
			if withID {
				id = "late"
			}
			if err := c.Send(id, "conversation:list", map[string]any{}); err != nil {
				t.Fatal(err)
			}
			r, err := c.Next("error", wait)
			if err != nil {
				t.Fatalf("no error for a command after exp: %v (queued %v)", err, c.Pending())
			}
			if r.ID != id {
				t.Fatalf("error %s carries id %q, want %q", r, r.ID, id)
			}
			wantError(t, r, "error", "unauthenticated")
			closedWith(t, c.Client, 4001)
		}
	})
}

func TestRepeatedAuthFailuresClose4003(t *testing.T) {
	f := start(t)
	bob := f.dial("acme", "bob")
	private := bob.create("carol")
	mallory := mintHS(t, claimsFor("acme", "mallory", time.Hour))
	expired := mintHS(t, claimsFor("acme", "alice", -time.Minute))
	refreshAs := func(tok string) func(c *client) wsclient.Frame {
		return func(c *client) wsclient.Frame { return c.try("auth:refresh", map[string]any{"token": tok}) }
	}
	joinPrivate := func(c *client) wsclient.Frame {
		return c.try("conversation:join", map[string]any{"conversationId": private})
	}
	cases := []struct {
		name     string
		failures []func(*client) wsclient.Frame
		codes    []string
	}{
		{"five refreshes with another user's token",
			[]func(*client) wsclient.Frame{refreshAs(mallory), refreshAs(mallory), refreshAs(mallory), refreshAs(mallory), refreshAs(mallory)},
			[]string{"forbidden", "forbidden", "forbidden", "forbidden", "forbidden"}},
		{"five joins of another's conversation",
			[]func(*client) wsclient.Frame{joinPrivate, joinPrivate, joinPrivate, joinPrivate, joinPrivate},
			[]string{"forbidden", "forbidden", "forbidden", "forbidden", "forbidden"}},
		{"unauthenticated and forbidden together",
			[]func(*client) wsclient.Frame{refreshAs(expired), joinPrivate, refreshAs(expired), refreshAs(mallory), joinPrivate},
			[]string{"unauthenticated", "forbidden", "unauthenticated", "forbidden", "forbidden"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			c := f.dial("acme", "alice")
			other := f.dial("acme", "alice")
			for i, fail := range tc.failures {
				wantError(t, fail(c), "error", tc.codes[i])
				if i < len(tc.failures)-1 {
					c.stillServes()
				}
			}
			closedWith(t, c.Client, 4003)
			other.stillServes()
			bob.with(t).stillServes()
		})
	}
}

func TestShutdownCloses1012(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger()}
	cfg.Edge.Auth = edge.AuthConfig{Secret: secret}
	sys, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	shutdown := func() error {
		err := context.Canceled
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = sys.Shutdown(ctx)
		})
		return err
	}
	t.Cleanup(func() { _ = shutdown() })
	f := newFixture(t, sys, "ws://"+sys.Addr()+"/ws")
	alice, alice2, bob := f.dial("acme", "alice"), f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	alice.join(conv)
	bob.join(conv)
	began := time.Now()
	if err := shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Shutdown took %v", took)
	}
	for _, c := range []*client{alice, alice2, bob} {
		closedWith(t, c.Client, 1012)
	}
	if c, err := wsclient.DialToken(context.Background(), f.url, token("acme", "alice")); err == nil {
		c.Kill()
		t.Fatal("a connection was accepted after Shutdown")
	}
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// metricSum sums a metric's samples on the /metrics of the metrics
// listener at addr.
func metricSum(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func TestSlowClientIsClosedAndOthersUnaffected(t *testing.T) {
	f := start(t, func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.Edge.SendQueueFrames = 64
		set, err := limits.Parse(limits.Defaults(), "message:send=100000/1s")
		if err != nil {
			t.Fatal(err)
		}
		c.Edge.Limits = set
	})
	addr, metrics := f.sys.Addr(), f.sys.MetricsAddr()
	alice := f.dial("acme", "alice") // sends, never joins
	carol := f.dial("acme", "carol") // reads everything
	conv := alice.create("carol", "dave")
	carol.join(conv)

	// dave joins by hand, then never reads again.
	dave := dialWire(t, addr, token("acme", "dave"), 4096)
	dave.command("j", "conversation:join", map[string]any{"conversationId": conv})
	if r := dave.reply("j"); r.Type != "ack" {
		t.Fatalf("dave's join: %s", r)
	}

	// carol's reader records when each event arrives.
	type arrival struct {
		ev msgEvent
		at time.Time
	}
	arrivals := make(chan arrival, 1<<14)
	stopReading := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		for {
			e, err := carol.Next("message:new", 200*time.Millisecond)
			if err == wsclient.ErrTimeout {
				select {
				case <-stopReading:
					readerDone <- nil
					return
				default:
					continue
				}
			}
			if err != nil {
				readerDone <- err
				return
			}
			var m msgEvent
			_ = json.Unmarshal(e.Data, &m)
			arrivals <- arrival{m, time.Now()}
		}
	}()

	content := strings.Repeat("x", 3000)
	var acks []sendAck
	ackAt := map[uint64]time.Time{}
	overflowAt := -1
	const maxMessages = 4000
	for i := 0; i < maxMessages; i++ {
		a := decode[sendAck](t, alice.do("message:send", map[string]any{"conversationId": conv, "content": content, "clientMsgId": fmt.Sprintf("s-%d", i)}))
		ackAt[a.Seq] = time.Now()
		acks = append(acks, a)
		if overflowAt < 0 && i%25 == 24 && metricSum(t, metrics, "switchboard_edge_send_queue_overflows_total") >= 1 {
			overflowAt = i
		}
		if overflowAt >= 0 && i >= overflowAt+50 {
			break
		}
	}
	if overflowAt < 0 {
		t.Fatalf("no send queue overflow after %d messages of %d bytes to a client that does not read", len(acks), len(content))
	}
	t.Logf("overflow seen after %d messages; %d sent", overflowAt+1, len(acks))

	// dave's connection is gone soon, though he still reads nothing: a
	// stuck socket does not hold the server for a whole write timeout.
	for gone := time.Now().Add(3 * time.Second); ; {
		n := metricSum(t, metrics, "switchboard_edge_connections", `org="acme"`)
		if n == 2 {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("%v acme connections 3s after the overflow, want 2 (alice and carol)", n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// carol got every message, in order, promptly.
	var got []arrival
	deadline := time.After(wait)
	for len(got) < len(acks) {
		select {
		case a := <-arrivals:
			got = append(got, a)
		case <-deadline:
			code, reason, err := carol.CloseCode(0)
			t.Fatalf("carol got %d of %d messages (her socket: close %d %q %v; overflows %v)", len(got), len(acks),
				code, reason, err, metricSum(t, metrics, "switchboard_edge_send_queue_overflows_total"))
		}
	}
	close(stopReading)
	if err := <-readerDone; err != nil {
		t.Fatalf("carol's connection: %v", err)
	}

	// dave's socket ends; if its close frame got through, it says 1013.
	var frames []wireFrame
	var end error
	for end == nil {
		var fr wireFrame
		fr, end = dave.read(time.Now().Add(wait))
		if end == nil {
			frames = append(frames, fr)
		}
	}
	// A frame cut short by the server's write deadline also ends it: the
	// socket could not take the rest.
	if !isEOF(end) && !errors.Is(end, io.ErrUnexpectedEOF) {
		t.Fatalf("dave's socket did not end: %v after %d frames", end, len(frames))
	}
	msgs, closeCode := 0, 0
	for i, fr := range frames {
		switch {
		case textType(fr) == "message:new":
			msgs++
		case fr.op == ws.OpClose:
			closeCode = fr.closeCode()
			if i != len(frames)-1 {
				t.Fatalf("frames after the close frame")
			}
		}
	}
	t.Logf("dave read %d messages of %d, then close code %d (0: none arrived), then %v", msgs, len(acks), closeCode, end)
	if closeCode != 0 && closeCode != 1013 {
		t.Fatalf("dave's close code %d, want 1013", closeCode)
	}
	if msgs >= len(acks) {
		t.Fatalf("dave got every message: the test did not make him slow")
	}

	// Latency: from the sender's ack to carol's receipt. A fan-out that
	// waited on dave's socket would hold every message from the one his
	// buffers could not take (the first he did not get) until his socket was
	// closed; one-off stalls of a loaded machine would not move the median
	// of that stretch.
	var lat, stuck []time.Duration
	worst, worstAt := time.Duration(0), 0
	for i, a := range got {
		if a.ev.Seq != acks[i].Seq || (i > 0 && a.ev.PrevSeq != acks[i-1].Seq) {
			t.Fatalf("carol's message %d: seq %d prevSeq %d, want seq %d after %d", i, a.ev.Seq, a.ev.PrevSeq, acks[i].Seq, acks[max(i-1, 0)].Seq)
		}
		d := a.at.Sub(ackAt[a.ev.Seq])
		if d > worst {
			worst, worstAt = d, i
		}
		lat = append(lat, d)
		if i >= msgs {
			stuck = append(stuck, d)
		}
	}
	sortDurations(lat)
	sortDurations(stuck)
	t.Logf("carol's delivery after the sender's ack: p50 %v, p99 %v, max %v (message %d); p50 %v from message %d on, which dave never got",
		lat[len(lat)/2], lat[len(lat)*99/100], worst, worstAt, stuck[len(stuck)/2], msgs)
	if m := stuck[len(stuck)/2]; m > 100*time.Millisecond {
		t.Fatalf("carol's median latency while dave was stuck: %v: slowed by the slow client", m)
	}
	if worst > 3*time.Second {
		t.Fatalf("carol waited %v for message %d", worst, worstAt)
	}
	if n := metricSum(t, metrics, "switchboard_edge_send_queue_overflows_total"); n != 1 {
		t.Fatalf("%v send queue overflows, want 1 (dave's only)", n)
	}
	if n := metricSum(t, metrics, "switchboard_edge_closes_total", `code="1013"`); n != 1 {
		t.Fatalf("closes with 1013: %v, want 1", n)
	}
	carol.stillServes()
}
