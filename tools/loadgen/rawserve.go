package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// rawServer is the ceiling of -serve raw: a trivial in-process WebSocket
// broadcaster that speaks just enough of the client protocol for a send
// run (session, conversation:create and :join, message:send) with frames
// of the same shape and size as the edge's. No NATS, no store, no checks:
// what is left is the transport (the sockets, the frames, the clients), so
// a run against it is what this machine allows.
//
// Each connection has a writer goroutine that takes everything queued for
// it and writes it with one call: under load the batches grow by
// themselves.
type rawServer struct {
	ln net.Listener

	mu    sync.Mutex
	rooms map[string]*rawRoom
	next  int
	conns map[*rawConn]struct{}
	wg    sync.WaitGroup
}

type rawRoom struct {
	id      string
	mu      sync.Mutex
	seq     uint64
	members []*rawConn
}

type rawConn struct {
	s    *rawServer
	nc   net.Conn
	user string

	mu     sync.Mutex // guards out, spare, closed
	out    []byte
	spare  []byte
	closed bool
	wake   chan struct{}
}

func startRawServer() (*rawServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &rawServer{ln: ln, rooms: map[string]*rawRoom{}, conns: map[*rawConn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// url is the WebSocket URL clients dial.
func (s *rawServer) url() string { return "ws://" + s.ln.Addr().String() + "/ws" }

func (s *rawServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *rawServer) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

func (s *rawServer) handle(nc net.Conn) {
	c := &rawConn{s: s, nc: nc, wake: make(chan struct{}, 1)}
	u := ws.Upgrader{OnHeader: func(key, value []byte) error {
		if strings.EqualFold(string(key), "Authorization") {
			c.user = tokenSubject(string(value))
		}
		return nil
	}}
	if _, err := u.Upgrade(nc); err != nil {
		_ = nc.Close()
		return
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	done := make(chan struct{})
	go c.writeLoop(done)
	c.send(jsonText(rawEvent{"session", map[string]any{
		"userId": c.user, "connectionId": ids.New(), "limits": map[string]any{},
	}}))
	c.readLoop()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(done)
	_ = nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// tokenSubject is the sub claim of a bearer token, unverified.
func tokenSubject(h string) string {
	_, tok, _ := strings.Cut(h, " ")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "anonymous"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Sub string `json:"sub"`
	}
	if err != nil || json.Unmarshal(b, &claims) != nil || claims.Sub == "" {
		return "anonymous"
	}
	return claims.Sub
}

func (c *rawConn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 4<<10)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			c.send(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			return
		case ws.OpPing:
			c.send(ws.MustCompileFrame(ws.NewPongFrame(p)))
		case ws.OpText:
			if err := c.command(p); err != nil {
				return
			}
		}
	}
}

type rawCommand struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		ConversationID string `json:"conversationId"`
		Content        string `json:"content"`
		ClientMsgID    string `json:"clientMsgId"`
	} `json:"data"`
}

// The shapes of the edge's frames that the load generator reads, in the
// same field order (docs/protocol.md).
type rawMessageNew struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	SenderID       string `json:"senderId"`
	Content        string `json:"content"`
	ClientMsgID    string `json:"clientMsgId"`
	CreatedAt      string `json:"createdAt"`
}

type rawEvent struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

type rawReply struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data any    `json:"data"`
}

func (c *rawConn) command(p []byte) error {
	var cmd rawCommand
	if err := json.Unmarshal(p, &cmd); err != nil {
		return err
	}
	s := c.s
	switch cmd.Type {
	case "conversation:create":
		s.mu.Lock()
		s.next++
		r := &rawRoom{id: "raw" + strconv.Itoa(s.next)}
		s.rooms[r.id] = r
		s.mu.Unlock()
		c.send(jsonText(rawReply{cmd.ID, "ack", map[string]any{"conversationId": r.id}}))
	case "conversation:join":
		r := s.room(cmd.Data.ConversationID)
		if r == nil {
			return errors.New("join: no such room")
		}
		r.mu.Lock()
		r.members = append(r.members, c)
		ack := jsonText(rawReply{cmd.ID, "ack", map[string]any{"lastSeq": r.seq}})
		c.send(ack) // under the room's lock: before any event after lastSeq
		r.mu.Unlock()
	case "message:send":
		r := s.room(cmd.Data.ConversationID)
		if r == nil {
			return errors.New("send: no such room")
		}
		now := formatNow()
		id := ids.New()
		r.mu.Lock()
		r.seq++
		seq := r.seq
		f := jsonText(rawEvent{"message:new", rawMessageNew{
			r.id, id, seq, seq - 1, c.user, cmd.Data.Content, cmd.Data.ClientMsgID, now,
		}})
		for _, m := range r.members {
			m.send(f)
		}
		r.mu.Unlock()
		c.send(jsonText(rawReply{cmd.ID, "ack", struct {
			MessageID string `json:"messageId"`
			Seq       uint64 `json:"seq"`
			CreatedAt string `json:"createdAt"`
			Duplicate bool   `json:"duplicate"`
		}{id, seq, now, false}}))
	default:
		c.send(jsonText(rawReply{cmd.ID, "error", map[string]any{"code": "unsupported", "message": cmd.Type}}))
	}
	return nil
}

func (s *rawServer) room(id string) *rawRoom {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[id]
}

// send queues a frame; the writer takes everything queued at once.
func (c *rawConn) send(f []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, f...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *rawConn) writeLoop(done chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		b := c.out
		c.out, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		if len(b) == 0 {
			continue
		}
		if _, err := c.nc.Write(b); err != nil {
			_ = c.nc.Close()
			return
		}
		c.mu.Lock()
		c.spare = b[:0]
		c.mu.Unlock()
	}
}

// jsonText is v as one WebSocket text frame from the server.
func jsonText(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return ws.MustCompileFrame(ws.NewTextFrame(b))
}

func formatNow() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }
