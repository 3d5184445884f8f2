package edge

import (
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/proto/names"
)

// watches are the edge's presence subscriptions. A user whose presence a
// room here needs is watched once, whatever the number of such rooms: with
// a subscription to the user's subject, up to PresenceWatchesPerOrg users
// of one organization and MaxPresenceSubscriptions such subscriptions in
// all. Past either, the organization is watched with one subscription to
// all its users' presence (chat.evt.presence.<org>.*), and what no room
// needs is dropped on arrival (hub.route). So what one socket can make this
// edge and every NATS node hold for presence is PresenceWatchesPerOrg
// subscriptions, whatever it joins, and the edge holds at most
// MaxPresenceSubscriptions plus one per organization.
//
// An organization goes back to a subscription per user when it needs half
// its bound or less, so that a spike does not leave it on the wildcard.
//
// mu comes after a room's pmu and before a hub shard (doc.go, Locks).
type watches struct {
	mu   sync.Mutex
	orgs map[string]*orgWatch // guarded by mu
	subs int                  // per-user subscriptions held; guarded by mu
}

// orgWatch is the watch of one organization's users. Guarded by
// watches.mu.
type orgWatch struct {
	users map[string]*nats.Subscription // watched users: each one's subscription, nil under all
	all   *nats.Subscription            // the wildcard, while the organization is past its bound
}

// watch starts watching user of org. Called with mu held.
func (h *hub) watch(org, user string) {
	w := &h.watches
	ow := w.orgs[org]
	if ow == nil {
		ow = &orgWatch{users: map[string]*nats.Subscription{}}
		w.orgs[org] = ow
	}
	ow.users[user] = nil
	if ow.all == nil && (len(ow.users) > h.s.cfg.PresenceWatchesPerOrg || w.subs >= h.s.cfg.MaxPresenceSubscriptions) {
		h.watchAll(org, ow)
	}
	if ow.all == nil {
		ow.users[user] = h.subscribeUser(org, user)
	}
}

// unwatch stops watching user of org. Called with mu held.
func (h *hub) unwatch(org, user string) {
	w := &h.watches
	ow := w.orgs[org]
	if ow == nil {
		return
	}
	if sub, ok := ow.users[user]; ok {
		h.unsubscribeUser(sub)
		delete(ow.users, user)
	}
	switch {
	case len(ow.users) == 0:
		if ow.all != nil {
			h.unsubscribeAll(ow)
		}
		delete(w.orgs, org)
	case ow.all != nil && len(ow.users) <= h.s.cfg.PresenceWatchesPerOrg/2 && w.subs+len(ow.users) <= h.s.cfg.MaxPresenceSubscriptions/2:
		h.watchEach(org, ow)
	}
}

// watchAll moves org to the wildcard: subscribed before the users'
// subscriptions go, so that no change falls in between (a repeat is
// dropped as the same status). Called with mu held.
func (h *hub) watchAll(org string, ow *orgWatch) {
	subject := names.PresenceEvents(org, "*")
	sub, err := h.s.nc.ChanSubscribe(subject, h.shard(subject).ch)
	if err != nil {
		h.s.log.Warn("subscribe presence", "org", org, "err", err)
		return // a subscription per user, then
	}
	ow.all = sub
	for u, s := range ow.users {
		h.unsubscribeUser(s)
		ow.users[u] = nil
	}
	h.s.metrics.presenceSubs.WithLabelValues("organization").Inc()
}

// watchEach moves org back to a subscription per user. Called with mu
// held.
func (h *hub) watchEach(org string, ow *orgWatch) {
	for u := range ow.users {
		ow.users[u] = h.subscribeUser(org, u)
	}
	h.unsubscribeAll(ow)
}

func (h *hub) unsubscribeAll(ow *orgWatch) {
	_ = ow.all.Unsubscribe()
	ow.all = nil
	h.s.metrics.presenceSubs.WithLabelValues("organization").Dec()
}

func (h *hub) subscribeUser(org, user string) *nats.Subscription {
	subject := names.PresenceEvents(org, user)
	sub, err := h.s.nc.ChanSubscribe(subject, h.shard(subject).ch)
	if err != nil {
		h.s.log.Warn("subscribe presence", "org", org, "err", err)
		return nil
	}
	h.watches.subs++
	h.s.metrics.presenceSubs.WithLabelValues("user").Inc()
	return sub
}

func (h *hub) unsubscribeUser(sub *nats.Subscription) {
	if sub == nil {
		return
	}
	_ = sub.Unsubscribe()
	h.watches.subs--
	h.s.metrics.presenceSubs.WithLabelValues("user").Dec()
}
