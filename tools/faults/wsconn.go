package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// frame is a server frame: a reply (with the command's id) or an event.
type frame struct {
	ID   string          `json:"id,omitempty"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// errorData is the data of error, validation-error and rate-limit-exceeded.
type errorData struct {
	Code         string `json:"code"`
	RetryAfterMs int64  `json:"retryAfterMs"`
}

// replyError is an error answer; code is the wire code.
type replyError struct{ code string }

func (e *replyError) Error() string { return "server answered " + e.code }

// errConnLost: the socket went away before the reply.
var errConnLost = errors.New("connection lost")

// errTimeout: no reply in time.
var errTimeout = errors.New("no reply in time")

// codeOf is the ledger's name of a failed attempt.
func codeOf(err error) string {
	var re *replyError
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.Is(err, errTimeout):
		return answerTimeout
	default:
		return answerConnLost
	}
}

// wsConn is one client WebSocket: a reader goroutine hands replies to
// their waiting request and events to the events channel; writes are
// serialized by wmu (the reader writes pongs and close replies too).
type wsConn struct {
	nc  net.Conn
	src io.Reader

	wmu sync.Mutex // serializes frame writes

	pmu     sync.Mutex // guards pending
	pending map[string]chan frame

	nextID    atomic.Int64
	events    chan frame    // owned by the reader: closed when it ends
	done      chan struct{} // closed when the reader ends
	closeCode atomic.Int32  // the server's close code, 0 if none
}

// dialWS opens a WebSocket to url (loopback only) with token.
func dialWS(url, token string, timeout time.Duration) (*wsConn, error) {
	d := ws.Dialer{
		Timeout: timeout,
		Header:  ws.HandshakeHeaderString("Authorization: Bearer " + token + "\r\n"),
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if err := checkLoopback(addr); err != nil {
				return nil, err
			}
			var nd net.Dialer
			return nd.DialContext(ctx, network, addr)
		},
	}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	c := &wsConn{nc: nc, src: nc, pending: map[string]chan frame{},
		events: make(chan frame, 8192), done: make(chan struct{})}
	if br != nil {
		c.src = br
	} else {
		c.src = bufio.NewReaderSize(nc, 32<<10)
	}
	go c.readLoop()
	return c, nil
}

// checkLoopback refuses any address but a loopback one.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("refusing %s: loopback only", addr)
	}
	return nil
}

type lockedWriter struct{ c *wsConn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	_ = w.c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return w.c.nc.Write(p)
}

func (c *wsConn) readLoop() {
	defer close(c.done)
	defer close(c.events)
	defer c.failPending()
	defer func() { _ = c.nc.Close() }()
	w := lockedWriter{c}
	control := wsutil.ControlFrameHandler(w, ws.StateClientSide)
	rd := wsutil.Reader{Source: c.src, State: ws.StateClientSide, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return
		}
		if h.OpCode.IsControl() {
			if err := control(h, &rd); err != nil {
				var ce wsutil.ClosedError
				if errors.As(err, &ce) {
					c.closeCode.Store(int32(ce.Code))
				}
				return
			}
			continue
		}
		p, err := io.ReadAll(&rd)
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(p, &f) != nil {
			continue
		}
		c.dispatch(f)
	}
}

func (c *wsConn) dispatch(f frame) {
	if f.ID != "" {
		c.pmu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.pmu.Unlock()
		if ch != nil {
			ch <- f
		}
		return
	}
	select {
	case c.events <- f:
	default: // the application fell far behind: drop, a gap fill recovers it
	}
}

func (c *wsConn) failPending() {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
}

// request sends a command and waits for its reply; an error reply is a
// *replyError, a lost socket errConnLost, no reply errTimeout.
func (c *wsConn) request(typ string, data any, timeout time.Duration) (json.RawMessage, error) {
	id := "c" + strconv.FormatInt(c.nextID.Add(1), 10)
	payload, err := json.Marshal(map[string]any{"id": id, "type": typ, "data": data})
	if err != nil {
		return nil, err
	}
	ch := make(chan frame, 1)
	c.pmu.Lock()
	select {
	case <-c.done:
		c.pmu.Unlock()
		return nil, errConnLost
	default:
	}
	c.pending[id] = ch
	c.pmu.Unlock()
	if err := wsutil.WriteClientText(lockedWriter{c}, payload); err != nil {
		c.forget(id)
		return nil, errConnLost
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, errConnLost
		}
		return replyData(f)
	case <-t.C:
		c.forget(id)
		return nil, errTimeout
	}
}

func (c *wsConn) forget(id string) {
	c.pmu.Lock()
	delete(c.pending, id)
	c.pmu.Unlock()
}

// replyData returns an ack's data or the error a reply carries.
func replyData(f frame) (json.RawMessage, error) {
	switch f.Type {
	case "ack", "pong":
		return f.Data, nil
	case "error", "validation-error", "rate-limit-exceeded":
		var e errorData
		_ = json.Unmarshal(f.Data, &e)
		if e.Code == "" {
			e.Code = f.Type
		}
		return nil, &replyError{code: e.Code}
	}
	return nil, &replyError{code: "unexpected " + f.Type}
}

// close sends a normal close and closes the socket.
func (c *wsConn) close() {
	_ = wsutil.WriteClientMessage(lockedWriter{c}, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.nc.Close()
	<-c.done
}

func (c *wsConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}
