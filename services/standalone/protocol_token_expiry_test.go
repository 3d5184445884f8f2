package standalone

// Conformance to docs/protocol.md section 1, subsection "Token expiry on a
// live connection", end to end: auth:expiring, auth:refresh, the close
// with 4001 at exp, and the close with 4003 after five authentication or
// authorization failures.

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
)

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
