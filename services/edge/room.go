package edge

import (
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// room is one conversation at this edge: the sockets that joined it, and
// the sequencer that hands them its durable events in seq order.
//
// Two messaging instances publish a conversation's events from two NATS
// connections, so they can arrive out of order, and core NATS may drop one.
// An event whose prevSeq is not the last delivered seq is held for GapWait;
// then the missing events are fetched from the stream and delivered in
// order (gap.go). What cannot be fetched is skipped, to the members
// messaging confirms are participants: the client sees the gap in prevSeq
// and asks itself.
//
// receive runs on its hub shard's dispatcher, fillGap, checkUnsure and the
// receipt flushes on timer goroutines, the rest on connections' readers. Lock
// order (doc.go, Locks): pmu, the hub's watches, a hub shard, mu, then a
// connection's qmu.
type room struct {
	s         *Server
	subject   string
	org, conv string
	sub       *nats.Subscription // set once by hub.acquire, under the shard's mu

	// Guarded by mu, as are the member and receiptThrottle values.
	mu       sync.Mutex
	members  map[*conn]*member
	primed   bool                 // last is known (from the first join)
	last     uint64               // the newest seq delivered in order
	held     map[uint64]heldEvent // out-of-order events by their prevSeq
	gapTimer *time.Timer
	verify   *time.Timer     // checks the unsure members again (gap.go)
	pending  int             // members not yet ready
	log      []heldEvent     // events delivered while a join was pending
	typing   map[string]bool // who types, as this edge last told its sockets
	receipts map[string]*receiptThrottle
	stopped  bool

	// participants as this edge knows them (from the first join reply, then
	// from conversation:updated events), and the changes not yet applied to
	// the hub's presence subscriptions.
	participants map[string]bool
	watchAdd     []string
	watchDel     []string

	// pmu orders the application of those changes (syncPresence, and the
	// removal of all of them when the room is dropped). It is taken before
	// mu and before a hub shard; mu is never held while a shard is taken.
	pmu sync.Mutex
}

// receiptThrottle coalesces one participant's receipt events: at most one
// per ReceiptInterval, carrying the newest markers. Guarded by the room's
// mu; its timer's goroutine takes that mu.
type receiptThrottle struct {
	last      time.Time
	delivered uint64
	read      uint64
	dirty     bool // markers newer than the last event sent
	timer     *time.Timer
}

// member is a socket in a room. It gets durable events with seq > from.
// Guarded by the room's mu.
type member struct {
	from  uint64
	ready bool
	// unsure: the member's removal may be in a gap this edge could not
	// fill, and messaging did not say; it gets nothing until messaging
	// confirms it (room.checkUnsure) or it joins again (room.add).
	unsure bool
}

// live reports whether m gets the room's events.
func (m *member) live() bool { return m.ready && !m.unsure }

type heldEvent struct {
	ev    *chatv1.Event
	frame []byte
}

func newRoom(s *Server, subject, org, conv string) *room {
	return &room{
		s: s, subject: subject, org: org, conv: conv,
		members: map[*conn]*member{}, held: map[uint64]heldEvent{},
		typing: map[string]bool{}, receipts: map[string]*receiptThrottle{},
	}
}

// add puts c in the room, not ready: a join is on its way. Its reply will
// say c is a participant after every event the room has seen, so c is no
// longer unsure.
func (r *room) add(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[c]; m != nil {
		m.unsure = false
		if m.ready {
			m.ready = false
			r.pending++
		}
		return
	}
	r.members[c] = &member{}
	r.pending++
}

// remove takes c out and returns how many members are left.
func (r *room) remove(c *conn) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[c]; m != nil {
		if !m.ready {
			r.pendingDone()
		}
		delete(r.members, c)
	}
	return len(r.members)
}

func (r *room) has(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[c] != nil
}

func (r *room) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}

func (r *room) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.gapTimer != nil {
		r.gapTimer.Stop()
	}
	if r.verify != nil {
		r.verify.Stop()
	}
	for _, t := range r.receipts {
		if t.timer != nil {
			t.timer.Stop()
		}
	}
}

func (r *room) pendingDone() {
	r.pending--
	if r.pending == 0 {
		clear(r.log)
		r.log = r.log[:0]
	}
}

// ready makes c a live member from lastSeq on (the join reply's): the room
// learns where the conversation is if it did not know, ack is sent, and
// then what the room delivered past lastSeq while the join was on its way.
// Doing it under the room's lock keeps the ack before every live event.
// When what was delivered meanwhile removed c's user, c gets it and leaves
// the room; ready reports that, so that the caller drops an emptied room.
func (r *room) ready(c *conn, lastSeq uint64, participants []string, ack []byte) (removed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c]
	if m == nil {
		return false // left meanwhile
	}
	if r.participants == nil {
		r.setParticipants(participants)
	}
	if !r.primed {
		r.primed = true
		r.last = lastSeq
		r.drain()
	}
	m.from = lastSeq
	if ack != nil {
		c.send(ack)
	}
	for _, e := range r.log {
		if e.ev.Seq <= lastSeq || m.unsure { // unsure: a gap skipped meanwhile (gap.go)
			continue
		}
		c.send(e.frame)
		if removes(e.ev, c.user) {
			c.removedBy(r.conv, e.ev.Seq)
			r.removeLocked(c)
			return true
		}
	}
	if !m.ready {
		m.ready = true
		r.pendingDone()
	}
	return false
}

// removes reports whether ev is a membership change without user.
func removes(ev *chatv1.Event, user string) bool {
	u := ev.GetConversationUpdated()
	return u != nil && !slices.Contains(u.Participants, user)
}

// receive takes an event from NATS; it runs on the dispatcher of the
// room's hub shard, so a room receives one event at a time.
func (r *room) receive(ev *chatv1.Event) {
	if ev.Seq == 0 {
		r.ephemeral(ev)
		return
	}
	f := eventFrame(ev)
	if f == nil {
		return
	}
	r.mu.Lock()
	removed := r.sequence(heldEvent{ev, f})
	r.mu.Unlock()
	r.afterDelivery(removed)
}

// afterDelivery applies what delivered events changed: presence
// subscriptions, and the room itself when a membership change emptied it.
func (r *room) afterDelivery(removed bool) {
	r.syncPresence()
	if removed {
		r.s.hub.dropIfEmpty(r)
	}
}

// ephemeral delivers a typing or receipt event. Typing goes out only when a
// user's state changes here (renewals and the repeats of several messaging
// instances are dropped), never back to the connection that typed.
// Receipts are coalesced per participant.
func (r *room) ephemeral(ev *chatv1.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ev.GetTyping() != nil:
		ty := ev.GetTyping()
		if r.typing[ty.UserId] == ty.IsTyping {
			return
		}
		if ty.IsTyping {
			r.typing[ty.UserId] = true
		} else {
			delete(r.typing, ty.UserId)
		}
		if f := eventFrame(ev); f != nil {
			r.broadcast(f, ty.Connection)
		}
	case ev.GetReceipt() != nil:
		r.receipt(ev.GetReceipt())
	}
}

// receipt sends a participant's markers at once if none went out within
// ReceiptInterval, else once that interval is over, with the newest
// markers. Called with mu held.
func (r *room) receipt(rc *chatv1.Receipt) {
	t := r.receipts[rc.UserId]
	if t == nil {
		t = &receiptThrottle{}
		r.receipts[rc.UserId] = t
	}
	if rc.Delivered <= t.delivered && rc.Read <= t.read {
		return // an older event, from another instance: nothing new
	}
	t.delivered, t.read = max(t.delivered, rc.Delivered), max(t.read, rc.Read)
	t.dirty = true
	wait := r.s.cfg.ReceiptInterval - time.Since(t.last)
	if wait <= 0 {
		r.flushReceipt(rc.UserId, t)
		return
	}
	if t.timer == nil && !r.stopped {
		user := rc.UserId
		t.timer = time.AfterFunc(wait, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.timer = nil
			if t.dirty && !r.stopped {
				r.flushReceipt(user, t)
			}
		})
	}
}

func (r *room) flushReceipt(user string, t *receiptThrottle) {
	t.last, t.dirty = time.Now(), false
	f := eventFrame(&chatv1.Event{ConversationId: r.conv, Body: &chatv1.Event_Receipt{Receipt: &chatv1.Receipt{
		UserId: user, Delivered: t.delivered, Read: t.read,
	}}})
	r.broadcast(f, "")
}

// broadcast hands an ephemeral frame to every live member but the
// connection skip. Called with mu held.
func (r *room) broadcast(f []byte, skip string) {
	n := 0
	for c, m := range r.members {
		if m.live() && c.id != skip && c.send(f) {
			n++
		}
	}
	r.s.metrics.fanout.WithLabelValues("delivered").Add(float64(n))
}

// sequence delivers a durable event in order, or holds it. It reports
// whether a membership change removed sockets from the room. Called with
// mu held.
func (r *room) sequence(e heldEvent) (removed bool) {
	if r.primed && e.ev.Seq <= r.last {
		return false // delivered already
	}
	if !r.primed || e.ev.PrevSeq > r.last {
		r.held[e.ev.PrevSeq] = e
		if r.primed && r.gapTimer == nil && !r.stopped {
			r.gapTimer = time.AfterFunc(r.s.cfg.GapWait, r.fillGap)
		}
		return false
	}
	removed = r.deliver(e)
	return r.drain() || removed
}

// drain delivers held events that now follow the last delivered one.
func (r *room) drain() (removed bool) {
	for k, e := range r.held {
		if e.ev.Seq <= r.last {
			delete(r.held, k)
		}
	}
	for {
		e, ok := r.held[r.last]
		if !ok {
			return removed
		}
		delete(r.held, r.last)
		removed = r.deliver(e) || removed
	}
}

// deliver hands a durable event's frame to every live member past its
// start and advances the room; a membership change that removes a user
// takes that user's ready sockets past its start out after they got it (a
// socket whose join's reply is newer than the change stays, and one whose
// join is on its way learns of the change in ready). Called with mu held.
func (r *room) deliver(e heldEvent) (removed bool) {
	n := 0
	for c, m := range r.members {
		if m.live() && e.ev.Seq > m.from && c.send(e.frame) {
			n++
		}
	}
	r.s.metrics.fanout.WithLabelValues("delivered").Add(float64(n))
	r.last = e.ev.Seq
	if r.pending > 0 {
		r.log = append(r.log, e)
	}
	if u := e.ev.GetConversationUpdated(); u != nil {
		r.setParticipants(u.Participants)
		for c, m := range r.members {
			if m.ready && e.ev.Seq > m.from && removes(e.ev, c.user) {
				c.removedBy(r.conv, e.ev.Seq)
				r.removeLocked(c)
				removed = true
			}
		}
	}
	return removed
}

func (r *room) removeLocked(c *conn) {
	if m := r.members[c]; m != nil && !m.ready {
		r.pendingDone()
	}
	delete(r.members, c)
}

// setParticipants records the conversation's participants and the presence
// subscriptions to add and drop. Called with mu held.
func (r *room) setParticipants(users []string) {
	next := make(map[string]bool, len(users))
	for _, u := range users {
		next[u] = true
		if !r.participants[u] {
			r.watchAdd = append(r.watchAdd, u)
		}
	}
	for u := range r.participants {
		if !next[u] {
			r.watchDel = append(r.watchDel, u)
		}
	}
	r.participants = next
}

// syncPresence applies the participant changes to the hub's presence
// subscriptions. Called without mu.
func (r *room) syncPresence() {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.mu.Lock()
	add, del, stopped := r.watchAdd, r.watchDel, r.stopped
	r.watchAdd, r.watchDel = nil, nil
	r.mu.Unlock()
	if stopped {
		return // unwatchAll took (or takes) them all
	}
	r.s.hub.watchPresence(r, add)
	r.s.hub.unwatchPresence(r, del)
}

// unwatchAll drops every presence subscription of a room that is gone.
func (r *room) unwatchAll() {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.mu.Lock()
	users := make([]string, 0, len(r.participants))
	for u := range r.participants {
		users = append(users, u)
	}
	// Those added but never watched are in participants too; unwatching
	// a user never watched is a no-op.
	r.watchAdd, r.watchDel = nil, nil
	r.mu.Unlock()
	r.s.hub.unwatchPresence(r, users)
}

// readyMembers adds the room's live members to set.
func (r *room) readyMembers(set map[*conn]struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, m := range r.members {
		if m.live() {
			set[c] = struct{}{}
		}
	}
}
