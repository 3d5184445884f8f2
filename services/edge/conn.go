package edge

import (
	"bytes"
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
// Its reader reads frames, holding rmu, which owns the fields marked
// "owned by the reader": on Linux a goroutine started by the poller when
// the socket is readable (ready), elsewhere a goroutine for the
// connection's life (readAll). It checks each command in the order they
// came and hands it to its lane (lanes.go): commands of one conversation
// run one at a time in that order, others side by side, at most
// MaxCommandsInFlight at once, on goroutines that end with their lane's
// work; the state they share is guarded by cmu. Its
// queued frames are written by one of the edge's writers (writer.go), or by
// a goroutine of its own while its socket cannot take them (slowFlush):
// whoever holds the writing role. An idle polled connection has no
// goroutine and no buffer. The janitor (Server.sweep) calls tick. rmu
// comes first and qmu last in the edge's lock order (doc.go, Locks).
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

	// Owned by the reader (rmu).
	buckets map[string]*localBucket // rate limits while the service is down

	// Guarded by cmu: the commands in flight (lanes.go) and what they
	// share. cmu comes right after rmu in the lock order and is held only
	// for map and counter updates (and room.has, under mayJoinAnother).
	cmu      sync.Mutex
	inflight int32            // commands dispatched and not yet answered
	joining  int32            // joins of conversations not in rooms, in flight
	lanes    map[string]*lane // lanes with a command running
	wake     chan struct{}    // closed when a command ends, if somebody waits
	ended    *closeError      // the close a command's reply asked for
	rooms    map[string]*room // joined conversations by id
	failures window           // authentication and authorization failures
	invalid  window           // invalid and refused commands

	// Guarded by qmu: the send queue.
	qmu     sync.Mutex
	queue   [][]byte
	spare   [][]byte
	queued  int  // bytes in queue
	writing bool // the writing role is taken: a writer has or will take the queue
	closing bool // a close frame is queued: nothing more is accepted
	hurry   bool // closed for being slow: short write deadline

	// Set once by the first holder of the writing role (writer.go); the
	// janitor reads it.
	wst atomic.Pointer[writeState]

	// Guarded by remMu: the last conversations a membership change took this
	// connection out of (room.deliver), so that the same event coming on
	// the user's subject is not delivered twice (hub.deliverUser).
	remMu    sync.Mutex
	removals [4]removal
	rmNext   int

	done      chan struct{} // closed when nc is closed
	closeOnce sync.Once

	// Reading. rmu is held by whoever reads (ready, readAll) or takes the
	// connection apart (finish): it owns the fields marked "owned by the
	// reader".
	rmu        sync.Mutex
	fr         frameReader
	polled     bool // the poller watches fd; no reader goroutine
	stopped    bool // guarded by cmu: the connection ends, no command starts
	fd         int
	finishOnce sync.Once
	onFinish   func() // from the upgrade: releases its admission and count

	sio *sioSession // set by open for a Socket.IO session, else nil
}

// open sets a new connection up: registered, subscribed to its user's
// events, reported to presence, greeted with the session event. It runs on
// the upgrade's goroutine, whose deep stack ends with it. early holds bytes
// that came behind the upgrade request; onFinish runs when the connection
// is taken apart; sio is set for a Socket.IO session. Reading starts with
// begin.
func (s *Server) open(nc net.Conn, id Identity, early []byte, sio *sioSession, onFinish func()) *conn {
	now := time.Now()
	c := &conn{
		s: s, nc: nc, seq: connSeq.Add(1), id: ids.New(), org: id.Org, user: id.User,
		lastPing: now.UnixNano(), rooms: map[string]*room{}, buckets: map[string]*localBucket{}, done: make(chan struct{}),
		onFinish: onFinish,
	}
	c.lastRead.Store(now.UnixNano())
	c.lastActive.Store(now.UnixNano())
	c.expires.Store(id.Expires.UnixNano())
	var rd io.Reader = nc
	if len(early) > 0 {
		rd = io.MultiReader(bytes.NewReader(early), nc)
	}
	c.fr = frameReader{
		r:        rd,
		maxBytes: s.cfg.MaxMessageBytes,
		onPing:   func(p []byte) { c.send(frame(ws.OpPong, p)) },
		onFrame:  func() { c.lastRead.Store(time.Now().UnixNano()) },
	}
	// Polled or not is decided before anything is sent: the writer reads
	// it when it closes the socket.
	if s.poller != nil && len(early) == 0 {
		c.fd, c.polled = fdOf(nc)
		c.fr.yield = c.polled
	}
	if sio != nil {
		sio.attach(c) // its connect reply is the first packet
	}

	s.conns.add(c)
	s.metrics.connections.WithLabelValues(c.org).Inc()
	s.hub.addUser(c)
	s.hub.followUser(c)
	c.reportPresence(false)
	s.log.Info("connected", "org", c.org, "user", c.user, "conn", c.id, "remote", nc.RemoteAddr().String())
	c.send(s.sessionFrame(c, id.Expires))
	return c
}

// begin starts reading: through the poller when the connection is polled
// (an idle one then has no goroutine), else on a reader goroutine.
func (c *conn) begin() {
	if !c.polled {
		go c.readAll()
		return
	}
	if err := c.s.poller.add(c); err != nil {
		c.s.log.Warn("poll", "conn", c.id, "err", err)
		c.closeNow() // takes a polled connection apart
	}
}

// readAll is a connection's reader goroutine: it reads until the
// connection ends.
func (c *conn) readAll() {
	c.rmu.Lock()
	reason := ""
	for reason == "" {
		reason = c.step()
	}
	c.rmu.Unlock()
	c.finish(reason)
}

// ready runs when the poller saw the socket readable: it reads and runs one
// frame, then gives the socket back to the poller.
func (c *conn) ready() {
	c.rmu.Lock()
	// A frame that started must finish within the idle timeout: a
	// half-sent frame cannot hold this goroutine for ever.
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	reason := c.step()
	_ = c.nc.SetReadDeadline(time.Time{})
	c.rmu.Unlock()
	if reason == "" {
		if err := c.s.poller.rearm(c); err == nil {
			return
		}
		reason = "connection closed"
	}
	c.closeNow()
	c.finish(reason)
}

// finish takes an ended connection apart, once.
func (c *conn) finish(reason string) {
	c.finishOnce.Do(func() {
		c.rmu.Lock()
		defer c.rmu.Unlock()
		s := c.s
		if why := c.stopCommands(); why != "" {
			reason = why
		}
		c.leaveAll()
		s.hub.removeUser(c)
		s.hub.unfollowUser(c)
		s.conns.remove(c)
		c.reportPresence(true)
		s.metrics.connections.WithLabelValues(c.org).Dec()
		s.log.Info("disconnected", "org", c.org, "user", c.user, "conn", c.id, "reason", reason)
		if c.onFinish != nil {
			c.onFinish()
		}
	})
}

// step reads one message (or, polled, one control frame) and runs it. It
// returns "" to go on, or why the connection ended. Called with rmu held.
func (c *conn) step() string {
	msg, peerCode, err := c.fr.next()
	if err == nil && msg != nil {
		err = c.handle(msg)
	}
	switch e := err.(type) {
	case nil:
		return ""
	case *closeError:
		c.endWith(e)
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

// waitClosed waits for the writer to send the close frame and close the
// socket, or closes it after the write timeout.
func (c *conn) waitClosed() {
	select {
	case <-c.done:
	case <-time.After(c.s.cfg.WriteTimeout + time.Second):
		c.closeNow()
	}
}

// closeNow closes the socket without a close frame. A polled connection
// has no reader to notice, so it is taken apart here.
func (c *conn) closeNow() {
	c.closeOnce.Do(func() {
		if c.polled {
			c.s.poller.remove(c) // before the descriptor can be reused
		}
		_ = c.nc.Close()
		close(c.done)
		if c.polled {
			go c.finish("connection closed")
		}
	})
}

// tick is the janitor's visit: ping, idle timeout, token expiry, presence.
func (c *conn) tick(now time.Time, hb *heartbeats) {
	n := now.UnixNano()
	cfg := &c.s.cfg
	if c.stuck(n, cfg.WriteTimeout) {
		c.s.log.Info("write timed out", "conn", c.id)
		c.closeNow()
		return
	}
	if c.sio != nil && c.sio.lost(c, n) {
		c.close(CloseNormal, "ping timeout", false)
		return
	}
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
