package edge

import (
	"context"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Conversation activity (docs/protocol.md, conversation:activity): messaging
// publishes one small ConversationActivity per new message on the
// conversation's activity subject (chat.evt.act.<org>.<conv>), whatever its
// number of participants. This edge follows the conversations of the users
// connected here: a user's most recent ones (up to followPerUser, asked of
// messaging when the user's first socket opens), kept current from the
// membership events on the user's subject (added: followed, removed: let
// go; a lost removal is repaired by a resync, activity_resync.go). One
// subscription per conversation serves every user here who is in
// it, and an activity is rendered once and handed to those users' sockets
// that did not join the conversation (a joined socket gets message:new).
//
// Coalescing is per conversation on this edge, which makes it per socket
// too: the first activity after a quiet second goes out at once and opens
// a second; those within it replace each other, and the newest goes out
// when the second ends (and opens another), so the last activity of a
// burst always comes. A burst to a conversation of 1,000 participants here
// thus costs a decode and a swap per message, and one pass over its
// sockets per second, not one per message.
//
// Bounds: a user follows at most followPerUser conversations (past it an
// added one is not followed), and the edge holds at most
// MaxActivitySubscriptions subscriptions; past it a conversation is not
// followed (no activity for it) until one is let go.

// followPerUser is how many conversations of one user an edge follows.
const followPerUser = 1000

// activityEvery is the least time between two activities of one
// conversation on one socket.
const activityEvery = time.Second

// activity is the edge's activity subscriptions and followers. Its mu is
// taken with nothing held but, on a connection's open and end, rmu; under
// it only NATS subscribe and unsubscribe are called (doc.go, Locks).
type activity struct {
	mu     sync.Mutex
	convs  map[string]*followedConv // by activity subject; guarded by mu
	users  map[string]*follower     // by org.user; guarded by mu
	resync resyncState              // guarded by mu (activity_resync.go)
}

// followedConv is one conversation's subscription, the users here who
// follow it and its coalescing. Guarded by activity.mu.
type followedConv struct {
	subject string
	sub     *nats.Subscription
	users   map[*follower]struct{}
	// busy is true during the second after a delivery; pending is the
	// newest activity that came within it, delivered when it ends.
	busy    bool
	pending *chatv1.Event
	timer   *time.Timer
}

// follower is one user with sockets here. Guarded by activity.mu.
type follower struct {
	org, user string
	convs     map[string]struct{} // followed conversation ids; nil until the first
	conns     followerConns
	// loading is true while the user's conversations are asked for (at
	// the first socket, or again by a resync: activity_resync.go); the
	// membership events seen meanwhile are kept so the answer, which may
	// predate them, neither brings a removed conversation back nor lets an
	// added one go. gen numbers the loads: only the newest one's answer is
	// taken.
	loading bool
	removed map[string]struct{}
	added   map[string]struct{}
	gen     uint64
}

// followerConns is a follower's sockets: most users have one, which needs
// no map (this state is kept for every connected user).
type followerConns struct {
	one  *conn
	more map[*conn]struct{} // when there are two or more; then one is nil
}

func (g *followerConns) add(c *conn) {
	switch {
	case g.more != nil:
		g.more[c] = struct{}{}
	case g.one == nil || g.one == c:
		g.one = c
	default:
		g.more = map[*conn]struct{}{g.one: {}, c: {}}
		g.one = nil
	}
}

// remove takes c out and returns how many sockets are left.
func (g *followerConns) remove(c *conn) int {
	if g.more != nil {
		delete(g.more, c)
		return len(g.more)
	}
	if g.one == c {
		g.one = nil
	}
	if g.one == nil {
		return 0
	}
	return 1
}

func (g *followerConns) all() iter.Seq[*conn] {
	return func(yield func(*conn) bool) {
		if g.one != nil {
			yield(g.one)
			return
		}
		for c := range g.more {
			if !yield(c) {
				return
			}
		}
	}
}

// beginLoadLocked starts a load of f's conversations and returns its
// generation; the events seen since a load still in flight began are
// kept. Called with mu held.
func (f *follower) beginLoadLocked() uint64 {
	f.gen++
	if !f.loading {
		f.loading = true
		f.removed, f.added = map[string]struct{}{}, map[string]struct{}{}
	}
	return f.gen
}

// followUser starts following c's user's conversations if c is the user's
// first socket here.
func (h *hub) followUser(c *conn) {
	a := &h.act
	a.mu.Lock()
	key := c.org + "." + c.user
	f := a.users[key]
	first := f == nil
	if first {
		f = &follower{org: c.org, user: c.user}
		a.users[key] = f
	}
	f.conns.add(c)
	var gen uint64
	if first {
		gen = f.beginLoadLocked()
	}
	a.mu.Unlock()
	if first {
		h.fwg.Add(1)
		go func() {
			defer h.fwg.Done()
			h.loadFollowed(c, f, gen)
		}()
	}
}

// unfollowUser takes c out; the user's last socket lets every followed
// conversation go.
func (h *hub) unfollowUser(c *conn) {
	a := &h.act
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.users[c.org+"."+c.user]
	if f == nil {
		return
	}
	if f.conns.remove(c) > 0 {
		return
	}
	for conv := range f.convs {
		h.unfollowLocked(f, conv)
	}
	delete(a.users, c.org+"."+c.user)
}

// loadFollowed asks messaging for the user's most recent conversations, as
// who, and makes them f's followed set: what is no longer listed is let go
// (but for what was added during the load), what is new is followed (but
// for what was removed during it). An answer of an older load than f's
// newest is dropped. It reports false when messaging did not answer (the
// set is then left as it is).
func (h *hub) loadFollowed(who *conn, f *follower, gen uint64) bool {
	ctx, cancel := context.WithTimeout(h.fctx, h.s.cfg.RequestTimeout)
	defer cancel()
	var resp chatv1.ListConversationsResponse
	err := who.call(ctx, names.Messaging, names.ActionList, &chatv1.ListConversationsRequest{
		Principal: who.principal(), Limit: followPerUser, IdsOnly: true,
	}, &resp)
	if err != nil {
		h.s.warnEvery("activity-load", 10*time.Second, "a user's conversations could not be listed; their activity is not brought up to date", "org", who.org, "err", err)
	}
	return h.applyLoad(f, gen, resp.Conversations, err)
}

// applyLoad takes the answer (listed, or err) of f's load gen.
func (h *hub) applyLoad(f *follower, gen uint64, listed []*chatv1.ConversationSummary, err error) bool {
	a := &h.act
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.users[f.org+"."+f.user] != f || f.gen != gen {
		return true // the user left meanwhile, or a newer load answers
	}
	if err == nil {
		h.replaceFollowedLocked(f, listed)
	}
	f.loading, f.removed, f.added = false, nil, nil
	return err == nil
}

// replaceFollowedLocked makes listed (less f.removed, plus f.added) f's
// followed set. Called with mu held.
func (h *hub) replaceFollowedLocked(f *follower, listed []*chatv1.ConversationSummary) {
	keep := make(map[string]struct{}, len(listed)+len(f.added))
	for _, s := range listed {
		if _, gone := f.removed[s.ConversationId]; !gone {
			keep[s.ConversationId] = struct{}{}
		}
	}
	for conv := range f.added {
		keep[conv] = struct{}{}
	}
	for conv := range f.convs {
		if _, ok := keep[conv]; !ok {
			h.unfollowLocked(f, conv)
		}
	}
	for _, s := range listed {
		if _, ok := keep[s.ConversationId]; ok {
			h.followLocked(f, s.ConversationId)
		}
	}
}

// membershipActivity follows or lets go of a conversation for the user
// whose subject brought the conversation_updated ev.
func (h *hub) membershipActivity(org, user string, ev *chatv1.Event) {
	u := ev.GetConversationUpdated()
	if u == nil || ev.ConversationId == "" {
		return
	}
	in := slices.Contains(u.Participants, user)
	a := &h.act
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.users[org+"."+user]
	if f == nil {
		return
	}
	switch {
	case in:
		if f.loading {
			delete(f.removed, ev.ConversationId)
			f.added[ev.ConversationId] = struct{}{}
		}
		h.followLocked(f, ev.ConversationId)
	default:
		if f.loading {
			f.removed[ev.ConversationId] = struct{}{}
			delete(f.added, ev.ConversationId)
		}
		h.unfollowLocked(f, ev.ConversationId)
	}
}

// followLocked subscribes f to conv, within the bounds. Called with mu
// held.
func (h *hub) followLocked(f *follower, conv string) {
	if _, ok := f.convs[conv]; ok || len(f.convs) >= followPerUser {
		return
	}
	a := &h.act
	subject := names.ActivityEvents(f.org, conv)
	fc := a.convs[subject]
	if fc == nil {
		if len(a.convs) >= h.s.cfg.MaxActivitySubscriptions {
			h.s.metrics.activityRefused.Inc()
			h.s.warnEvery("activity-bound", 10*time.Second, "the edge follows as many conversations as it may; no activity for more", "bound", h.s.cfg.MaxActivitySubscriptions)
			return
		}
		sub, err := h.s.nc.ChanSubscribe(subject, h.shard(subject).ch)
		if err != nil {
			h.s.log.Warn("subscribe activity", "org", f.org, "err", err)
			return
		}
		fc = &followedConv{subject: subject, sub: sub, users: map[*follower]struct{}{}}
		a.convs[subject] = fc
		h.s.metrics.activitySubs.Inc()
	}
	fc.users[f] = struct{}{}
	if f.convs == nil {
		f.convs = map[string]struct{}{}
	}
	f.convs[conv] = struct{}{}
}

// unfollowLocked lets conv go for f, and its subscription with its last
// follower. Called with mu held.
func (h *hub) unfollowLocked(f *follower, conv string) {
	if _, ok := f.convs[conv]; !ok {
		return
	}
	delete(f.convs, conv)
	a := &h.act
	subject := names.ActivityEvents(f.org, conv)
	fc := a.convs[subject]
	if fc == nil {
		return
	}
	delete(fc.users, f)
	if len(fc.users) == 0 {
		_ = fc.sub.Unsubscribe()
		if fc.timer != nil {
			fc.timer.Stop()
		}
		delete(a.convs, subject)
		h.s.metrics.activitySubs.Dec()
	}
}

// activityEvent takes a conversation's activity: delivered at once when
// the conversation's second is over, else kept as the newest for its end.
// Called by the shard's dispatcher.
func (h *hub) activityEvent(subject string, ev *chatv1.Event) {
	if ev.GetConversationActivity() == nil || ev.ConversationId == "" {
		return
	}
	a := &h.act
	a.mu.Lock()
	fc := a.convs[subject]
	if fc == nil {
		a.mu.Unlock()
		return
	}
	if fc.busy {
		fc.pending = ev
		a.mu.Unlock()
		return
	}
	conns := h.openSecondLocked(fc)
	a.mu.Unlock()
	h.deliverActivity(conns, ev)
}

// openSecondLocked starts fc's second and returns the sockets to deliver
// to now. Called with mu held.
func (h *hub) openSecondLocked(fc *followedConv) []*conn {
	fc.busy = true
	fc.timer = time.AfterFunc(activityEvery, func() { h.endSecond(fc) })
	var conns []*conn
	for f := range fc.users {
		for c := range f.conns.all() {
			conns = append(conns, c)
		}
	}
	return conns
}

// endSecond ends fc's second: the activity that waited goes out and opens
// another; with none, the conversation is quiet again.
func (h *hub) endSecond(fc *followedConv) {
	a := &h.act
	a.mu.Lock()
	if a.convs[fc.subject] != fc {
		a.mu.Unlock()
		return
	}
	ev := fc.pending
	fc.pending = nil
	if ev == nil {
		fc.busy = false
		a.mu.Unlock()
		return
	}
	conns := h.openSecondLocked(fc)
	a.mu.Unlock()
	h.deliverActivity(conns, ev)
}

// deliverActivity renders ev once and queues it on each of conns that did
// not join its conversation.
func (h *hub) deliverActivity(conns []*conn, ev *chatv1.Event) {
	f := eventFrame(ev)
	n := 0
	for _, c := range conns {
		if !h.joined(c, ev.ConversationId) && c.send(f) {
			n++
		}
	}
	h.s.metrics.fanout.WithLabelValues("delivered").Add(float64(n))
}
