package edge

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func updatedEvent(conv string, participants ...string) *chatv1.Event {
	return &chatv1.Event{ConversationId: conv,
		Body: &chatv1.Event_ConversationUpdated{ConversationUpdated: &chatv1.ConversationUpdated{Participants: participants}}}
}

func summaries(convs ...string) []*chatv1.ConversationSummary {
	var out []*chatv1.ConversationSummary
	for _, c := range convs {
		out = append(out, &chatv1.ConversationSummary{ConversationId: c})
	}
	return out
}

// followed returns f's followed conversations and the edge's activity
// subjects, sorted.
func followed(h *hub, f *follower) (convs, subjects []string) {
	h.act.mu.Lock()
	defer h.act.mu.Unlock()
	return slices.Sorted(maps.Keys(f.convs)), slices.Sorted(maps.Keys(h.act.convs))
}

func wantFollowed(t *testing.T, h *hub, f *follower, want ...string) {
	t.Helper()
	convs, subjects := followed(h, f)
	var wantSubjects []string
	for _, c := range want {
		wantSubjects = append(wantSubjects, names.ActivityEvents("acme", c))
	}
	slices.Sort(want)
	slices.Sort(wantSubjects)
	if !slices.Equal(convs, want) || !slices.Equal(subjects, wantSubjects) {
		t.Fatalf("followed %v with subscriptions %v, want %v", convs, subjects, want)
	}
}

// A reload's answer replaces the followed set (what it no longer lists is
// let go, with its subscription), but the membership events seen while it
// was asked for win over it: an addition is not undone, a removal not
// brought back. The answer of a load older than the newest is dropped,
// and a failed one leaves the set as it was. Real NATS subscriptions.
func TestActivityReloadReplacesTheFollowedSet(t *testing.T) {
	rig := newRoomRig(t)
	h := rig.s.hub
	dave := rig.socket("dave")
	a := &h.act
	f := &follower{org: "acme", user: "dave", convs: map[string]struct{}{}, conns: followerConns{one: dave.c}}
	a.mu.Lock()
	a.users["acme.dave"] = f
	for _, c := range []string{"left", "stays", "removed-during"} {
		h.followLocked(f, c)
	}
	gen := f.beginLoadLocked()
	a.mu.Unlock()

	h.membershipActivity("acme", "dave", updatedEvent("added-during", "alice", "dave"))
	h.membershipActivity("acme", "dave", updatedEvent("removed-during", "alice"))
	// The answer was made before both events.
	if !h.applyLoad(f, gen, summaries("stays", "removed-during", "new"), nil) {
		t.Fatal("a load with an answer reported a failure")
	}
	wantFollowed(t, h, f, "stays", "new", "added-during")

	a.mu.Lock()
	older := f.beginLoadLocked()
	newer := f.beginLoadLocked()
	a.mu.Unlock()
	h.applyLoad(f, older, summaries("left"), nil)
	wantFollowed(t, h, f, "stays", "new", "added-during")
	if h.applyLoad(f, newer, nil, errors.New("no answer")) {
		t.Fatal("a load without an answer reported success")
	}
	wantFollowed(t, h, f, "stays", "new", "added-during")
	a.mu.Lock()
	loading := f.loading
	gen = f.beginLoadLocked()
	a.mu.Unlock()
	if loading {
		t.Fatal("still loading after the newest load's answer")
	}
	h.applyLoad(f, gen, summaries("stays"), nil)
	wantFollowed(t, h, f, "stays")
}

// Triggers that come while a resync runs make one more, not one each.
func TestActivityResyncIsDebounced(t *testing.T) {
	rig := newRoomRig(t)
	h := rig.s.hub
	for range 100 {
		h.scheduleResync("reconnect")
	}
	for {
		h.act.mu.Lock()
		running := h.act.resync.running
		h.act.mu.Unlock()
		if !running {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if n := testutil.ToFloat64(rig.s.metrics.activityResyncs.WithLabelValues("reconnect")); n < 1 || n > 2 {
		t.Fatalf("100 triggers made %v resyncs, want 1 or 2", n)
	}
}

// TestFollowerConns: a follower's sockets, one without a map and more with
// one, in and out in any order.
func TestFollowerConns(t *testing.T) {
	a, b, c := &conn{}, &conn{}, &conn{}
	var g followerConns
	set := func() []*conn { return slices.Collect(g.all()) }
	g.add(a)
	g.add(a)
	if got := set(); len(got) != 1 || got[0] != a || g.more != nil {
		t.Fatalf("one socket: %v (map %v)", got, g.more)
	}
	if n := g.remove(b); n != 1 {
		t.Fatalf("removing a stranger left %d", n)
	}
	g.add(b)
	g.add(c)
	if got := set(); len(got) != 3 || !slices.Contains(got, a) || !slices.Contains(got, b) || !slices.Contains(got, c) {
		t.Fatalf("three sockets: %v", got)
	}
	if n := g.remove(a); n != 2 {
		t.Fatalf("after one of three left: %d", n)
	}
	if n := g.remove(c); n != 1 || set()[0] != b {
		t.Fatalf("after two of three left: %d %v", n, set())
	}
	if n := g.remove(b); n != 0 || len(set()) != 0 {
		t.Fatalf("after all left: %d %v", n, set())
	}
	var h followerConns
	h.add(a)
	if n := h.remove(a); n != 0 || len(slices.Collect(h.all())) != 0 {
		t.Fatalf("one in, one out: %d", n)
	}
}
