package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// member is one member socket of a conversation, as a careful application
// runs it: it reconnects (to the next edge) whenever the socket goes, and
// rejoins with sinceSeq; it fills a prevSeq gap from history; it retries
// every send with its clientMsgId until acked.
type member struct {
	slot   int
	user   string
	conv   int
	convID string
	ph     *phase

	mu    sync.Mutex    // guards cur and ready
	cur   *wsConn       // the joined socket, nil while reconnecting
	ready chan struct{} // closed when cur is set

	// Owned by run.
	lastSeq uint64 // newest seq of a contiguous prefix the application holds
	edge    int    // index of the edge URL to dial next

	jobs chan string // clientMsgIds to send, owned by the pacer

	state   atomic.Value // string: what run is doing, for a stuck report
	sending atomic.Value // string: the clientMsgId being sent, "" if none
}

// eventData is what the member reads of a durable event.
type eventData struct {
	ConversationID string  `json:"conversationId"`
	Seq            uint64  `json:"seq"`
	PrevSeq        *uint64 `json:"prevSeq"`
	MessageID      string  `json:"messageId"`
	ClientMsgID    string  `json:"clientMsgId"`
}

type joinAck struct {
	LastSeq   uint64  `json:"lastSeq"`
	Missed    []frame `json:"missed"`
	Truncated bool    `json:"truncated"`
}

type historyAck struct {
	Events  []frame `json:"events"`
	HasMore bool    `json:"hasMore"`
}

func newMember(ph *phase, slot int, user string, conv int) *member {
	m := &member{slot: slot, user: user, conv: conv, ph: ph, ready: make(chan struct{}),
		edge: slot % len(ph.urls), jobs: make(chan string, 256)}
	m.state.Store("new")
	m.sending.Store("")
	return m
}

// stuck describes the member if it still has a send to make.
func (m *member) stuck() string {
	cmid := m.sending.Load().(string)
	if cmid == "" && len(m.jobs) == 0 {
		return ""
	}
	return fmt.Sprintf("member %d %s, sending %q, %d queued", m.slot, m.state.Load(), cmid, len(m.jobs))
}

// connect dials the next edge until a socket comes up, or ctx ends.
func (m *member) connect(ctx context.Context) (*wsConn, error) {
	for attempt := 0; ; attempt++ {
		url := m.ph.urls[m.edge%len(m.ph.urls)]
		c, err := dialWS(url, m.ph.token(m.user), 5*time.Second)
		if err == nil {
			return c, nil
		}
		m.edge++
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
		}
	}
}

// run keeps the member joined until ctx ends, handing events to the
// application (the ledger).
func (m *member) run(ctx context.Context, first *wsConn) {
	c := first
	lostAt := time.Now()
	for ctx.Err() == nil {
		if c == nil {
			m.state.Store("connecting")
			var err error
			if c, err = m.connect(ctx); err != nil {
				return
			}
		}
		m.state.Store("joining")
		if err := m.join(ctx, c); err != nil {
			c.close()
			c = nil
			m.edge++
			continue
		}
		if first == nil {
			m.ph.led.interrupted(fmt.Sprintf("member %d rejoin", m.slot), time.Since(lostAt))
		}
		first = nil
		m.setCur(c)
		m.state.Store("serving")
		m.serve(ctx, c)
		m.setCur(nil)
		lostAt = time.Now()
		c.close()
		c = nil
		m.ph.reconnects.Add(1)
	}
}

func (m *member) setCur(c *wsConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c != nil {
		m.cur = c
		close(m.ready)
		return
	}
	m.cur = nil
	m.ready = make(chan struct{})
}

// current waits for the joined socket.
func (m *member) current(ctx context.Context) (*wsConn, error) {
	for {
		m.mu.Lock()
		c, ready := m.cur, m.ready
		m.mu.Unlock()
		if c != nil && c.alive() {
			return c, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// join joins the conversation (with sinceSeq once it holds events) and
// hands what was missed to the application.
func (m *member) join(ctx context.Context, c *wsConn) error {
	data := map[string]any{"conversationId": m.convID}
	rejoin := m.lastSeq > 0
	if rejoin {
		data["sinceSeq"] = m.lastSeq
	}
	raw, err := c.request("conversation:join", data, 10*time.Second)
	if err != nil {
		m.ph.led.otherError("conversation:join", codeOf(err))
		return err
	}
	var ack joinAck
	if err := json.Unmarshal(raw, &ack); err != nil {
		return err
	}
	for _, f := range ack.Missed {
		m.apply(f, true, true)
	}
	if ack.Truncated {
		m.fill(ctx, c, ack.LastSeq+1)
	}
	if m.lastSeq < ack.LastSeq {
		m.lastSeq = ack.LastSeq
	}
	return nil
}

// serve hands live events to the application until the socket ends.
func (m *member) serve(ctx context.Context, c *wsConn) {
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-c.events:
			if !ok {
				return
			}
			m.event(ctx, c, f)
		}
	}
}

// event takes one live event: a durable one whose prevSeq is past what
// the application holds first has the gap filled from history.
func (m *member) event(ctx context.Context, c *wsConn, f frame) {
	var e eventData
	if json.Unmarshal(f.Data, &e) != nil || e.Seq == 0 || e.PrevSeq == nil || e.ConversationID != m.convID {
		return
	}
	if *e.PrevSeq > m.lastSeq {
		m.ph.gaps.Add(1)
		m.state.Store("filling a gap")
		m.fill(ctx, c, e.Seq)
		m.state.Store("serving")
	}
	m.apply(f, true, false)
}

// apply hands one durable event to the application.
func (m *member) apply(f frame, pushed, recovered bool) {
	var e eventData
	if json.Unmarshal(f.Data, &e) != nil || e.Seq == 0 {
		return
	}
	if f.Type == "message:new" {
		m.ph.led.deliver(m.slot, e.Seq, pushed, recovered)
	}
	if e.Seq > m.lastSeq {
		m.lastSeq = e.Seq
	}
}

// fill fetches the events after lastSeq and before before (0: no bound)
// from history, retrying for a while.
func (m *member) fill(ctx context.Context, c *wsConn, before uint64) {
	for try := 0; try < 20 && ctx.Err() == nil; try++ {
		data := map[string]any{"conversationId": m.convID, "afterSeq": m.lastSeq, "limit": 200}
		if before > m.lastSeq+1 {
			data["beforeSeq"] = before
		} else if before != 0 {
			return
		}
		raw, err := c.request("conversation:history", data, 10*time.Second)
		if err != nil {
			m.ph.led.otherError("conversation:history", codeOf(err))
			if !c.alive() {
				return
			}
			time.Sleep(250 * time.Millisecond)
			continue
		}
		var h historyAck
		if json.Unmarshal(raw, &h) != nil {
			return
		}
		for _, f := range h.Events {
			m.apply(f, false, true)
		}
		if !h.HasMore || len(h.Events) == 0 {
			return
		}
	}
}

// sender sends the jobs the pacer hands it, one at a time, each until it
// is acked or ctx ends.
func (m *member) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case cmid, ok := <-m.jobs:
			if !ok {
				return
			}
			m.sending.Store(cmid)
			m.send(ctx, cmid)
			m.sending.Store("")
			m.ph.outstanding.Add(-1)
		}
	}
}

type sendAck struct {
	MessageID string `json:"messageId"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

func (m *member) send(ctx context.Context, cmid string) {
	start := time.Now()
	m.ph.led.sendStart(cmid, m.conv, start)
	data := map[string]any{"conversationId": m.convID, "content": "fault probe " + cmid, "clientMsgId": cmid}
	for ctx.Err() == nil {
		c, err := m.current(ctx)
		if err != nil {
			return
		}
		raw, err := c.request("message:send", data, m.ph.sendTimeout)
		if err == nil {
			var a sendAck
			if json.Unmarshal(raw, &a) == nil && a.MessageID != "" {
				now := time.Now()
				m.ph.led.sendAck(cmid, a.MessageID, a.Seq, a.Duplicate, now)
				m.ph.led.interrupted(fmt.Sprintf("member %d send", m.slot), now.Sub(start))
				return
			}
			err = &replyError{code: "malformed ack"}
		}
		m.ph.led.sendAnswer(cmid, codeOf(err))
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
