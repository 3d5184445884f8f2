package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/kit/jsonscan"
)

// Commands of one connection in flight (docs/protocol.md, Per-connection
// ordering). The reader decodes a command, checks its token's expiry and
// its rate limit, and hands it to its lane: the commands of one lane run
// one at a time in the order they came, on one goroutine while the lane
// has work (a worker of the Server's pool, kit/gopool, which keeps the
// stack it grew for the next lane of any connection); different lanes,
// and commands of no lane, run side by side. A command of the inline lane
// runs on the reader itself, so nothing read after it starts before it is
// answered. At most MaxCommandsInFlight commands of a connection are
// accepted and not yet answered; the reader waits for one to end before it
// takes the next (back-pressure: a client that floods stops being read,
// nothing is refused), so a connection costs at most that many goroutines,
// and an idle one none (the pool's idle workers belong to no connection,
// and end when idle for a while).

// Lanes that are not a conversation's.
const (
	laneNone   = ""        // runs beside everything
	laneInline = "\x00now" // runs on the reader, before anything read after it
)

// orderOf says the lane of the command types that are not in their
// conversation's lane. A type not here runs in the lane of the
// conversation its data names (conversationId), or in none when it names
// none: a new command with a conversationId needs no entry.
var orderOf = map[string]func(command) string{
	"conversation:create": noLane,
	"conversation:list":   noLane,
	"presence:query":      noLane,
	"ping":                noLane,
	"presence:set":        fixedLane("presence:set"),
	"auth:refresh":        inlineLane, // every later command sees its expiry
}

func noLane(command) string     { return laneNone }
func inlineLane(command) string { return laneInline }
func fixedLane(name string) func(command) string {
	key := "\x00" + name // no conversation id starts with NUL
	return func(command) string { return key }
}

// laneOf is the lane a command runs in.
func laneOf(cmd command) string {
	if f := orderOf[cmd.Type]; f != nil {
		return f(cmd)
	}
	id, ok := plainConversationID(cmd.Data)
	if !ok {
		var d struct {
			ConversationID string `json:"conversationId"`
		}
		if json.Unmarshal(cmd.Data, &d) != nil {
			return laneNone // the handler refuses the data
		}
		id = d.ConversationID
	}
	if strings.HasPrefix(id, "\x00") {
		return laneNone // the handler refuses the data
	}
	return id
}

// plainConversationID is the conversationId of a command's data, found in
// one scan (kit/jsonscan) when encoding/json's answer is plain to see: data
// that is not an object names none (encoding/json would fail, or, for
// null, find none); an object whose keys are ASCII without escapes and
// whose conversationId, each time it comes, is a string without escapes,
// names the last one. Otherwise (a key that is escaped, not ASCII, or
// conversationId in another case, which encoding/json would take too; a
// value that is not a plain string) it says it cannot tell, and the data
// is decoded.
func plainConversationID(data []byte) (string, bool) {
	var id []byte
	sure := true
	kind := jsonscan.Scan(data, func(m jsonscan.Member) {
		if !sure {
			return
		}
		if m.Form != jsonscan.KeyASCII {
			sure = false
			return
		}
		switch k := m.Text(); {
		case string(k) == conversationIDKey:
			id, sure = jsonscan.PlainString(m.Val)
		case len(k) == len(conversationIDKey) && strings.EqualFold(string(k), conversationIDKey):
			sure = false
		}
	})
	switch {
	case kind != jsonscan.Object:
		return laneNone, true
	case !sure:
		return "", false
	}
	return string(id), true
}

// conversationIDKey is the key of a command data's conversation.
const conversationIDKey = "conversationId"

// lane is the commands of one lane waiting behind the one running.
// Guarded by the connection's cmu.
type lane struct{ queue []command }

// dispatch starts cmd in its lane, or queues it behind the lane's running
// command. Called by the reader; it waits while MaxCommandsInFlight
// commands are in flight, and drops cmd once the connection stopped.
func (c *conn) dispatch(key string, cmd command) {
	c.cmu.Lock()
	for int(c.inflight) >= c.s.cfg.MaxCommandsInFlight && !c.stopped {
		c.waitLocked()
	}
	if c.stopped {
		c.cmu.Unlock()
		return
	}
	c.inflight++
	if key == laneNone {
		c.cmu.Unlock()
		c.s.pool.Go(func() { c.work(key, nil, cmd) })
		return
	}
	if l := c.lanes[key]; l != nil {
		l.queue = append(l.queue, cmd)
		c.cmu.Unlock()
		return
	}
	if c.lanes == nil {
		c.lanes = map[string]*lane{}
	}
	l := &lane{}
	c.lanes[key] = l
	c.cmu.Unlock()
	c.s.pool.Go(func() { c.work(key, l, cmd) })
}

// work is a lane on its pool worker: it runs cmd, then the lane's queue,
// and returns the worker when the queue is empty (l nil: a command of no
// lane, alone). Once the connection stopped, what is still queued is
// dropped.
func (c *conn) work(key string, l *lane, cmd command) {
	for {
		c.exec(cmd)
		c.cmu.Lock()
		c.inflight--
		if l != nil && c.stopped {
			c.inflight -= int32(len(l.queue))
			l.queue = nil
		}
		c.wakeLocked()
		if l == nil || len(l.queue) == 0 {
			if l != nil {
				delete(c.lanes, key)
			}
			c.cmu.Unlock()
			return
		}
		cmd = l.queue[0]
		l.queue[0] = command{}
		l.queue = l.queue[1:]
		c.cmu.Unlock()
	}
}

// exec runs a dispatched command and replies; a reply that ends the
// connection (1008, 4003) closes it here, and the reader then finds the
// socket closed.
func (c *conn) exec(cmd command) {
	data, err := c.runHandler(cmd)
	if err = c.reply(time.Now(), cmd, data, err); err == nil {
		return
	}
	var ce *closeError
	if errors.As(err, &ce) {
		c.endWith(ce)
	}
}

// runHandler runs one command's handler within RequestTimeout.
func (c *conn) runHandler(cmd command) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
	defer cancel()
	return commands[cmd.Type](c, ctx, cmd)
}

// endWith closes the connection for a command's reply: the reason is kept
// for the log of its end, the close frame queued (once: later closes do
// nothing), and no command read after it runs.
func (c *conn) endWith(ce *closeError) {
	c.cmu.Lock()
	c.stopped = true
	if c.ended == nil {
		c.ended = ce
	}
	c.cmu.Unlock()
	c.close(ce.code, ce.reason, false)
}

// stopCommands makes the connection take no more commands and waits for
// those running to end; queued ones are dropped. Called by finish, before
// the connection is taken out of its rooms. It returns why a command
// closed the connection, if one did.
func (c *conn) stopCommands() string {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	c.stopped = true
	for c.inflight > 0 {
		c.waitLocked()
	}
	if c.ended == nil {
		return ""
	}
	return c.ended.reason
}

// waitLocked waits, with cmu held, until a command ends.
func (c *conn) waitLocked() {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	ch := c.wake
	c.cmu.Unlock()
	<-ch
	c.cmu.Lock()
}

// wakeLocked tells whoever waits (the reader at the bound, finish) that a
// command ended. Called with cmu held.
func (c *conn) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}
