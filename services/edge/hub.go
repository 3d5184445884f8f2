package edge

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// hub holds the edge's interest in NATS: a subscription per conversation
// that at least one socket joined (a room) and per user with a socket here.
// Nothing else reaches this edge.
//
// Subscriptions deliver into the channel of their shard, and one dispatcher
// goroutine per shard decodes each event once, renders it once and hands the
// same frame to every socket's queue: per room, events are handled in the
// order NATS delivered them. The lock order and the goroutines involved are
// in the package documentation (doc.go).
type hub struct {
	s      *Server
	seed   maphash.Seed
	shards [hubShards]hubShard
	wg     sync.WaitGroup // dispatchers
	stop   chan struct{}
	closed sync.Once

	watches watches  // presence subscriptions (watches.go)
	act     activity // activity subscriptions (activity.go)

	// Fetches of the events that user notices name (userevents.go),
	// started by dispatchers and ended by close.
	fctx     context.Context
	fcancel  context.CancelFunc
	fwg      sync.WaitGroup
	fmu      sync.Mutex
	fetching map[string]*eventFetch // guarded by fmu
}

const (
	hubShards = 8
	// hubQueue is each dispatcher's channel: past it NATS drops events
	// (slow consumer); rooms refill durable ones from the stream.
	hubQueue = 1 << 16
)

// hubShard is one dispatcher's share of the subscriptions. Its mu comes
// after a room's pmu and the watches' mu, and before a room's mu (doc.go,
// Locks).
type hubShard struct {
	ch chan *nats.Msg

	// Guarded by mu, and so are the fields of the userSub and presenceSub
	// values.
	mu       sync.Mutex
	rooms    map[string]*room        // by conversation event subject
	users    map[string]*userSub     // by user event subject
	presence map[string]*presenceSub // by presence event subject
}

// userSub is the subscription to one user's events and that user's
// sockets. Guarded by its shard's mu.
type userSub struct {
	sub   *nats.Subscription
	conns map[*conn]struct{}
	// queue holds the user's events not yet handed to the sockets, in the
	// order they arrived; delivering says a goroutine is handing them.
	queue      []*userItem
	delivering bool
}

func newHub(s *Server) *hub {
	h := &hub{s: s, seed: maphash.MakeSeed(), stop: make(chan struct{}), fetching: map[string]*eventFetch{}, watches: watches{orgs: map[string]*orgWatch{}},
		act: activity{convs: map[string]*followedConv{}, users: map[string]*follower{}}}
	h.fctx, h.fcancel = context.WithCancel(context.Background())
	for i := range h.shards {
		sh := &h.shards[i]
		sh.ch = make(chan *nats.Msg, hubQueue)
		sh.rooms = map[string]*room{}
		sh.users = map[string]*userSub{}
		sh.presence = map[string]*presenceSub{}
		h.wg.Add(1)
		go h.dispatch(sh)
	}
	return h
}

func (h *hub) shard(subject string) *hubShard {
	return &h.shards[maphash.String(h.seed, subject)%hubShards]
}

// close ends the dispatchers, then the fetches they started;
// subscriptions go with the NATS connection.
func (h *hub) close() {
	h.closed.Do(func() { close(h.stop) })
	h.wg.Wait()
	h.fcancel()
	h.fwg.Wait()
}

// dispatch is a shard's dispatcher goroutine: it routes the shard's events
// one at a time, in the order NATS delivered them.
func (h *hub) dispatch(sh *hubShard) {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case m := <-sh.ch:
			h.route(sh, m)
		}
	}
}

func (h *hub) route(sh *hubShard, m *nats.Msg) {
	presence := strings.HasPrefix(m.Subject, "chat.evt.presence.")
	if presence && !h.watchedPresence(m.Subject) {
		return // another user of an organization watched by its wildcard
	}
	ev := &chatv1.Event{}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		h.s.log.Warn("undecodable event", "err", err)
		return
	}
	h.s.metrics.fanout.WithLabelValues("received").Inc()
	switch {
	case strings.HasPrefix(m.Subject, "chat.evt.conv."):
		sh.mu.Lock()
		r := sh.rooms[m.Subject]
		sh.mu.Unlock()
		if r != nil {
			r.receive(ev)
		}
	case strings.HasPrefix(m.Subject, "chat.evt.act."):
		h.activityEvent(m.Subject, ev)
	case strings.HasPrefix(m.Subject, "chat.evt.user."):
		h.userEvent(sh, m.Subject, ev)
	case presence:
		// An organization's wildcard delivers to its own shard's channel:
		// the user's state is in the user's shard.
		h.presenceEvent(h.shard(m.Subject), m.Subject, ev)
	}
}

// acquire returns the room of a conversation with c in it as a member that
// is not yet ready (it gets no events until ready), subscribing to the
// conversation's events if this is the room's first member.
func (h *hub) acquire(c *conn, conv string) (*room, error) {
	subject := names.ConvEvents(c.org, conv)
	sh := h.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[subject]
	if r == nil {
		r = newRoom(h.s, subject, c.org, conv)
		sub, err := h.s.nc.ChanSubscribe(subject, sh.ch)
		if err != nil {
			return nil, err
		}
		r.sub = sub
		sh.rooms[subject] = r
	}
	r.add(c)
	return r, nil
}

// release takes c out of r and drops the room (and its subscription) when
// nobody is left in it.
func (h *hub) release(c *conn, r *room) {
	h.dropIf(r, func() bool { return r.remove(c) == 0 })
}

// dropIfEmpty drops a room that lost its last member to a membership change.
func (h *hub) dropIfEmpty(r *room) {
	h.dropIf(r, func() bool { return r.size() == 0 })
}

func (h *hub) dropIf(r *room, empty func() bool) {
	sh := h.shard(r.subject)
	sh.mu.Lock()
	drop := empty() && sh.rooms[r.subject] == r
	if drop {
		delete(sh.rooms, r.subject)
		_ = r.sub.Unsubscribe()
		r.stop()
	}
	sh.mu.Unlock()
	if drop {
		r.unwatchAll()
	}
}

// joined reports whether c is a member of the conversation's room.
func (h *hub) joined(c *conn, conv string) bool {
	subject := names.ConvEvents(c.org, conv)
	sh := h.shard(subject)
	sh.mu.Lock()
	r := sh.rooms[subject]
	sh.mu.Unlock()
	return r != nil && r.has(c)
}

// addUser subscribes to c's user events if it is the user's first socket.
func (h *hub) addUser(c *conn) {
	subject := names.UserEvents(c.org, c.user)
	sh := h.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[subject]
	if u == nil {
		sub, err := h.s.nc.ChanSubscribe(subject, sh.ch)
		if err != nil {
			h.s.log.Warn("subscribe user events", "err", err)
			return
		}
		u = &userSub{sub: sub, conns: map[*conn]struct{}{}}
		sh.users[subject] = u
	}
	u.conns[c] = struct{}{}
}

func (h *hub) removeUser(c *conn) {
	subject := names.UserEvents(c.org, c.user)
	sh := h.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[subject]
	if u == nil {
		return
	}
	delete(u.conns, c)
	if len(u.conns) == 0 {
		_ = u.sub.Unsubscribe()
		delete(sh.users, subject)
	}
}
