package edge

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

var connSeq atomic.Uint64

// conn is one client WebSocket.
//
// Its reader goroutine (serve) reads frames, runs commands one at a time in
// the order they came and owns the fields marked so. Its writer (flush) runs
// only while the send queue holds frames: an idle connection has one
// goroutine and no buffer. The janitor (Server.sweep) calls tick.
type conn struct {
	s         *Server
	nc        net.Conn
	seq       uint64 // shard key in the connection set
	id        string
	org, user string

	lastRead   atomic.Int64  // unix nanos of the last frame read
	lastActive atomic.Int64  // unix nanos of the last command (presence)
	expires    atomic.Int64  // unix nanos of the token's exp
	warned     atomic.Bool   // auth:expiring was sent for this exp
	away       atomic.Bool   // presence:set away
	reported   atomic.Uint32 // the status last reported to presence
	lastPing   int64         // owned by the janitor

	// Owned by the reader.
	rooms    map[string]*room        // joined conversations by id
	failures window                  // authentication and authorization failures
	invalid  window                  // invalid commands
	buckets  map[string]*localBucket // rate limits while the service is down

	// Guarded by qmu: the send queue.
	qmu     sync.Mutex
	queue   [][]byte
	spare   [][]byte
	queued  int  // bytes in queue
	writing bool // flush is running
	closing bool // a close frame is queued: nothing more is accepted
	hurry   bool // closed for being slow: short write deadline
	flushFn func()

	done      chan struct{} // closed when nc is closed
	closeOnce sync.Once
}

// open sets a new connection up: registered, subscribed to its user's
// events, reported to presence, greeted with the session event. It runs on
// the upgrade's goroutine, whose deep stack ends with it.
func (s *Server) open(nc net.Conn, id Identity) *conn {
	now := time.Now()
	c := &conn{
		s: s, nc: nc, seq: connSeq.Add(1), id: ids.New(), org: id.Org, user: id.User,
		lastPing: now.UnixNano(), rooms: map[string]*room{}, buckets: map[string]*localBucket{}, done: make(chan struct{}),
	}
	c.flushFn = c.flush
	c.lastRead.Store(now.UnixNano())
	c.lastActive.Store(now.UnixNano())
	c.expires.Store(id.Expires.UnixNano())

	s.conns.add(c)
	s.metrics.connections.WithLabelValues(c.org).Inc()
	s.hub.addUser(c)
	c.reportPresence(false)
	s.log.Info("connected", "org", c.org, "user", c.user, "conn", c.id, "remote", nc.RemoteAddr().String())
	c.send(s.sessionFrame(c, id.Expires))
	return c
}

// run is the connection's reader goroutine, counted by Server.track: it
// reads until the connection ends, then takes it apart. It starts with a
// small stack, and an idle connection keeps it small.
func (c *conn) run(rd io.Reader, done func()) {
	defer done()
	reason := c.readLoop(rd)
	s := c.s
	c.leaveAll()
	s.hub.removeUser(c)
	s.conns.remove(c)
	c.reportPresence(true)
	s.metrics.connections.WithLabelValues(c.org).Dec()
	s.log.Info("disconnected", "org", c.org, "user", c.user, "conn", c.id, "reason", reason)
}

// readLoop reads and runs commands until the connection ends, and returns
// why it ended (for the log).
func (c *conn) readLoop(rd io.Reader) string {
	fr := frameReader{
		r:        rd,
		maxBytes: c.s.cfg.MaxMessageBytes,
		onPing:   func(p []byte) { c.send(frame(ws.OpPong, p)) },
		onFrame:  func() { c.lastRead.Store(time.Now().UnixNano()) },
	}
	for {
		msg, peerCode, err := fr.next()
		if err == nil {
			err = c.handle(msg)
		}
		switch e := err.(type) {
		case nil:
			continue
		case *closeError:
			c.close(e.code, e.reason, false)
			c.waitClosed()
			return e.reason
		default:
			if err == errPeerClosed {
				c.s.metrics.closes.WithLabelValues("client").Inc()
				c.close(peerCode, "", false)
				c.waitClosed()
				return "closed by client"
			}
			// The socket failed, or the writer closed it.
			c.closeNow()
			return "connection lost: " + err.Error()
		}
	}
}

// waitClosed waits for the writer to send the close frame and close the
// socket, or closes it after the write timeout.
func (c *conn) waitClosed() {
	select {
	case <-c.done:
	case <-time.After(c.s.cfg.WriteTimeout + time.Second):
		c.closeNow()
	}
}

// closeNow closes the socket without a close frame.
func (c *conn) closeNow() {
	c.closeOnce.Do(func() {
		_ = c.nc.Close()
		close(c.done)
	})
}

// tick is the janitor's visit: ping, idle timeout, token expiry, presence.
func (c *conn) tick(now time.Time, hb *heartbeats) {
	n := now.UnixNano()
	cfg := &c.s.cfg
	if n-c.lastRead.Load() > int64(cfg.IdleTimeout) {
		c.close(CloseNormal, "idle timeout", false)
		return
	}
	exp := c.expires.Load()
	if n >= exp {
		c.close(CloseTokenExpired, "token expired", false)
		return
	}
	if n >= exp-int64(cfg.ExpiryWarning) && c.warned.CompareAndSwap(false, true) {
		c.send(c.s.expiringFrame(time.Unix(0, exp)))
	}
	if n-c.lastPing >= int64(cfg.PingInterval) {
		c.lastPing = n
		c.send(pingFrame)
	}
	hb.visit(c)
}

// window counts events within a sliding span; owned by one goroutine.
type window struct{ times []int64 }

// hit records an event at now and reports whether limit events happened
// within span.
func (w *window) hit(now time.Time, limit int, span time.Duration) bool {
	n := now.UnixNano()
	keep := w.times[:0]
	for _, t := range w.times {
		if n-t < int64(span) {
			keep = append(keep, t)
		}
	}
	w.times = append(keep, n)
	return len(w.times) >= limit
}
