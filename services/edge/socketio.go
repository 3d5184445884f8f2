package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// The Socket.IO binding (docs/protocol.md section 6): Socket.IO v5 over
// Engine.IO 4, websocket transport only, at /socket.io/. This file takes a
// session from the HTTP request to its connect packet; after that it is a
// conn like any other, with a sioSession (sio_session.go) that decodes its
// packets into commands and turns its frames into packets (sio_render.go).

// socketIO is the edge's Socket.IO state: what the open packet announces
// and the sessions still waiting for their connect packet.
type socketIO struct {
	s     *Server
	open  []byte // the open packet's JSON, without the sid
	cache sioCache

	mu      sync.Mutex
	pending map[net.Conn]struct{} // guarded by mu: handshakes in progress
	closed  bool                  // guarded by mu: Shutdown cut them
}

func newSocketIO(s *Server) *socketIO {
	x := &socketIO{s: s, pending: map[net.Conn]struct{}{}}
	x.cache.init()
	return x
}

// pingTimeout is how long after a ping the pong may come. It is what the
// idle timeout leaves after the ping interval, so that a session that
// answers nothing ends when a /ws connection would; the client, which
// waits pingInterval + pingTimeout for a ping, outlasts the janitor's
// jitter (one sweep).
func (x *socketIO) pingTimeout() time.Duration {
	cfg := &x.s.cfg
	if d := cfg.IdleTimeout - cfg.PingInterval; d > 0 {
		return d
	}
	return cfg.PingInterval
}

// openPacket is the Engine.IO open packet of a new session: exactly the
// five keys, no upgrades (there is no polling to upgrade from).
func (x *socketIO) openPacket(sid string) []byte {
	b, err := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}{sid, []string{}, x.s.cfg.PingInterval.Milliseconds(), x.pingTimeout().Milliseconds(), x.s.cfg.MaxMessageBytes})
	if err != nil {
		panic(err)
	}
	return textFrame(append([]byte("0"), b...))
}

// acceptSocketIO serves /socket.io/: the query is checked (400 for
// anything but EIO=4 and the websocket transport), then the same upgrade
// checks as /ws but the token (per-address attempts, Origin), the upgrade,
// and the handshake, which waits for the connect packet and its token.
func (s *Server) acceptSocketIO(w http.ResponseWriter, r *http.Request) {
	if code, msg := sioQueryFault(r); msg != "" {
		sioBadRequest(w, code, msg)
		return
	}
	if !s.upgradeAllowed(w, r) {
		return
	}
	nc, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		s.log.Info("upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	s.sio.handshake(nc, early)
}

// sioQueryFault says what is wrong with a request's query, in Engine.IO's
// error codes (0 transport unknown, 1 session unknown, 3 bad request, 5
// unsupported protocol version); msg is "" for a good one.
func sioQueryFault(r *http.Request) (code int, msg string) {
	q := r.URL.Query()
	switch {
	case q.Get("EIO") != "4":
		return 5, "Unsupported protocol version: this server speaks Engine.IO 4 (EIO=4)"
	case q.Get("transport") != "websocket":
		return 0, `Transport unknown: only the websocket transport is served (socket.io-client: transports: ["websocket"]); HTTP long-polling is not`
	case q.Has("sid"):
		return 1, "Session ID unknown: there is no polling session to upgrade"
	case r.Method != http.MethodGet:
		return 3, "Bad request: a websocket session starts with GET"
	}
	return 0, ""
}

func sioBadRequest(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg})
}

// Refusals of the handshake, as Socket.IO connect errors (44): the client
// does not retry them by itself, so they are only for what a retry would
// not fix.
var (
	sioUnauthorized     = textFrame([]byte(`44{"message":"unauthorized","data":{"code":"unauthenticated"}}`))
	errSioHandshakeDone = errors.New("handshake ended")
)

// handshake runs a new session until its connect packet: it sends the open
// packet, reads Engine.IO packets for at most the connect timeout, checks
// the token of the connect packet for namespace "/" exactly as the upgrade
// at /ws does (Verify, then the connection limits), and turns the session
// into a conn. It runs on the upgrade's goroutine and writes to nc itself:
// nothing else does before the conn exists.
func (x *socketIO) handshake(nc net.Conn, early []byte) {
	s := x.s
	if !x.enter(nc) {
		hsClose(nc, CloseRestart, "server restarting")
		return
	}
	left := x.await(nc, early)
	x.leave(nc)
	if left == nil {
		return // refused or ended; nc is closed
	}
	id := left.id
	if ok, why := s.admit.admit(id.Org, id.User); !ok {
		// A retry can fix this one: the transport is closed without a
		// connect error, and socket.io-client reconnects with backoff.
		s.metrics.refused.WithLabelValues(why).Inc()
		s.log.Info("upgrade refused", "reason", why, "remote", nc.RemoteAddr().String(), "protocol", "socket.io")
		hsClose(nc, CloseTryAgain, "too many connections: "+why)
		return
	}
	if !s.track() {
		s.admit.release(id.Org, id.User)
		hsClose(nc, CloseRestart, "server restarting")
		return
	}
	_ = nc.SetDeadline(time.Time{})
	c := s.open(nc, id, left.rest, &sioSession{x: x}, func() {
		s.admit.release(id.Org, id.User)
		s.readers.Done()
	})
	c.begin()
}

// admitted is what a handshake leaves: who connected and the bytes read
// past the connect packet.
type admitted struct {
	id   Identity
	rest []byte
}

// await reads until a connect packet for "/" carries a good token. It
// returns nil when the session was refused or ended (nc is then closed).
func (x *socketIO) await(nc net.Conn, early []byte) *admitted {
	s := x.s
	deadline := time.Now().Add(s.cfg.SocketIOConnectTimeout)
	_ = nc.SetReadDeadline(deadline)
	if err := hsWrite(nc, x.openPacket(ids.New()), s.cfg.WriteTimeout); err != nil {
		_ = nc.Close()
		return nil
	}
	in := bytes.NewReader(early)
	fr := frameReader{
		r:        io.MultiReader(in, nc),
		maxBytes: s.cfg.MaxMessageBytes,
		onPing:   func(p []byte) { _ = hsWrite(nc, frame(ws.OpPong, p), s.cfg.WriteTimeout) },
		onFrame:  func() {},
	}
	for {
		msg, _, err := fr.next()
		if err != nil {
			x.handshakeFailed(nc, err)
			return nil
		}
		tok, err := x.connectToken(nc, msg)
		if err != nil {
			x.handshakeFailed(nc, err)
			return nil
		}
		if tok == nil {
			continue // not for "/", or an Engine.IO pong
		}
		id, err := s.auth.Verify(*tok)
		if err != nil || *tok == "" {
			label, why := "invalid token", "invalid token"
			if *tok == "" {
				label, why = "missing token", "no token in the connect packet"
			} else {
				why = err.Error()
			}
			s.metrics.authFailures.WithLabelValues(label).Inc()
			s.log.Info("upgrade refused", "reason", why, "remote", nc.RemoteAddr().String(), "protocol", "socket.io")
			_ = hsWrite(nc, sioUnauthorized, s.cfg.WriteTimeout)
			hsClose(nc, CloseNormal, "connect refused")
			return nil
		}
		rest := make([]byte, in.Len())
		_, _ = in.Read(rest)
		return &admitted{id: id, rest: rest}
	}
}

// connectToken takes one Engine.IO packet of a session not yet connected.
// It returns the token of a connect packet for "/" ("" when it has none),
// nil for a packet that is fine but not that, or an error that ends the
// session.
func (x *socketIO) connectToken(nc net.Conn, msg []byte) (*string, error) {
	if len(msg) == 0 {
		return nil, closeWith(ClosePolicy, "empty Engine.IO packet")
	}
	switch msg[0] {
	case '3':
		return nil, nil // a pong to nothing: harmless
	case '1':
		return nil, errSioHandshakeDone
	case '4':
	default:
		return nil, closeWith(ClosePolicy, "expected a Socket.IO connect packet")
	}
	p, err := parseSIO(msg[1:])
	if err != nil {
		return nil, err
	}
	if p.typ != sioConnect {
		return nil, closeWith(ClosePolicy, "the first Socket.IO packet must be a connect packet")
	}
	if p.nsp != "/" {
		_ = hsWrite(nc, sioInvalidNamespace(p.nsp), x.s.cfg.WriteTimeout)
		return nil, nil
	}
	var auth struct {
		Token any `json:"token"`
	}
	tok := ""
	if len(p.data) > 0 && json.Unmarshal(p.data, &auth) == nil {
		tok, _ = auth.Token.(string)
	}
	return &tok, nil
}

// handshakeFailed ends a session whose handshake failed with err.
func (x *socketIO) handshakeFailed(nc net.Conn, err error) {
	var ce *closeError
	switch {
	case errors.As(err, &ce):
		hsClose(nc, ce.code, ce.reason)
	case errors.Is(err, errPeerClosed), errors.Is(err, errSioHandshakeDone):
		hsClose(nc, CloseNormal, "")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if x.isClosed() {
				hsClose(nc, CloseRestart, "server restarting")
				return
			}
			x.s.log.Info("upgrade refused", "reason", "no connect packet in time", "remote", nc.RemoteAddr().String(), "protocol", "socket.io")
			hsClose(nc, ClosePolicy, "no connect packet in time")
			return
		}
		_ = nc.Close()
	}
}

// enter registers a handshake, so that Shutdown can cut it; false when
// the edge is shutting down.
func (x *socketIO) enter(nc net.Conn) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return false
	}
	x.pending[nc] = struct{}{}
	return true
}

func (x *socketIO) isClosed() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.closed
}

func (x *socketIO) leave(nc net.Conn) {
	x.mu.Lock()
	delete(x.pending, nc)
	x.mu.Unlock()
}

// shutdown cuts every handshake in progress: those clients reconnect as
// those of live sessions do.
func (x *socketIO) shutdown() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed = true
	for nc := range x.pending {
		_ = nc.SetReadDeadline(time.Now()) // the handshake's read ends at once
	}
}

func hsWrite(nc net.Conn, f []byte, timeout time.Duration) error {
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := nc.Write(f)
	return err
}

// hsClose sends a close frame and closes the socket.
func hsClose(nc net.Conn, code ws.StatusCode, reason string) {
	_ = hsWrite(nc, closeFrame(code, reason), time.Second)
	_ = nc.Close()
}
