package edge

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Gaps. An event held for GapWait came ahead of one this edge did not get,
// and what a member may get depends on membership, whose changes may be
// among the missing events. So membership is checked, not inferred:
//
//   - The missing events are fetched as a member that messaging confirms
//     is a participant now: one whose history request is answered. A member
//     refused (forbidden, not_found) is no participant any more; the next
//     one is asked.
//   - They are delivered in order before the held events, with the
//     membership changes they carry, as if they had come live.
//   - What is still missing is skipped, but the held events past it go only
//     to members whose user messaging says is a participant in a reply
//     to a request made after they arrived (the fetch's, or a join reply's
//     participants). Members messaging says are not participants are
//     taken out of the room; members it said nothing of (it did not
//     answer), and those whose join is on its way (its reply may predate a
//     removal in the gap), are unsure: they get nothing, not even
//     ephemeral events, until messaging confirms them (checkUnsure, every
//     unsureRetry) or they join again.
//
// A participant now may read every event of the conversation (history
// answers by membership now), so a member removed and added back within
// the gap gets nothing it could not read itself.

// unsureRetry is how often a room asks again about its unsure members.
const unsureRetry = time.Second

// gapPage is how many missing events one history page of a fill asks for
// (fewer come when they are large), and maxFillPages how many pages one
// fill reads.
const (
	gapPage      = 200
	maxFillPages = 10
)

// gap is what fillGap works on: the held events up to upto, after last.
type gap struct {
	after, upto uint64
	asks        []*conn // members to ask as, one per user at most
}

// membership is what asking messaging as members learned, by requests made
// after the gap's events arrived.
type membership struct {
	confirmed map[string]bool // participants now
	gone      map[string]bool // not participants now
	all       bool            // confirmed is every participant: parts
	parts     []string
}

func newMembership() *membership {
	return &membership{confirmed: map[string]bool{}, gone: map[string]bool{}}
}

// askEach calls ask as each of conns in turn until one is answered, and
// returns that one (nil if none). A forbidden or not_found reply says that
// user is no participant now; any other failure ends the round (messaging
// is in trouble: asking the others would only wait as long).
func (ms *membership) askEach(conns []*conn, ask func(*conn) error) *conn {
	for _, c := range conns {
		if ms.gone[c.user] {
			continue
		}
		err := ask(c)
		switch {
		case err == nil:
			ms.confirmed[c.user] = true
			return c
		case errs.Is(err, errs.CodeForbidden) || errs.Is(err, errs.CodeNotFound):
			ms.gone[c.user] = true
		default:
			return nil
		}
	}
	return nil
}

// askParticipants asks for the conversation's participants (a join reply's
// list) as each of conns in turn until one is answered.
func (r *room) askParticipants(ms *membership, conns []*conn) {
	ms.askEach(conns, func(c *conn) error {
		var resp chatv1.JoinResponse
		err := r.call(c, names.ActionJoin, &chatv1.JoinRequest{Principal: c.principal(), ConversationId: r.conv}, &resp)
		if err == nil {
			ms.all, ms.parts = true, resp.Conversation.GetParticipants()
			for _, u := range ms.parts {
				ms.confirmed[u] = true
			}
		}
		return err
	})
}

// call sends a request to messaging as c, bounded by RequestTimeout.
func (r *room) call(c *conn, action string, req proto.Message, resp svc.Response) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.RequestTimeout)
	defer cancel()
	return c.call(ctx, names.Messaging, action, req, resp)
}

// fillGap runs GapWait after an event arrived ahead of its predecessor, on
// the gap timer's goroutine. Requests are made without mu.
func (r *room) fillGap() {
	g, ok := r.gapStart()
	if !ok {
		return
	}
	ms := newMembership()
	var page *chatv1.HistoryResponse
	who := ms.askEach(g.asks, func(c *conn) (err error) {
		page, err = r.fetchPage(c, g.after)
		return err
	})
	// History pages end early when events are large: page on, as who,
	// while the gap's events are held, up to maxFillPages.
	removed, unfilled := false, true
	for n := 1; page != nil; n++ {
		r.mu.Lock()
		before := r.last
		removed = r.deliverFetched(page.Events) || removed
		unfilled = r.heldUpTo(g.upto)
		more := page.HasMore && unfilled && !r.stopped && r.last > before && n < maxFillPages
		after := r.last
		r.mu.Unlock()
		page = nil
		if more {
			page, _ = r.fetchPage(who, after)
		}
	}

	if unfilled && who != nil {
		// who first: a participant a moment ago.
		r.askParticipants(ms, append([]*conn{who}, g.asks...))
	}

	r.mu.Lock()
	if unfilled {
		removed = r.skipGap(g.upto, ms) || removed
	}
	r.gapTimer = nil
	if len(r.held) > 0 && !r.stopped {
		// Held after the gap was taken up: a gap of their own.
		r.gapTimer = time.AfterFunc(r.s.cfg.GapWait, r.fillGap)
	}
	r.mu.Unlock()
	r.afterDelivery(removed)
}

// fetchPage reads a page of the events after seq as c; nil on error.
func (r *room) fetchPage(c *conn, after uint64) (*chatv1.HistoryResponse, error) {
	var resp chatv1.HistoryResponse
	err := r.call(c, names.ActionHistory, &chatv1.HistoryRequest{
		Principal: c.principal(), ConversationId: r.conv, AfterSeq: &after, Limit: gapPage,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// gapStart takes up the gap: the held events so far, and whom to ask.
func (r *room) gapStart() (gap, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || len(r.held) == 0 {
		r.gapTimer = nil
		return gap{}, false
	}
	g := gap{after: r.last}
	for _, e := range r.held {
		g.upto = max(g.upto, e.ev.Seq)
	}
	// Live members first, then those whose join is on its way: asking as
	// them is as good, and there may be nobody else.
	g.asks = append(r.oneEach(func(m *member) bool { return m.live() }), r.oneEach(func(m *member) bool { return !m.ready && !m.unsure })...)
	return g, true
}

// oneEach returns one member per user among those that match. Called with
// mu held.
func (r *room) oneEach(match func(*member) bool) []*conn {
	seen := map[string]bool{}
	var conns []*conn
	for c, m := range r.members {
		if match(m) && !seen[c.user] {
			seen[c.user] = true
			conns = append(conns, c)
		}
	}
	return conns
}

// deliverFetched delivers the fetched events that continue the room, in
// order, and the held ones they lead to. Called with mu held.
func (r *room) deliverFetched(fetched []*chatv1.Event) (removed bool) {
	for _, ev := range fetched {
		if ev.Seq > r.last && ev.PrevSeq <= r.last {
			if f := eventFrame(ev); f != nil {
				removed = r.deliver(heldEvent{ev, f}) || removed
				removed = r.drain() || removed
			}
		}
	}
	if len(fetched) > 0 {
		r.s.metrics.gaps.WithLabelValues("filled").Add(float64(len(fetched)))
	}
	return removed
}

// heldUpTo reports whether events of the gap are still held. Called with mu
// held.
func (r *room) heldUpTo(upto uint64) bool {
	for _, e := range r.held {
		if e.ev.Seq <= upto {
			return true
		}
	}
	return false
}

// skipGap gives up on what is still missing: the gap's held events go, in
// order, to the members ms confirms; those it says are gone leave the room
// and the others become unsure. Called with mu held.
func (r *room) skipGap(upto uint64, ms *membership) (removed bool) {
	var rest []heldEvent
	for k, e := range r.held {
		if e.ev.Seq <= upto {
			rest = append(rest, e)
			delete(r.held, k)
		}
	}
	if len(rest) == 0 {
		return false // the missing events came meanwhile
	}
	slices.SortFunc(rest, func(a, b heldEvent) int { return compareSeq(a.ev.Seq, b.ev.Seq) })
	r.s.metrics.gaps.WithLabelValues("skipped").Inc()
	newest := rest[len(rest)-1].ev.Seq
	unsure := 0
	for c, m := range r.members {
		switch {
		case ms.confirmed[c.user]:
			m.unsure = false
		case m.unsure:
		case !m.ready:
			// Its join's reply may predate a removal in the gap: it gets
			// the ack, and nothing more until checked.
			m.unsure = true
			unsure++
		case m.from >= newest:
			// Joined since the gap's events: its join said.
		case ms.all || ms.gone[c.user]:
			r.removeLocked(c)
			removed = true
		default:
			m.unsure = true
			unsure++
		}
	}
	if ms.all {
		r.setParticipants(ms.parts)
	}
	for _, e := range rest {
		if e.ev.Seq > r.last {
			removed = r.deliver(e) || removed
		}
	}
	removed = r.drain() || removed
	if unsure > 0 {
		r.s.metrics.gaps.WithLabelValues("unsure").Add(float64(unsure))
		r.s.warnEvery("gap-unsure", 10*time.Second, "a gap could not be filled and messaging did not confirm membership: members get nothing until it does", "conversation", r.conv, "members", unsure)
		r.checkLater()
	}
	return removed
}

// checkLater arms the check of the unsure members. Called with mu held.
func (r *room) checkLater() {
	if r.verify == nil && !r.stopped {
		r.verify = time.AfterFunc(unsureRetry, r.checkUnsure)
	}
}

// checkUnsure asks messaging about the unsure members, on the verify
// timer's goroutine: the confirmed get the room's events again (they see
// the gap in prevSeq), those that are no participants leave the room, and
// the rest wait for the next check.
func (r *room) checkUnsure() {
	r.mu.Lock()
	r.verify = nil
	// The live members' users first: likely participants, and their
	// answer is the whole list.
	unsure := r.oneEach(func(m *member) bool { return m.unsure })
	asks := append(r.oneEach(func(m *member) bool { return m.live() }), unsure...)
	r.mu.Unlock()
	if len(unsure) == 0 {
		return
	}

	ms := newMembership()
	r.askParticipants(ms, asks)

	r.mu.Lock()
	removed, left := false, 0
	for c, m := range r.members {
		switch {
		case !m.unsure:
		case ms.confirmed[c.user]:
			m.unsure = false
		case (ms.all || ms.gone[c.user]) && m.ready:
			// (Not ready: its join is answered first, then it goes.)
			r.removeLocked(c)
			removed = true
		default:
			left++
		}
	}
	if ms.all {
		r.setParticipants(ms.parts)
	}
	if left > 0 {
		r.checkLater()
	}
	r.mu.Unlock()
	r.afterDelivery(removed)
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
