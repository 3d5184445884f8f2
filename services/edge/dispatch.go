package edge

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// handler runs one command and returns its ack data, or errReplied when
// it sent its reply itself. Most are withData(h): h gets the command's data
// decoded and checked; join and ping take the command, whose id their own
// replies carry.
type handler func(c *conn, ctx context.Context, cmd command) (any, error)

// errReplied says the handler sent its own reply (join orders its ack
// with the room's live events).
var errReplied = errors.New("replied")

// commands is every command type of docs/protocol.md section 3. The order
// a command keeps with the others of its connection is its lane (lanes.go):
// by default the conversation its data's conversationId names; orderOf
// lists the exceptions.
var commands map[string]handler

func init() {
	commands = map[string]handler{
		"conversation:create":  withData((*conn).createConversation),
		"conversation:add":     withData((*conn).addParticipants),
		"conversation:remove":  withData((*conn).removeParticipant),
		"conversation:list":    withOptionalData((*conn).listConversations),
		"conversation:join":    (*conn).join,
		"conversation:leave":   withData((*conn).leave),
		"conversation:history": withData((*conn).history),
		"message:send":         withData((*conn).sendMessage),
		"message:edit":         withData((*conn).editMessage),
		"message:delete":       withData((*conn).deleteMessage),
		"message:react":        withData((*conn).react),
		"message:reactions":    withData((*conn).reactions),
		"message:typing":       withData((*conn).typing),
		"message:delivered":    withData((*conn).delivered),
		"message:read":         withData((*conn).read),
		"presence:set":         withData((*conn).setPresence),
		"presence:query":       withData((*conn).queryPresence),
		"auth:refresh":         withData((*conn).refresh),
		"ping":                 (*conn).ping,
	}
}

// handle runs one client frame. A returned error closes the connection.
func (c *conn) handle(msg []byte) error {
	if c.sio != nil {
		return c.handleSocketIO(msg)
	}
	cmd, err := decodeCommand(msg)
	if errors.Is(err, errNotJSON) {
		c.s.metrics.commands.WithLabelValues("invalid", "not_json").Inc()
		return closeWith(ClosePolicy, "frame is not JSON")
	}
	return c.run(cmd, err)
}

// run runs a decoded command, or replies with err, why it is not valid:
// the one path of every command, whichever protocol's decoder made it. On
// the reader, in the order commands came: the token's expiry, the rate
// limit and the refusals; then the command goes to its lane (lanes.go),
// or runs here when its lane is the inline one.
func (c *conn) run(cmd command, err error) error {
	now := time.Now()
	if err == nil && now.UnixNano() >= c.expires.Load() {
		c.send(errorReply(cmd.ID, errs.New(errs.CodeUnauthenticated, "token expired")))
		c.s.metrics.commands.WithLabelValues(cmd.Type, errs.CodeUnauthenticated).Inc()
		return closeWith(CloseTokenExpired, "token expired")
	}
	if err == nil {
		err = c.checkRate(cmd.Type)
	}
	if err != nil {
		return c.reply(now, cmd, nil, err)
	}
	if c.isClosing() {
		return nil // its reply could not be sent: it does not run
	}
	c.lastActive.Store(now.UnixNano())
	key := laneOf(cmd)
	if key == laneInline {
		data, err := c.runHandler(cmd)
		return c.reply(now, cmd, data, err)
	}
	c.dispatch(key, cmd)
	return nil
}

// reply sends a command's ack or error and counts failures that close the
// connection when they repeat.
func (c *conn) reply(now time.Time, cmd command, data any, err error) error {
	typ := cmd.Type
	if commands[typ] == nil {
		typ = "invalid"
	}
	switch {
	case err == nil:
		c.s.metrics.commands.WithLabelValues(typ, "ok").Inc()
		if cmd.ID != "" {
			c.send(ackFrame(cmd.ID, data))
		}
		return nil
	case errors.Is(err, errReplied):
		c.s.metrics.commands.WithLabelValues(typ, "ok").Inc()
		return nil
	}
	e := natsx.AsError(err)
	if e == errs.Internal {
		c.s.log.Error("command failed", "type", typ, "org", c.org, "conn", c.id, "err", err)
	}
	c.s.metrics.commands.WithLabelValues(typ, e.Code).Inc()
	c.send(errorReply(cmd.ID, e))
	return c.count(now, e.Code)
}

// count records a refusal or a failure of authentication, and returns the
// close they call for when they repeat. The windows are shared by the
// connection's commands in flight (cmu).
func (c *conn) count(now time.Time, code string) error {
	cfg := &c.s.cfg
	c.cmu.Lock()
	defer c.cmu.Unlock()
	switch code {
	case errs.CodeValidation, errs.CodeRateLimited:
		// A refused command counts like an invalid one: a socket that only
		// floods is closed rather than answered for ever.
		if c.invalid.hit(now, cfg.InvalidFrameLimit, time.Minute) {
			return closeWith(ClosePolicy, "too many invalid or refused commands")
		}
	case errs.CodeUnauthenticated, errs.CodeForbidden:
		if c.failures.hit(now, cfg.AuthFailureLimit, cfg.AuthFailureWindow) {
			return closeWith(CloseAuthFailures, "too many authentication or authorization failures")
		}
	}
	return nil
}

func (c *conn) principal() *chatv1.Principal {
	return &chatv1.Principal{Org: c.org, User: c.user, Connection: c.id}
}

// call sends a command to a service as this connection's principal. A
// command safe to repeat gets AttemptTimeout per try and is tried again
// while RequestTimeout lasts when a try got no answer: a request that went
// to an instance that died with it costs the command (and the commands of
// its lane behind it) one attempt, not the whole timeout.
func (c *conn) call(ctx context.Context, service, action string, req proto.Message, resp svc.Response) error {
	if !repeatable(service, action) {
		return c.callOnce(ctx, service, action, req, resp)
	}
	for {
		actx, cancel := context.WithTimeout(ctx, c.s.cfg.AttemptTimeout)
		err := c.callOnce(actx, service, action, req, resp)
		unanswered := actx.Err() != nil
		cancel()
		// Only an attempt that got no answer at all is tried again: no
		// responders, or a service's own unavailable (it tried), is the
		// answer.
		if err == nil || !unanswered || ctx.Err() != nil {
			return err
		}
		c.s.metrics.retries.WithLabelValues(service, action).Inc()
	}
}

func (c *conn) callOnce(ctx context.Context, service, action string, req proto.Message, resp svc.Response) error {
	start := time.Now()
	err := svc.Call(ctx, c.s.nc, names.Command(service, c.org, action), req, resp)
	c.s.metrics.requests.WithLabelValues(service, action).Observe(time.Since(start).Seconds())
	return err
}

// repeatable reports the commands that two tries do no harm with: reads,
// receipts (a marker only moves forward), typing, sends (a resend with
// the same clientMsgId is deduplicated) and reactions (a second try of a
// change finds it made, or still pending and appends its event once). Not creates, membership changes,
// edits or deletes, nor rate-limit checks (each try takes a token).
func repeatable(service, action string) bool {
	switch service {
	case names.Messaging:
		switch action {
		case names.ActionList, names.ActionJoin, names.ActionHistory, names.ActionSend,
			names.ActionDelivered, names.ActionRead, names.ActionTyping, names.ActionReact, names.ActionReactions:
			return true
		}
	case names.Presence:
		return action == names.ActionQuery
	}
	return false
}

func (c *conn) ping(_ context.Context, cmd command) (any, error) {
	if err := decodeData(cmd.Data, &struct{}{}, false); err != nil {
		return nil, err
	}
	c.send(pongReply(cmd.ID))
	return nil, errReplied
}

type refreshData struct {
	Token string `json:"token"`
}

func (d *refreshData) validate(f *errs.Fields) { f.Required("token", d.Token) }

func (c *conn) refresh(_ context.Context, d *refreshData) (any, error) {
	id, err := c.s.auth.Verify(d.Token)
	if err != nil {
		c.s.metrics.authFailures.WithLabelValues("refresh").Inc()
		c.s.log.Info("refresh refused", "org", c.org, "conn", c.id, "reason", err.Error())
		return nil, errs.New(errs.CodeUnauthenticated, "token refused")
	}
	if id.Org != c.org || id.User != c.user {
		c.s.metrics.authFailures.WithLabelValues("refresh_identity").Inc()
		return nil, errs.Forbidden("the token names another user or organization")
	}
	c.expires.Store(id.Expires.UnixNano())
	c.warned.Store(false)
	return struct {
		ExpiresAt string `json:"expiresAt"`
	}{formatTime(id.Expires)}, nil
}
