package presence

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// view is this instance's picture of every connection, fed by a watch of
// the chat_presence bucket. It decides when a user's status changes and
// publishes the change.
type view struct {
	s *Service

	// holdUntil ends the hold after this instance started: until then an
	// entry that expired (rather than a connection that closed) is not
	// announced offline nor shown so, for it may have expired only because
	// no presence instance took its heartbeats; edges re-announce their
	// connections when asked (names.PresenceResync) and at the latest
	// within one TTL.
	holdUntil time.Time

	mu      sync.Mutex
	users   map[string]*user // by <org>.<user>
	conns   int              // connections in users, for the metric
	stopped bool
}

type user struct {
	org, id      string
	conns        map[string]connState // by connection id
	lastSeen     int64                // ms
	offlineSince time.Time            // when the last connection went; zero while connected
	sent         string               // the status last published ("" before any)
	sentAt       time.Time
	timer        *time.Timer // a pending publication
	wasConnected bool
	expired      bool // the last connection to go expired (no heartbeat), not closed
}

type connState struct {
	status     string
	lastActive int64
	rev        uint64
}

func newView(s *Service) *view {
	return &view{s: s, users: map[string]*user{}, holdUntil: time.Now().Add(s.cfg.TTL)}
}

// watch loads the current state (before New returns) and then follows the
// bucket until wctx ends.
func (s *Service) watch(ctx, wctx context.Context) error {
	w, err := s.kv.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch presence: %w", err)
	}
	for loaded := false; !loaded; {
		select {
		case e := <-w.Updates():
			if e == nil {
				loaded = true
				continue
			}
			s.view.apply(e, false)
		case <-ctx.Done():
			_ = w.Stop()
			return ctx.Err()
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		natsx.Follow(wctx, w, func(e jetstream.KeyValueEntry) { s.view.apply(e, true) })
	}()
	return nil
}

func (v *view) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopped = true
	for _, u := range v.users {
		if u.timer != nil {
			u.timer.Stop()
		}
	}
}

func (v *view) userLocked(org, id string) *user {
	k := org + "." + id
	u := v.users[k]
	if u == nil {
		u = &user{org: org, id: id, conns: map[string]connState{}}
		v.users[k] = u
	}
	return u
}

// apply takes one change of the bucket. During the initial load (live
// false) statuses are taken as already published: a restart of this
// instance announces nothing.
func (v *view) apply(e jetstream.KeyValueEntry, live bool) {
	parts := strings.Split(e.Key(), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return
	}
	put := e.Operation() == jetstream.KeyValuePut
	v.mu.Lock()
	defer v.mu.Unlock()
	u := v.userLocked(parts[0], parts[1])
	if len(parts) == 2 { // last seen
		var ls chatv1.LastSeen
		if put && proto.Unmarshal(e.Value(), &ls) == nil {
			u.lastSeen = max(u.lastSeen, ls.LastSeenMs)
		}
		return
	}
	conn := parts[2]
	var entry chatv1.PresenceEntry
	_, known := u.conns[conn]
	if put && proto.Unmarshal(e.Value(), &entry) == nil {
		u.conns[conn] = connState{status: entry.Status, lastActive: entry.LastActiveMs, rev: e.Revision()}
		u.lastSeen = max(u.lastSeen, entry.LastActiveMs)
		if !known {
			v.conns++
		}
	} else {
		if !known {
			return
		}
		delete(u.conns, conn)
		v.conns--
		// A per-key TTL's expiry comes as a purge, a closed connection's
		// delete marker as a delete.
		u.expired = e.Operation() == jetstream.KeyValuePurge
	}
	v.s.metrics.conns.Set(float64(v.conns))
	if !live {
		u.sent = u.status()
		u.wasConnected = len(u.conns) > 0
		return
	}
	v.changedLocked(u)
}

// status aggregates a user's connections.
func (u *user) status() string {
	if len(u.conns) == 0 {
		return Offline
	}
	for _, c := range u.conns {
		if c.status == Online {
			return Online
		}
	}
	return Away
}

// shown is the status contacts see: a user whose last connection went
// less than Grace ago is still shown as before.
func (u *user) shown(grace time.Duration, hold time.Time) string {
	st := u.status()
	if st == Offline && u.sent != "" && u.sent != Offline && time.Now().Before(u.offlineUntil(grace, hold)) {
		return u.sent
	}
	return st
}

// offlineUntil is when a user without connections may be shown offline:
// Grace after the last connection went, and not before the hold ends when
// it expired.
func (u *user) offlineUntil(grace time.Duration, hold time.Time) time.Time {
	at := u.offlineSince.Add(grace)
	if u.expired {
		at = maxTime(at, hold)
	}
	return at
}

// lastSeenAt is the newest activity of a connected user, or when an
// offline one was last seen (0: never).
func (u *user) lastSeenAt() int64 {
	seen := u.lastSeen
	for _, c := range u.conns {
		seen = max(seen, c.lastActive)
	}
	return seen
}

// changedLocked schedules the publication of a user's new status: offline
// after Grace, and never two events within Interval.
func (v *view) changedLocked(u *user) {
	connected := len(u.conns) > 0
	if !connected && u.wasConnected {
		u.offlineSince = time.Now()
	}
	u.wasConnected = connected
	v.scheduleLocked(u)
}

func (v *view) scheduleLocked(u *user) {
	if v.stopped {
		return
	}
	st := u.status()
	if st == u.sent {
		if u.timer != nil {
			u.timer.Stop()
			u.timer = nil
		}
		return
	}
	now := time.Now()
	at := u.sentAt.Add(v.s.cfg.Interval)
	if st == Offline {
		at = maxTime(at, u.offlineUntil(v.s.cfg.Grace, v.holdUntil))
	}
	if !at.After(now) {
		v.publishLocked(u, st)
		return
	}
	if u.timer != nil {
		u.timer.Stop()
	}
	u.timer = time.AfterFunc(at.Sub(now), func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		u.timer = nil
		v.scheduleLocked(u)
	})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// publishLocked announces a user's status on chat.evt.presence.<org>.<user>.
func (v *view) publishLocked(u *user, st string) {
	u.sent, u.sentAt = st, time.Now()
	p := &chatv1.Presence{UserId: u.id, Status: st, LastSeenAtMs: u.lastSeenAt()}
	data, err := proto.Marshal(&chatv1.Event{Body: &chatv1.Event_Presence{Presence: p}})
	if err == nil {
		err = v.s.nc.Publish(names.PresenceEvents(u.org, u.id), data)
	}
	if err != nil {
		v.s.log.Warn("publish presence", "org", u.org, "err", err)
		return
	}
	v.s.metrics.published.WithLabelValues(st).Inc()
	if st == Offline && p.LastSeenAtMs > 0 {
		v.s.saveLastSeen(u.org, u.id, p.LastSeenAtMs)
	}
}

// query answers for users of org, as their contacts see them.
func (v *view) query(org string, users []string) []*chatv1.Presence {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*chatv1.Presence, 0, len(users))
	for _, id := range users {
		u := v.users[org+"."+id]
		if u == nil {
			out = append(out, &chatv1.Presence{UserId: id, Status: Offline})
			continue
		}
		out = append(out, &chatv1.Presence{UserId: id, Status: u.shown(v.s.cfg.Grace, v.holdUntil), LastSeenAtMs: u.lastSeenAt()})
	}
	return out
}

// rev is the revision of a connection's key in the view (0: unknown).
func (v *view) rev(org, userID, conn string) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if u := v.users[org+"."+userID]; u != nil {
		return u.conns[conn].rev
	}
	return 0
}
