package standalone

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/presence"
)

type presenceEvent struct {
	UserID     string `json:"userId"`
	Status     string `json:"status"`
	LastSeenAt string `json:"lastSeenAt"`
}

// quickPresence shortens presence timings for tests.
func quickPresence(c *Config) {
	c.Presence.TTL = 2 * time.Second
	c.Presence.Grace = 2 * time.Second
	c.Presence.Interval = 100 * time.Millisecond
	c.Edge.SweepInterval = 100 * time.Millisecond
	c.Edge.PresenceInterval = 500 * time.Millisecond
	c.Edge.PresenceThrottle = 100 * time.Millisecond
	c.Edge.Limits = generous()
}

func (c *client) expectPresence(user, status string, within time.Duration) time.Duration {
	c.f.t.Helper()
	start := time.Now()
	for {
		e, err := c.Next("presence", time.Until(start.Add(within)))
		if err != nil {
			c.f.t.Fatalf("%s: no presence %s %s within %v: %v", c.name, user, status, within, err)
		}
		p := decode[presenceEvent](c.f.t, e.Data)
		if p.UserID != user {
			continue
		}
		if p.Status != status {
			c.f.t.Fatalf("%s: presence of %s is %s, want %s", c.name, user, p.Status, status)
		}
		return time.Since(start)
	}
}

func (c *client) noPresence(user string, within time.Duration) {
	c.f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		e, err := c.Next("presence", time.Until(deadline))
		if err != nil {
			return
		}
		if p := decode[presenceEvent](c.f.t, e.Data); p.UserID == user {
			c.f.t.Fatalf("%s: unexpected presence %+v", c.name, p)
		}
	}
}

func (c *client) queryStatus(user string) presenceEvent {
	c.f.t.Helper()
	r := decode[struct {
		Presence []presenceEvent `json:"presence"`
	}](c.f.t, c.do("presence:query", map[string]any{"userIds": []string{user}}))
	if len(r.Presence) != 1 {
		c.f.t.Fatalf("presence:query %v", r.Presence)
	}
	return r.Presence[0]
}

func TestPresenceOfTwoDevicesWithGrace(t *testing.T) {
	f := start(t, quickPresence)
	bob := f.dial("acme", "bob")
	conv := bob.create("alice")
	bob.join(conv)
	if p := bob.queryStatus("alice"); p.Status != "offline" || p.LastSeenAt != "" {
		t.Fatalf("alice never seen: %+v", p)
	}
	a1 := f.dial("acme", "alice")
	bob.expectPresence("alice", "online", 3*time.Second)
	a2 := f.dial("acme", "alice")
	a1.Close()
	bob.noPresence("alice", 1500*time.Millisecond) // a2 still lives
	a2.Close()
	waited := bob.expectPresence("alice", "offline", 6*time.Second)
	if waited < time.Second {
		t.Fatalf("offline %v after the last device left, before the grace", waited)
	}
	if p := bob.queryStatus("alice"); p.Status != "offline" || p.LastSeenAt == "" {
		t.Fatalf("after leaving: %+v", p)
	}
	// A reconnect within the grace produces no offline event at all.
	a3 := f.dial("acme", "alice")
	bob.expectPresence("alice", "online", 3*time.Second)
	a3.Kill()
	time.Sleep(300 * time.Millisecond)
	f.dial("acme", "alice")
	bob.noPresence("alice", 3*time.Second)
	// The join reply carries every participant's presence.
	ack := f.dial("acme", "bob").join(conv)
	got := map[string]string{}
	for _, raw := range ack.Presence {
		p := decode[presenceEvent](t, raw)
		got[p.UserID] = p.Status
	}
	if got["alice"] != "online" || got["bob"] != "online" {
		t.Fatalf("join presence %v", got)
	}
}

func TestPresenceAwayAfterIdleAndExplicit(t *testing.T) {
	f := start(t, quickPresence, func(c *Config) { c.Edge.AwayAfter = 1500 * time.Millisecond })
	bob := f.dial("acme", "bob")
	conv := bob.create("alice")
	bob.join(conv)
	alice := f.dial("acme", "alice")
	bob.expectPresence("alice", "online", 3*time.Second)
	// Idle: away. Any command: online again.
	bob.expectPresence("alice", "away", 4*time.Second)
	alice.do("conversation:list", nil)
	bob.expectPresence("alice", "online", 3*time.Second)
	// Explicit.
	alice.do("presence:set", map[string]any{"status": "away"})
	bob.expectPresence("alice", "away", 3*time.Second)
	if p := bob.queryStatus("alice"); p.Status != "away" {
		t.Fatalf("query after presence:set away: %+v", p)
	}
	alice.do("presence:set", map[string]any{"status": "online"})
	bob.expectPresence("alice", "online", 3*time.Second)
	alice.fails("presence:set", map[string]any{"status": "offline"}, "validation-error", "validation_failed")
}

func TestPresenceStaysInItsOrg(t *testing.T) {
	f := start(t, quickPresence)
	bob := f.dial("acme", "bob")
	conv := bob.create("alice")
	bob.join(conv)
	evilBob := f.dial("evil", "bob")
	evilConv := evilBob.create("alice")
	evilBob.join(evilConv)
	f.dial("acme", "alice")
	bob.expectPresence("alice", "online", 3*time.Second)
	evilBob.noPresence("alice", time.Second)
	if p := evilBob.queryStatus("alice"); p.Status != "offline" {
		t.Fatalf("evil sees acme's alice as %+v", p)
	}
}

// An edge cut off without any cleanup: its users go offline for their
// contacts within the presence TTL plus the grace.
func TestCrashedEdgeUsersGoOffline(t *testing.T) {
	f := start(t, quickPresence)
	bob := f.dial("acme", "bob")
	conv := bob.create("alice")
	bob.join(conv)

	nc := f.natsAs(natsauth.Edge)
	other := serveEdge(t, f, nc, edge.Config{SweepInterval: 100 * time.Millisecond, PresenceInterval: 500 * time.Millisecond})
	other.dial("acme", "alice")
	bob.expectPresence("alice", "online", 3*time.Second)

	nc.Close() // the edge loses NATS: no heartbeat, no goodbye
	waited := bob.expectPresence("alice", "offline", 10*time.Second)
	if waited < time.Second {
		t.Fatalf("offline after %v, before the TTL", waited)
	}
}

// With the presence service down, connecting, joining and messaging go on;
// presence comes back by itself with the service.
func TestPresenceServiceDownAndBack(t *testing.T) {
	f := start(t, quickPresence)
	if err := f.sys.Presence.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	ack := bob.join(conv)
	if len(ack.Presence) != 0 {
		t.Fatalf("join presence with the service down: %s", ack.Presence)
	}
	alice.join(conv)
	alice.send(conv, "still works")
	bob.event("message:new")
	bob.fails("presence:query", map[string]any{"userIds": []string{"alice"}}, "error", "unavailable")

	nc := f.natsAs(natsauth.Presence)
	p, err := presence.New(context.Background(), nc, presence.Config{TTL: 2 * time.Second, Grace: 2 * time.Second, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	deadline := time.Now().Add(5 * time.Second)
	for bob.queryStatus("alice").Status != "online" {
		if time.Now().After(deadline) {
			t.Fatal("presence did not recover after the service came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
