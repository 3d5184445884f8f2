package edge

import (
	"sync"
	"time"
)

// activityThrottle passes one socket at most one activity per conversation
// per activityEvery. The first after a quiet second leaves at once; those
// within the second replace each other, and the newest leaves when the
// second is over, so the last activity of a burst is never lost. A
// conversation's entry lives while activity comes (its timer), then goes.
//
// mu is a leaf: the frame is queued after it is let go.
type activityThrottle struct {
	c *conn

	mu      sync.Mutex
	pending map[string]*pendingActivity // by conversation; guarded by mu
	stopped bool                        // guarded by mu
}

// pendingActivity is one conversation's state on one socket. Guarded by
// activityThrottle.mu.
type pendingActivity struct {
	frame []byte // the newest activity waiting for the second to end; nil if none
	timer *time.Timer
}

// offer passes the frame of an activity of conv at once or keeps it as
// the newest for the end of the second.
func (t *activityThrottle) offer(h *hub, conv string, frame []byte, now time.Time) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	p := t.pending[conv]
	if p != nil {
		p.frame = frame // the second is not over: the newest waits
		t.mu.Unlock()
		return
	}
	p = &pendingActivity{}
	t.pending[conv] = p
	p.timer = time.AfterFunc(activityEvery, func() { t.tick(h, conv, p) })
	t.mu.Unlock()
	t.deliver(h, frame)
}

// tick ends a conversation's second: the activity that waited leaves and
// starts another second; with none, the entry goes.
func (t *activityThrottle) tick(h *hub, conv string, p *pendingActivity) {
	t.mu.Lock()
	if t.stopped || t.pending[conv] != p {
		t.mu.Unlock()
		return
	}
	frame := p.frame
	p.frame = nil
	if frame == nil {
		delete(t.pending, conv)
	} else {
		p.timer = time.AfterFunc(activityEvery, func() { t.tick(h, conv, p) })
	}
	t.mu.Unlock()
	// A socket that joined meanwhile gets message:new instead.
	if frame != nil && !h.joined(t.c, conv) {
		t.deliver(h, frame)
	}
}

func (t *activityThrottle) deliver(h *hub, frame []byte) {
	if t.c.send(frame) {
		h.s.metrics.fanout.WithLabelValues("delivered").Inc()
	}
}

// stop ends the socket's throttles: nothing more is sent.
func (t *activityThrottle) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for conv, p := range t.pending {
		p.timer.Stop()
		delete(t.pending, conv)
	}
}
