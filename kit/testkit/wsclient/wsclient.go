// Package wsclient is for tests only: a small WebSocket client of
// Switchboard's JSON protocol over real sockets, which the end-to-end tests
// drive. No binary imports it (the load generator has its own client), and
// it is not a client library for applications.
package wsclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Frame is one server frame.
type Frame struct {
	ID   string          `json:"id,omitempty"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Decode decodes the frame's data into v.
func (f Frame) Decode(v any) error { return json.Unmarshal(f.Data, v) }

func (f Frame) String() string { return fmt.Sprintf("%s %s %s", f.ID, f.Type, f.Data) }

// Client is one connection. Frames are read by a goroutine into a queue;
// server pings are answered.
type Client struct {
	conn net.Conn
	wmu  sync.Mutex

	mu        sync.Mutex
	cond      *sync.Cond
	frames    []Frame
	closed    bool
	closeCode int // 0 until a close frame came; -1 if the socket ended without one
	closeMsg  string
	pings     int
}

// Options for Dial.
type Options struct {
	// Header is sent with the upgrade (Authorization, Origin, ...).
	Header http.Header
	// Timeout bounds the dial and handshake. Default 5s.
	Timeout time.Duration
}

// StatusError is a refused upgrade: the HTTP status.
type StatusError int

func (e StatusError) Error() string { return fmt.Sprintf("upgrade refused: HTTP %d", int(e)) }

// Dial connects to url (ws://host/ws?...). A refused upgrade is a
// StatusError.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	d := ws.Dialer{Timeout: opts.Timeout}
	if opts.Header != nil {
		d.Header = ws.HandshakeHeaderHTTP(opts.Header)
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, StatusError(se)
		}
		return nil, err
	}
	c := &Client{conn: conn}
	c.cond = sync.NewCond(&c.mu)
	var r io.Reader = conn
	if br != nil && br.Buffered() > 0 {
		early, _ := br.Peek(br.Buffered())
		r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	go c.read(bufio.NewReader(r))
	return c, nil
}

// DialToken connects with the token in the Authorization header.
func DialToken(ctx context.Context, url, token string) (*Client, error) {
	return Dial(ctx, url, Options{Header: http.Header{"Authorization": {"Bearer " + token}}})
}

func (c *Client) read(r io.Reader) {
	defer func() {
		c.mu.Lock()
		c.closed = true
		if c.closeCode == 0 {
			c.closeCode = -1
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		_ = c.conn.Close()
	}()
	var msg []byte
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.mu.Lock()
			c.pings++
			c.mu.Unlock()
			_ = c.write(ws.OpPong, p)
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := 1005, ""
			if len(p) >= 2 {
				code, reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			c.mu.Lock()
			c.closeCode, c.closeMsg = code, reason
			c.mu.Unlock()
			_ = c.write(ws.OpClose, p[:min(len(p), 2)])
			return
		}
		msg = append(msg, p...)
		if !h.Fin {
			continue
		}
		var f Frame
		if err := json.Unmarshal(msg, &f); err != nil {
			f = Frame{Type: "raw", Data: json.RawMessage(fmt.Sprintf("%q", msg))}
		}
		msg = nil
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

func (c *Client) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	f := ws.NewFrame(op, true, append([]byte(nil), p...))
	return ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f))
}

// WriteFrame sends one frame as given (for protocol tests).
func (c *Client) WriteFrame(f ws.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return ws.WriteFrame(c.conn, f)
}

// SendText sends a text frame.
func (c *Client) SendText(p []byte) error { return c.write(ws.OpText, p) }

// Send sends a command {"id", "type", "data"}; an empty id is left out and
// a nil data too.
func (c *Client) Send(id, typ string, data any) error {
	m := map[string]any{"type": typ}
	if id != "" {
		m["id"] = id
	}
	if data != nil {
		m["data"] = data
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.SendText(b)
}

// Close sends a close frame with code and closes the socket.
func (c *Client) Close() {
	p := make([]byte, 2)
	binary.BigEndian.PutUint16(p, 1000)
	_ = c.write(ws.OpClose, p)
	_ = c.conn.Close()
}

// Kill closes the socket without a close frame.
func (c *Client) Kill() { _ = c.conn.Close() }

// ErrTimeout is returned when nothing matching came in time.
var ErrTimeout = errors.New("wsclient: timed out")

// ErrClosed is returned when the connection ended first.
var ErrClosed = errors.New("wsclient: connection closed")

// Wait returns (and removes) the first queued frame for which match is
// true, waiting up to timeout.
func (c *Client) Wait(timeout time.Duration, match func(Frame) bool) (Frame, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i, f := range c.frames {
			if match(f) {
				c.frames = append(c.frames[:i], c.frames[i+1:]...)
				return f, nil
			}
		}
		if c.closed {
			return Frame{}, fmt.Errorf("%w (code %d %q)", ErrClosed, c.closeCode, c.closeMsg)
		}
		if !time.Now().Before(deadline) {
			return Frame{}, ErrTimeout
		}
		c.cond.Wait()
	}
}

// Next returns the next frame of type typ.
func (c *Client) Next(typ string, timeout time.Duration) (Frame, error) {
	return c.Wait(timeout, func(f Frame) bool { return f.Type == typ })
}

// Reply waits for the reply to command id.
func (c *Client) Reply(id string, timeout time.Duration) (Frame, error) {
	return c.Wait(timeout, func(f Frame) bool { return f.ID == id })
}

// Request sends a command with id and waits for its reply.
func (c *Client) Request(id, typ string, data any, timeout time.Duration) (Frame, error) {
	if err := c.Send(id, typ, data); err != nil {
		return Frame{}, err
	}
	return c.Reply(id, timeout)
}

// Pending returns the frames queued and not yet taken.
func (c *Client) Pending() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.frames...)
}

// Pings is how many server pings were answered.
func (c *Client) Pings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// CloseCode waits for the connection to end and returns the server's close
// code (-1: ended without a close frame) and reason.
func (c *Client) CloseCode(timeout time.Duration) (int, string, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed {
		if !time.Now().Before(deadline) {
			return 0, "", ErrTimeout
		}
		c.cond.Wait()
	}
	return c.closeCode, c.closeMsg, nil
}
