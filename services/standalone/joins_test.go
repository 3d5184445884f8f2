package standalone

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/services/edge"
)

func TestJoinsPerConnectionAreCapped(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.MaxJoinsPerConnection = 3 })
	alice := f.dial("acme", "alice")
	convs := make([]string, 5)
	for i := range convs {
		convs[i] = alice.create("bob")
	}
	for _, conv := range convs[:3] {
		alice.join(conv)
	}
	r := alice.fails("conversation:join", map[string]any{"conversationId": convs[3]}, "error", "conflict")
	t.Logf("4th join: %s", r)
	alice.join(convs[1]) // joined already: does not count twice

	alice.do("conversation:leave", map[string]any{"conversationId": convs[0]})
	alice.join(convs[3])
	alice.fails("conversation:join", map[string]any{"conversationId": convs[4]}, "error", "conflict")

	// A membership change that takes the connection out of a room frees
	// its place: the client need not leave what it was removed from.
	alice.do("conversation:remove", map[string]any{"conversationId": convs[1], "userId": "alice"})
	alice.event("conversation:updated")
	alice.join(convs[4])

	// The cap is per connection.
	other := f.dial("acme", "alice")
	other.join(convs[2])
}

// TestJoinsPerConnectionDefaultCap joins 500 conversations on one
// connection, the default cap: the 501st is refused.
func TestJoinsPerConnectionDefaultCap(t *testing.T) {
	const n = 500
	f := start(t)
	alice := f.dial("acme", "alice")
	var creates, joins []command
	for i := range n + 1 {
		creates = append(creates, command{"conversation:create", map[string]any{"participants": []string{}, "title": fmt.Sprint(i)}})
	}
	convs := make([]string, 0, n+1)
	for _, data := range pipeline(t, alice, creates) {
		convs = append(convs, decode[createAck](t, data).ConversationID)
	}
	for _, conv := range convs[:n] {
		joins = append(joins, command{"conversation:join", map[string]any{"conversationId": conv}})
	}
	pipeline(t, alice, joins)
	alice.fails("conversation:join", map[string]any{"conversationId": convs[n]}, "error", "conflict")
	alice.join(convs[0])
	alice.do("conversation:leave", map[string]any{"conversationId": convs[0]})
	alice.join(convs[n])
}

type command struct {
	typ  string
	data any
}

// pipeline sends cmds on c a batch at a time and returns their acks' data
// in order, failing on any other reply.
func pipeline(t *testing.T, c *client, cmds []command) [][]byte {
	t.Helper()
	const batch = 50
	var out [][]byte
	for len(cmds) > 0 {
		k := min(batch, len(cmds))
		ids := make([]string, k)
		for i, cmd := range cmds[:k] {
			ids[i] = fmt.Sprintf("p-%d", c.f.ids.Add(1))
			if err := c.Send(ids[i], cmd.typ, cmd.data); err != nil {
				t.Fatal(err)
			}
		}
		for i, id := range ids {
			r, err := c.Reply(id, wait)
			if err != nil || r.Type != "ack" {
				t.Fatalf("%s: %v %s", cmds[i].typ, err, r)
			}
			out = append(out, r.Data)
		}
		cmds = cmds[k:]
	}
	return out
}

// TestPresenceWatchesBounded watches, at an edge of its own, the presence
// of more users of one organization than PresenceWatchesPerOrg: the edge
// then holds one wildcard subscription for the organization instead of one
// per user, presence events still reach the sockets that need them, and
// the edge goes back to a subscription per user at half the bound.
func TestPresenceWatchesBounded(t *testing.T) {
	f := start(t, quickPresence)
	nc := f.natsAs(natsauth.Edge)
	other := serveEdge(t, f, nc, edge.Config{PresenceWatchesPerOrg: 4, PresenceThrottle: 100 * time.Millisecond})
	alice := other.dial("acme", "alice")
	small := alice.create("u1", "u2", "u3")
	big := alice.create("u4", "u5", "u6")
	tiny := alice.create("u1")
	base := nc.NumSubscriptions() // alice's user events, the replies'

	alice.join(small) // 4 users: one subscription each
	wantSubs(t, nc, base+1+4)
	alice.join(big) // 7 users, past 4: the organization's wildcard
	wantSubs(t, nc, base+2+1)

	u5 := f.dial("acme", "u5")
	alice.expectPresence("u5", "online", wait)
	u5.Close()
	alice.expectPresence("u5", "offline", 2*wait)
	// Presence of users no room here needs is dropped at the edge.
	zed := f.dial("acme", "zed")
	defer zed.Close()
	alice.noPresence("zed", 500*time.Millisecond)

	alice.do("conversation:leave", map[string]any{"conversationId": big})
	wantSubs(t, nc, base+1+1) // 4 users, more than half of 4: still the wildcard
	alice.join(tiny)
	wantSubs(t, nc, base+2+1)
	alice.do("conversation:leave", map[string]any{"conversationId": small})
	wantSubs(t, nc, base+1+2) // alice and u1: a subscription each again
	u1 := f.dial("acme", "u1")
	defer u1.Close()
	alice.expectPresence("u1", "online", wait)
	alice.do("conversation:leave", map[string]any{"conversationId": tiny})
	wantSubs(t, nc, base)
}

// TestPresenceSubscriptionsPerEdgeBounded: past MaxPresenceSubscriptions
// over all organizations, the organization that needs another goes to its
// wildcard; the others keep theirs.
func TestPresenceSubscriptionsPerEdgeBounded(t *testing.T) {
	f := start(t, quickPresence)
	nc := f.natsAs(natsauth.Edge)
	other := serveEdge(t, f, nc, edge.Config{MaxPresenceSubscriptions: 2, PresenceThrottle: 100 * time.Millisecond})
	alice := other.dial("acme", "alice")
	bob := other.dial("globex", "bob")
	acme := alice.create("u1", "u2", "u3")
	globex := bob.create("carol")
	base := nc.NumSubscriptions()

	alice.join(acme) // alice and u1, then the wildcard
	wantSubs(t, nc, base+1+1)
	bob.join(globex)
	wantSubs(t, nc, base+2+1+2)
	u3 := f.dial("acme", "u3")
	defer u3.Close()
	alice.expectPresence("u3", "online", wait)
	carol := f.dial("globex", "carol")
	defer carol.Close()
	bob.expectPresence("carol", "online", wait)
}

// TestPresenceWatchesOfOneSocket measures what one socket joining
// conversations of many participants makes the edge subscribe to, with
// the default bound and with the bound out of the way (a subscription per
// user, as before it existed).
func TestPresenceWatchesOfOneSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("creates conversations of 1,000 participants")
	}
	const convs, others = 3, 999
	f := start(t)
	var users [convs][]string
	for i := range users {
		for k := range others {
			users[i] = append(users[i], fmt.Sprintf("p%d-%d", i, k))
		}
	}
	// Three rooms, and one wildcard or alice and 3 × 999 others.
	for _, tc := range []struct {
		name            string
		perOrg, maxSubs int
		want            int
	}{{"default bound", 0, 0, convs + 1}, {"no bound", 1 << 30, 1 << 30, convs + 1 + convs*others}} {
		nc := f.natsAs(natsauth.Edge)
		e := serveEdge(t, f, nc, edge.Config{PresenceWatchesPerOrg: tc.perOrg, MaxPresenceSubscriptions: tc.maxSubs})
		alice := e.dial("acme", "alice")
		var ids []string
		for i := range users {
			ids = append(ids, alice.create(users[i]...))
		}
		// Each create reaches alice as conversation:updated, and the edge
		// follows the conversation's activity before it hands it over.
		for range ids {
			alice.event("conversation:updated")
		}
		base := nc.NumSubscriptions() // alice's user events, the replies', the activity's
		for _, id := range ids {
			alice.join(id)
		}
		wantSubs(t, nc, base+tc.want)
		t.Logf("%s: one socket joined %d conversations of %d participants: %d subscriptions", tc.name, convs, others+1, tc.want)
		alice.Kill()
	}
}

// wantSubs waits until nc holds want subscriptions: the edge applies a
// join's presence watches after the ack.
func wantSubs(t *testing.T, nc interface{ NumSubscriptions() int }, want int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for nc.NumSubscriptions() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", nc.NumSubscriptions(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
