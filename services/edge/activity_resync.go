package edge

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Resync of the followed sets (activity.go). The membership events that
// keep a follower's set current are core NATS, at most once: those
// published while the edge's NATS connection was reconnecting are gone,
// and so are those NATS dropped because a hub shard's channel was full
// (slow consumer). A lost removal would leave the edge following a
// conversation for a user who was removed from it, and handing that user
// its previews: so after a reconnect, and after a slow consumer on a
// user's or an activity subject, every follower's conversations are asked
// of messaging again (as one of the user's sockets, like the first load)
// and the answer replaces the followed set, with the events seen during
// the load kept as at the first load.
//
// At most one resync runs; a trigger during one runs one more after it.
// A resync asks for resyncWorkers users at a time, and asks again for
// those messaging did not answer, up to resyncPasses times resyncPause
// apart (after a failover messaging may be reconnecting too).

const (
	resyncWorkers = 8
	resyncPasses  = 3
	resyncPause   = time.Second
)

// resyncState debounces the resyncs. Guarded by activity.mu.
type resyncState struct {
	running bool // a resync's goroutine is live
	again   bool // a trigger came during it: one more after it
	reason  string
}

// followResyncTriggers chains the edge's handlers after nc's own (kit/natsx
// logs reconnects and asynchronous errors): a reconnect, and a slow
// consumer on a user's or an activity subject, schedule a resync.
func (s *Server) followResyncTriggers() {
	prevReconnect := s.nc.ReconnectHandler()
	s.nc.SetReconnectHandler(func(nc *nats.Conn) {
		if prevReconnect != nil {
			prevReconnect(nc)
		}
		s.hub.scheduleResync("reconnect")
	})
	prevErr := s.nc.ErrorHandler()
	s.nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if prevErr != nil {
			prevErr(nc, sub, err)
		}
		if errors.Is(err, nats.ErrSlowConsumer) && sub != nil && followsMembership(sub.Subject) {
			s.hub.scheduleResync("slow_consumer")
		}
	})
}

// followsMembership reports whether a message lost on subject may be a
// follower's membership event or an activity (whose loss alone would not
// leak, but shares the shard whose channel overflowed).
func followsMembership(subject string) bool {
	return strings.HasPrefix(subject, "chat.evt.user.") || strings.HasPrefix(subject, "chat.evt.act.")
}

// scheduleResync starts a resync, or asks the one running for another
// after it. It does not block: it runs on nats.go's callback goroutine.
func (h *hub) scheduleResync(reason string) {
	if h.fctx.Err() != nil {
		return // the edge is shut down
	}
	a := &h.act
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.resync.running {
		a.resync.again, a.resync.reason = true, reason
		return
	}
	a.resync.running = true
	h.fwg.Add(1)
	go h.resyncLoop(reason)
}

// resyncLoop runs resyncs until no trigger came during the last one.
func (h *hub) resyncLoop(reason string) {
	defer h.fwg.Done()
	for {
		h.resyncAll(reason)
		a := &h.act
		a.mu.Lock()
		if !a.resync.again || h.fctx.Err() != nil {
			a.resync.running = false
			a.mu.Unlock()
			return
		}
		reason = a.resync.reason
		a.resync.again = false
		a.mu.Unlock()
	}
}

// resyncAll reloads every follower's set, asking again for those
// messaging did not answer, and counts and logs the resync.
func (h *hub) resyncAll(reason string) {
	start := time.Now()
	a := &h.act
	a.mu.Lock()
	todo := make([]*follower, 0, len(a.users))
	for _, f := range a.users {
		todo = append(todo, f)
	}
	a.mu.Unlock()
	users := len(todo)
	for pass := 0; pass < resyncPasses && len(todo) > 0; pass++ {
		if pass > 0 {
			select {
			case <-h.fctx.Done():
				return
			case <-time.After(resyncPause):
			}
		}
		todo = h.reloadFollowers(todo)
	}
	h.s.metrics.activityResyncs.WithLabelValues(reason).Inc()
	if len(todo) > 0 {
		h.s.log.Warn("activity resync: some users' conversations could not be listed; their activity may be stale until they reconnect",
			"reason", reason, "users", users, "failed", len(todo), "took", time.Since(start).Round(time.Millisecond))
		return
	}
	h.s.log.Info("activity resync", "reason", reason, "users", users, "took", time.Since(start).Round(time.Millisecond))
}

// reloadFollowers reloads the sets of todo, resyncWorkers at a time, and
// returns those messaging did not answer for.
func (h *hub) reloadFollowers(todo []*follower) []*follower {
	next := make(chan *follower)
	var mu sync.Mutex
	var failed []*follower
	var wg sync.WaitGroup
	for range min(resyncWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range next {
				if !h.reloadFollower(f) {
					mu.Lock()
					failed = append(failed, f)
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range todo {
		if h.fctx.Err() != nil {
			break
		}
		next <- f
	}
	close(next)
	wg.Wait()
	return failed
}

// reloadFollower asks for f's conversations as one of its sockets and
// replaces its set; false when messaging did not answer.
func (h *hub) reloadFollower(f *follower) bool {
	a := &h.act
	a.mu.Lock()
	if a.users[f.org+"."+f.user] != f {
		a.mu.Unlock()
		return true // the user left
	}
	var who *conn
	for c := range f.conns.all() {
		who = c
		break
	}
	gen := f.beginLoadLocked()
	a.mu.Unlock()
	return h.loadFollowed(who, f, gen)
}
