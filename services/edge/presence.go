package edge

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Presence at the edge: every connection's state goes to the presence
// service on chat.cmd.presence.<org>.update (published, no reply): at once
// when it connects, changes status or closes, and every PresenceInterval in
// batches, spread over the janitor's sweeps, so that an idle connection
// costs one entry in one batch per interval. The edge watches the presence
// of the participants of the rooms it serves (watches.go) and passes
// changes to the sockets in those rooms, at most one per user per
// PresenceThrottle.
// When the presence service is down, connecting, joining and messaging go
// on: the presence fields are empty and a metric counts it.

// Connection statuses as reported.
const (
	statusOnline uint32 = iota + 1
	statusAway
)

func statusName(s uint32) string {
	if s == statusAway {
		return "away"
	}
	return "online"
}

// effectiveStatus is away when set away or idle for AwayAfter.
func (c *conn) effectiveStatus(now time.Time) uint32 {
	if c.away.Load() || now.UnixNano()-c.lastActive.Load() >= int64(c.s.cfg.AwayAfter) {
		return statusAway
	}
	return statusOnline
}

func (c *conn) state(now time.Time, status uint32) *chatv1.ConnectionState {
	return &chatv1.ConnectionState{User: c.user, Connection: c.id, Status: statusName(status), LastActiveMs: c.lastActive.Load() / int64(time.Millisecond)}
}

// reportPresence publishes this connection's state now.
func (c *conn) reportPresence(gone bool) {
	now := time.Now()
	st := c.effectiveStatus(now)
	c.reported.Store(st)
	s := c.state(now, st)
	s.Gone = gone
	c.s.publishPresence(c.org, []*chatv1.ConnectionState{s})
}

// publishPresence sends connection states of one org to the presence
// service, in batches.
func (s *Server) publishPresence(org string, states []*chatv1.ConnectionState) {
	const batch = 500
	for len(states) > 0 {
		n := min(len(states), batch)
		data, err := proto.Marshal(&chatv1.PresenceUpdate{
			Principal: &chatv1.Principal{Org: org, User: s.cfg.ID}, Edge: s.cfg.ID, Connections: states[:n],
		})
		if err == nil {
			err = s.nc.Publish(names.Command(names.Presence, org, names.ActionUpdate), data)
		}
		if err != nil {
			s.log.Warn("presence update", "org", org, "err", err)
		}
		s.metrics.presenceUpdates.Add(float64(n))
		states = states[n:]
	}
}

// heartbeats collects, during one janitor sweep, the states to send: the
// connections whose status changed, and those whose turn it is to renew.
type heartbeats struct {
	now   time.Time
	slot  uint64 // this sweep's slot
	slots uint64 // sweeps per PresenceInterval
	full  bool   // a presence instance started: report every connection
	byOrg map[string][]*chatv1.ConnectionState
}

func (s *Server) newHeartbeats(now time.Time, sweep uint64) *heartbeats {
	slots := max(uint64(s.cfg.PresenceInterval/s.cfg.SweepInterval), 1)
	h := &heartbeats{now: now, slot: sweep % slots, slots: slots, byOrg: map[string][]*chatv1.ConnectionState{}}
	h.full = s.resync.Swap(false)
	return h
}

// visit adds c's state when it changed, when c renews in this slot, or
// when every connection is reported (full).
func (h *heartbeats) visit(c *conn) {
	st := c.effectiveStatus(h.now)
	if c.reported.Swap(st) != st || c.seq%h.slots == h.slot || h.full {
		h.byOrg[c.org] = append(h.byOrg[c.org], c.state(h.now, st))
	}
}

func (h *heartbeats) send(s *Server) {
	for org, states := range h.byOrg {
		s.publishPresence(org, states)
	}
}

type setPresenceData struct {
	Status string `json:"status"`
}

func (d *setPresenceData) validate(f *errs.Fields) {
	switch d.Status {
	case "online", "away":
	case "":
		f.Add("status", errs.ReasonRequired)
	default:
		f.Add("status", "must be online or away (offline is reached by disconnecting)")
	}
}

func (c *conn) setPresence(_ context.Context, d *setPresenceData) (any, error) {
	c.away.Store(d.Status == "away")
	c.reportPresence(false)
	return struct{}{}, nil
}

type queryPresenceData struct {
	UserIDs []string `json:"userIds"`
}

const maxPresenceQuery = 200

func (d *queryPresenceData) validate(f *errs.Fields) {
	idList(f, "userIds", d.UserIDs, false)
	if len(d.UserIDs) > maxPresenceQuery {
		f.Add("userIds", errs.ReasonAtMost(maxPresenceQuery, "users"))
	}
}

func (c *conn) queryPresence(ctx context.Context, d *queryPresenceData) (any, error) {
	var resp chatv1.PresenceQueryResponse
	if err := c.call(ctx, names.Presence, names.ActionQuery, &chatv1.PresenceQuery{Principal: c.principal(), UserIds: d.UserIDs}, &resp); err != nil {
		return nil, err
	}
	return struct {
		Presence []presenceJSON `json:"presence"`
	}{presenceList(resp.Presence)}, nil
}

func presenceList(ps []*chatv1.Presence) []presenceJSON {
	out := make([]presenceJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, presenceOf(p))
	}
	return out
}

// participantsPresence asks for the presence of a conversation's
// participants for a join reply; when the presence service does not answer
// in PresenceTimeout the list is empty, and a metric and the log say so.
func (c *conn) participantsPresence(users []string) []presenceJSON {
	if len(users) == 0 {
		return []presenceJSON{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.PresenceTimeout)
	defer cancel()
	var resp chatv1.PresenceQueryResponse
	if err := c.call(ctx, names.Presence, names.ActionQuery, &chatv1.PresenceQuery{Principal: c.principal(), UserIds: users}, &resp); err != nil {
		c.s.metrics.presenceUnavailable.Inc()
		c.s.warnEvery("presence-join", 10*time.Second, "presence unavailable: join replies carry no presence", "err", err)
		return []presenceJSON{}
	}
	return presenceList(resp.Presence)
}

// presenceSub is the edge's interest in one user's presence: the rooms
// here that user is a participant of, and the throttle. The subscription
// that brings it is the hub's watches' (watches.go). Guarded by its hub
// shard's mu; the throttle's timer goroutine (flushPresence) takes that mu.
type presenceSub struct {
	rooms   map[*room]struct{}
	status  string // the last status passed on
	sentAt  time.Time
	pending *chatv1.Event // a newer change, held by the throttle
	timer   *time.Timer
}

// watchPresence puts r on the presence of users, watching those no room
// here watched.
func (h *hub) watchPresence(r *room, users []string) {
	w := &h.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range users {
		subject := names.PresenceEvents(r.org, u)
		sh := h.shard(subject)
		sh.mu.Lock()
		ps := sh.presence[subject]
		first := ps == nil
		if first {
			ps = &presenceSub{rooms: map[*room]struct{}{}}
			sh.presence[subject] = ps
		}
		ps.rooms[r] = struct{}{}
		sh.mu.Unlock()
		if first {
			h.watch(r.org, u)
		}
	}
}

// unwatchPresence takes r off the presence of users, unwatching those no
// room here needs any more.
func (h *hub) unwatchPresence(r *room, users []string) {
	w := &h.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range users {
		subject := names.PresenceEvents(r.org, u)
		sh := h.shard(subject)
		sh.mu.Lock()
		last := false
		if ps := sh.presence[subject]; ps != nil {
			delete(ps.rooms, r)
			if last = len(ps.rooms) == 0; last {
				if ps.timer != nil {
					ps.timer.Stop()
				}
				delete(sh.presence, subject)
			}
		}
		sh.mu.Unlock()
		if last {
			h.unwatch(r.org, u)
		}
	}
}

// watchedPresence reports whether a room here needs the presence event on
// subject: the wildcard of an organization brings every user's.
func (h *hub) watchedPresence(subject string) bool {
	sh := h.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.presence[subject] != nil
}

// presenceEvent passes a user's status change to the sockets of the rooms
// the user is in, once per socket, dropping repeats (several presence
// instances publish the same change) and throttled per user.
func (h *hub) presenceEvent(sh *hubShard, subject string, ev *chatv1.Event) {
	p := ev.GetPresence()
	if p == nil {
		return
	}
	sh.mu.Lock()
	ps := sh.presence[subject]
	if ps == nil {
		sh.mu.Unlock()
		return
	}
	if ps.pending != nil {
		ps.pending = ev // the throttle's timer sends the newest
		sh.mu.Unlock()
		return
	}
	if p.Status == ps.status {
		sh.mu.Unlock()
		return
	}
	if wait := h.s.cfg.PresenceThrottle - time.Since(ps.sentAt); wait > 0 {
		ps.pending = ev
		ps.timer = time.AfterFunc(wait, func() { h.flushPresence(sh, subject, ps) })
		sh.mu.Unlock()
		return
	}
	rooms := h.sentLocked(ps, p)
	sh.mu.Unlock()
	h.deliverPresence(ev, rooms)
}

func (h *hub) flushPresence(sh *hubShard, subject string, ps *presenceSub) {
	sh.mu.Lock()
	ev := ps.pending
	ps.pending, ps.timer = nil, nil
	if ev == nil || sh.presence[subject] != ps || ev.GetPresence().Status == ps.status {
		sh.mu.Unlock()
		return
	}
	rooms := h.sentLocked(ps, ev.GetPresence())
	sh.mu.Unlock()
	h.deliverPresence(ev, rooms)
}

func (h *hub) sentLocked(ps *presenceSub, p *chatv1.Presence) []*room {
	ps.status, ps.sentAt = p.Status, time.Now()
	rooms := make([]*room, 0, len(ps.rooms))
	for r := range ps.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

func (h *hub) deliverPresence(ev *chatv1.Event, rooms []*room) {
	conns := map[*conn]struct{}{}
	for _, r := range rooms {
		r.readyMembers(conns)
	}
	if len(conns) == 0 {
		return
	}
	f := eventFrame(ev)
	n := 0
	for c := range conns {
		if c.send(f) {
			n++
		}
	}
	h.s.metrics.fanout.WithLabelValues("delivered").Add(float64(n))
}
