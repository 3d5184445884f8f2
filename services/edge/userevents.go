package edge

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// User events: a membership change reaches the users it adds or removes
// on their user subjects, on every connection, joined or not. A removal
// comes as the conversation_updated event itself. An addition comes as a
// ConversationChanged notice that names the event without its participant
// list (so that adding 1,000 users costs 1,000 small messages, not 1,000
// copies of the list): this edge fetches the event once for all its users
// who were told (messaging's history, as the first of them, a participant
// now) and hands each of them the same conversation:updated frame the
// event itself would have made. Per user, events reach the sockets in the
// order they arrived, fetched or not.

// userItem is one user event on its way to the user's sockets.
type userItem struct {
	ev    *chatv1.Event // nil: the fetch failed, the event is dropped
	ready bool
}

// fetchedKeep is how long a fetched event answers further notices of its
// change: one notice per user arrives in a burst, some after the fetch.
const fetchedKeep = 5 * time.Second

// eventFetch is the fetch of the event that the notices of one change
// name. Guarded by hub.fmu.
type eventFetch struct {
	done    bool
	ev      *chatv1.Event
	waiters []func(*chatv1.Event)
}

// userEvent takes an event from a user's subject. Called by the shard's
// dispatcher.
func (h *hub) userEvent(sh *hubShard, subject string, ev *chatv1.Event) {
	notice := ev.GetConversationChanged() != nil
	sh.mu.Lock()
	u := sh.users[subject]
	if u == nil {
		sh.mu.Unlock()
		return
	}
	it := &userItem{ready: !notice}
	if !notice {
		it.ev = ev
	}
	u.queue = append(u.queue, it)
	var who *conn
	for c := range u.conns {
		who = c
		break
	}
	sh.mu.Unlock()
	if !notice {
		h.flushUser(sh, u)
		return
	}
	h.fetchEvent(who, ev, func(full *chatv1.Event) {
		sh.mu.Lock()
		it.ev, it.ready = full, true
		sh.mu.Unlock()
		h.flushUser(sh, u)
	})
}

// flushUser hands the ready events at the head of u's queue to u's
// sockets, one goroutine at a time so that they keep their order.
func (h *hub) flushUser(sh *hubShard, u *userSub) {
	for {
		sh.mu.Lock()
		n := 0
		for n < len(u.queue) && u.queue[n].ready {
			n++
		}
		if u.delivering || n == 0 {
			sh.mu.Unlock()
			return
		}
		items := make([]*userItem, n)
		copy(items, u.queue)
		u.queue = append(u.queue[:0], u.queue[n:]...)
		conns := make([]*conn, 0, len(u.conns))
		for c := range u.conns {
			conns = append(conns, c)
		}
		u.delivering = true
		sh.mu.Unlock()

		for _, it := range items {
			if it.ev != nil {
				h.deliverUser(conns, it.ev)
			}
		}
		sh.mu.Lock()
		u.delivering = false
		sh.mu.Unlock()
	}
}

// deliverUser sends a user event to the user's sockets, except those that
// joined the conversation: they get it from the room, in order.
func (h *hub) deliverUser(conns []*conn, ev *chatv1.Event) {
	if len(conns) > 0 {
		h.membershipActivity(conns[0].org, conns[0].user, ev)
	}
	f := eventFrame(ev)
	if f == nil {
		return
	}
	n := 0
	for _, c := range conns {
		// A joined socket gets it from the room, and so did one the room
		// let go for this very event (checked after joined: the room
		// records it before it lets go).
		if ev.ConversationId != "" && (h.joined(c, ev.ConversationId) || c.wasRemovedBy(ev.ConversationId, ev.Seq)) {
			continue
		}
		if c.send(f) {
			n++
		}
	}
	h.s.metrics.fanout.WithLabelValues("delivered").Add(float64(n))
}

// fetchEvent calls done with the event a notice names (nil if it could
// not be had), fetching it once for all the notices of its change that
// come within fetchedKeep. A failed fetch is not kept: the next notice
// tries again, as its own user.
func (h *hub) fetchEvent(who *conn, notice *chatv1.Event, done func(*chatv1.Event)) {
	key := who.org + "." + notice.ConversationId + "." + strconv.FormatUint(notice.Seq, 10)
	h.fmu.Lock()
	if f := h.fetching[key]; f != nil {
		if !f.done {
			f.waiters = append(f.waiters, done)
			h.fmu.Unlock()
			return
		}
		ev := f.ev
		h.fmu.Unlock()
		done(ev)
		return
	}
	f := &eventFetch{waiters: []func(*chatv1.Event){done}}
	h.fetching[key] = f
	h.fmu.Unlock()
	h.fwg.Add(1)
	go func() {
		defer h.fwg.Done()
		ev := h.fetchNotified(who, notice)
		h.fmu.Lock()
		f.done, f.ev = true, ev
		waiters := f.waiters
		f.waiters = nil
		if ev == nil {
			delete(h.fetching, key)
		}
		h.fmu.Unlock()
		for _, w := range waiters {
			w(ev)
		}
		if ev != nil {
			time.AfterFunc(fetchedKeep, func() {
				h.fmu.Lock()
				if h.fetching[key] == f {
					delete(h.fetching, key)
				}
				h.fmu.Unlock()
			})
		}
	}()
}

// fetchNotified reads the conversation_updated event a notice names from
// messaging's history, as who (a user the notice was sent to); nil if it
// is not there.
func (h *hub) fetchNotified(who *conn, notice *chatv1.Event) *chatv1.Event {
	if notice.Seq == 0 {
		return nil
	}
	after := notice.Seq - 1
	ctx, cancel := context.WithTimeout(h.fctx, h.s.cfg.RequestTimeout)
	defer cancel()
	var resp chatv1.HistoryResponse
	err := who.call(ctx, names.Messaging, names.ActionHistory, &chatv1.HistoryRequest{
		Principal: who.principal(), ConversationId: notice.ConversationId, AfterSeq: &after, Limit: 1,
	}, &resp)
	if err != nil {
		h.s.warnEvery("user-event-fetch", 10*time.Second, "a membership event could not be fetched; its users miss it", "org", who.org, "err", err)
		return nil
	}
	if len(resp.Events) == 0 || resp.Events[0].Seq != notice.Seq || resp.Events[0].GetConversationUpdated() == nil {
		return nil
	}
	return resp.Events[0]
}

// removal is a membership change that took a connection out of a room.
type removal struct {
	conv string
	seq  uint64
}

// removedBy records that the event with seq took c out of conv's room.
func (c *conn) removedBy(conv string, seq uint64) {
	c.remMu.Lock()
	c.removals[c.rmNext] = removal{conv, seq}
	c.rmNext = (c.rmNext + 1) % len(c.removals)
	c.remMu.Unlock()
}

// wasRemovedBy reports whether the event with seq took c out of conv's
// room (of the last few removals).
func (c *conn) wasRemovedBy(conv string, seq uint64) bool {
	c.remMu.Lock()
	defer c.remMu.Unlock()
	return slices.Contains(c.removals[:], removal{conv, seq})
}
