package standalone

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
)

type reactAck struct {
	Changed bool   `json:"changed"`
	Seq     uint64 `json:"seq"`
}

type reactedEvent struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	UserID         string `json:"userId"`
	Emoji          string `json:"emoji"`
	On             bool   `json:"on"`
	ReactedAt      string `json:"reactedAt"`
}

type reactionJSON struct {
	MessageID string   `json:"messageId"`
	Emoji     string   `json:"emoji"`
	Count     int      `json:"count"`
	UserIDs   []string `json:"userIds"`
	Me        bool     `json:"me"`
}

func (c *client) react(conv, msg, emoji string, on bool) reactAck {
	c.f.t.Helper()
	return decode[reactAck](c.f.t, c.do("message:react", map[string]any{"conversationId": conv, "messageId": msg, "emoji": emoji, "on": on}))
}

func (c *client) reactions(conv string, msgs ...string) []reactionJSON {
	c.f.t.Helper()
	return decode[struct {
		Reactions []reactionJSON `json:"reactions"`
	}](c.f.t, c.do("message:reactions", map[string]any{"conversationId": conv, "messageIds": msgs})).Reactions
}

// reacted waits for c's next message:reacted event.
func (c *client) reacted() reactedEvent {
	c.f.t.Helper()
	return decode[reactedEvent](c.f.t, c.event("message:reacted").Data)
}

func reactionsString(rs []reactionJSON) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s %d %v %v;", r.MessageID[len(r.MessageID)-4:], r.Emoji, r.Count, r.UserIDs, r.Me)
	}
	return b.String()
}

// Reactions by two users and two devices of one user: every device gets
// each change once, a repeat changes nothing (no event), a removal is an
// event too, and message:reactions says the state with "me" per caller.
func TestReactionsLiveAndIdempotent(t *testing.T) {
	f := start(t)
	alice1, alice2, bob := f.dial("acme", "alice"), f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice1.create("bob")
	for _, c := range []*client{alice1, alice2, bob} {
		c.join(conv)
	}
	m := alice1.send(conv, "react to me")

	a := bob.react(conv, m.MessageID, "👍", true)
	if !a.Changed || a.Seq <= m.Seq {
		t.Fatalf("bob's 👍: %+v", a)
	}
	for _, c := range []*client{alice1, alice2, bob} {
		e := c.reacted()
		if e.Seq != a.Seq || e.PrevSeq != m.Seq || e.UserID != "bob" || e.Emoji != "👍" || !e.On || e.MessageID != m.MessageID || e.ConversationID != conv || e.ReactedAt == "" {
			t.Fatalf("%s got %+v", c.name, e)
		}
	}
	b := alice2.react(conv, m.MessageID, "👍", true)
	if e1, e2 := alice1.reacted(), alice2.reacted(); e1.Seq != b.Seq || e2.Seq != b.Seq || e1.UserID != "alice" {
		t.Fatalf("alice's devices got %+v and %+v, want seq %d", e1, e2, b.Seq)
	}
	bob.reacted()

	if again := bob.react(conv, m.MessageID, "👍", true); again.Changed || again.Seq != 0 {
		t.Fatalf("a repeated reaction: %+v, want changed false", again)
	}
	if none := bob.react(conv, m.MessageID, "🎉", false); none.Changed {
		t.Fatalf("removing a reaction bob has not: %+v", none)
	}
	alice1.none("message:reacted", 300*time.Millisecond)

	want := func(c *client, s string) {
		t.Helper()
		if got := reactionsString(c.reactions(conv, m.MessageID)); got != s {
			t.Fatalf("%s reactions %q, want %q", c.name, got, s)
		}
	}
	tail := m.MessageID[len(m.MessageID)-4:]
	want(alice1, tail+" 👍 2 [bob alice] true;")
	off := bob.react(conv, m.MessageID, "👍", false)
	if e := alice2.reacted(); !off.Changed || e.On || e.Seq != off.Seq || e.PrevSeq != b.Seq {
		t.Fatalf("removal %+v, event %+v", off, e)
	}
	want(bob, tail+" 👍 1 [alice] false;")
	want(alice2, tail+" 👍 1 [alice] true;")
}

// message:reacted events are durable: conversation:history and a join's
// missed replay them in order; message:reactions answers after a restart
// of the whole system on the same data.
func TestReactionsReplayAndSurviveARestart(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger()}
	cfg.Edge.Auth = edge.AuthConfig{Secret: secret}
	cfg.Edge.Limits = generous()
	f := startWith(t, cfg)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	m := alice.send(conv, "hi")
	r1 := bob.react(conv, m.MessageID, "❤️", true)
	r2 := alice.react(conv, m.MessageID, "👩‍💻", true)
	r3 := bob.react(conv, m.MessageID, "❤️", false)

	replayed := func(events []wsclient.Frame) []string {
		var out []string
		for _, e := range events {
			if e.Type == "message:reacted" {
				r := decode[reactedEvent](t, e.Data)
				out = append(out, fmt.Sprint(r.Seq, r.UserID, r.Emoji, r.On))
			}
		}
		return out
	}
	wantReplay := fmt.Sprint([]string{fmt.Sprint(r1.Seq, "bob", "❤️", true), fmt.Sprint(r2.Seq, "alice", "👩‍💻", true), fmt.Sprint(r3.Seq, "bob", "❤️", false)})
	h := decode[struct {
		Events []wsclient.Frame `json:"events"`
	}](t, bob.do("conversation:history", map[string]any{"conversationId": conv}))
	if got := fmt.Sprint(replayed(h.Events)); got != wantReplay {
		t.Fatalf("history replays %s, want %s", got, wantReplay)
	}
	j := decode[joinAckJSON](t, bob.do("conversation:join", map[string]any{"conversationId": conv, "sinceSeq": m.Seq}))
	if got := fmt.Sprint(replayed(j.Missed)); got != wantReplay {
		t.Fatalf("join's missed replays %s, want %s", got, wantReplay)
	}

	if err := f.sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	f2 := startWith(t, cfg)
	bob2 := f2.dial("acme", "bob")
	if got, want := reactionsString(bob2.reactions(conv, m.MessageID)), m.MessageID[len(m.MessageID)-4:]+" 👩‍💻 1 [alice] false;"; got != want {
		t.Fatalf("after the restart: %q, want %q", got, want)
	}
	// The state goes on from there: bob's ❤️ again is a change.
	if again := bob2.react(conv, m.MessageID, "❤️", true); !again.Changed || again.Seq <= r3.Seq {
		t.Fatalf("after the restart: %+v", again)
	}
}

// What a message id names is checked: another org's or another
// conversation's message, an unknown id and a deleted message are
// not_found; past 50 distinct emoji is a conflict; a bad emoji is a
// validation error. Deleting a message drops its reactions.
func TestReactionRefusals(t *testing.T) {
	f := start(t)
	alice, bob, mallory := f.dial("acme", "alice"), f.dial("acme", "bob"), f.dial("evil", "mallory")
	conv, other := alice.create("bob"), bob.create()
	m := alice.send(conv, "hi")
	elsewhere := bob.send(other, "not in conv")
	evilConv := mallory.create()
	evil := mallory.send(evilConv, "evil")

	for _, id := range []string{elsewhere.MessageID, evil.MessageID, "01ARZ3NDEKTSV4RRFFQ69G5FAV"} {
		alice.fails("message:react", map[string]any{"conversationId": conv, "messageId": id, "emoji": "x", "on": true}, "error", "not_found")
	}
	alice.fails("message:react", map[string]any{"conversationId": evilConv, "messageId": evil.MessageID, "emoji": "x", "on": true}, "error", "not_found")
	mallory.fails("message:reactions", map[string]any{"conversationId": conv, "messageIds": []string{m.MessageID}}, "error", "not_found")
	alice.fails("message:react", map[string]any{"conversationId": other, "messageId": elsewhere.MessageID, "emoji": "x", "on": true}, "error", "forbidden")

	for _, e := range []string{"", "a b", "tab\t", strings.Repeat("a", 65), "\u2028"} {
		alice.fails("message:react", map[string]any{"conversationId": conv, "messageId": m.MessageID, "emoji": e, "on": true}, "validation-error", "validation_failed")
	}

	for i := range 50 {
		alice.react(conv, m.MessageID, fmt.Sprint("e", i), true)
	}
	alice.fails("message:react", map[string]any{"conversationId": conv, "messageId": m.MessageID, "emoji": "e50", "on": true}, "error", "conflict")
	if r := bob.react(conv, m.MessageID, "e49", true); !r.Changed {
		t.Fatal("a 50th emoji's second user was refused")
	}
	if got := len(bob.reactions(conv, m.MessageID, elsewhere.MessageID, evil.MessageID)); got != 50 {
		t.Fatalf("%d reactions, want the 50 of m only", got)
	}

	d := alice.send(conv, "to be deleted")
	bob.react(conv, d.MessageID, "👋", true)
	alice.do("message:delete", map[string]any{"conversationId": conv, "messageId": d.MessageID})
	if rs := bob.reactions(conv, d.MessageID); len(rs) != 0 {
		t.Fatalf("a deleted message's reactions: %v", rs)
	}
	bob.fails("message:react", map[string]any{"conversationId": conv, "messageId": d.MessageID, "emoji": "👋", "on": false}, "error", "not_found")
}

func TestReactRateLimit(t *testing.T) {
	f := start(t, func(c *Config) {
		c.Edge.Limits = limitSet(t, "message:react=3/1h,default=100000/1s,message:send=100000/1s,conversation:create=100000/1s")
	})
	alice := f.dial("acme", "alice")
	conv := alice.create()
	m := alice.send(conv, "hi")
	for i := range 3 {
		alice.react(conv, m.MessageID, fmt.Sprint("e", i), true)
	}
	alice.fails("message:react", map[string]any{"conversationId": conv, "messageId": m.MessageID, "emoji": "e3", "on": true}, "rate-limit-exceeded", "rate_limited")
	alice.reactions(conv, m.MessageID) // in the default bucket
}

type replyEvent struct {
	MessageID string `json:"messageId"`
	ReplyTo   string `json:"replyTo"`
}

// replyTo names a message of the same conversation (a deleted one too); it
// is carried by message:new live and in history; any other id is
// not_found.
func TestReplies(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv, other := alice.create("bob"), bob.create()
	bob.join(conv)
	first := alice.send(conv, "first")
	bob.event("message:new")
	elsewhere := bob.send(other, "elsewhere")

	send := func(c *client, replyTo string) wsclient.Frame {
		return c.try("message:send", map[string]any{"conversationId": conv, "content": "re", "clientMsgId": fmt.Sprint("re-", f.ids.Add(1)), "replyTo": replyTo})
	}
	r := decode[sendAck](t, send(bob, first.MessageID).Data)
	if e := decode[replyEvent](t, bob.event("message:new").Data); e.MessageID != r.MessageID || e.ReplyTo != first.MessageID {
		t.Fatalf("live message:new %+v, want replyTo %s", e, first.MessageID)
	}
	for _, id := range []string{elsewhere.MessageID, "01ARZ3NDEKTSV4RRFFQ69G5FAV"} {
		bob.fails("message:send", map[string]any{"conversationId": conv, "content": "re", "clientMsgId": "bad-" + id, "replyTo": id}, "error", "not_found")
	}
	bob.fails("message:send", map[string]any{"conversationId": conv, "content": "re", "clientMsgId": "bad", "replyTo": "a.b"}, "validation-error", "validation_failed")

	alice.do("message:delete", map[string]any{"conversationId": conv, "messageId": first.MessageID})
	if fr := send(alice, first.MessageID); fr.Type != "ack" {
		t.Fatalf("a reply to a deleted message: %s", fr)
	}
	h := decode[struct {
		Events []wsclient.Frame `json:"events"`
	}](t, alice.do("conversation:history", map[string]any{"conversationId": conv}))
	replies := 0
	for _, e := range h.Events {
		if e.Type != "message:new" {
			continue
		}
		ev := decode[replyEvent](t, e.Data)
		if ev.MessageID == first.MessageID && ev.ReplyTo != "" {
			t.Fatalf("the first message has replyTo %q", ev.ReplyTo)
		}
		if ev.ReplyTo == first.MessageID {
			replies++
		}
	}
	if replies != 2 {
		t.Fatalf("history holds %d replies to the first message, want 2: %v", replies, h.Events)
	}
}

// Socket.IO sessions react and get message:reacted as an event of its name.
func TestReactionsOverSocketIO(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	m := alice.send(conv, "hi")
	bob := f.connectSIO("acme", "bob")
	bob.do("conversation:join", map[string]any{"conversationId": conv})
	a := alice.react(conv, m.MessageID, "🙂", true)
	if e := decode[reactedEvent](t, bob.event("message:reacted")); e.Seq != a.Seq || e.Emoji != "🙂" || e.UserID != "alice" || !e.On {
		t.Fatalf("ack %+v, event %+v", a, e)
	}
	if b := decode[reactAck](t, bob.do("message:react", map[string]any{"conversationId": conv, "messageId": m.MessageID, "emoji": "🙂", "on": true})); !b.Changed || b.Seq <= a.Seq {
		t.Fatalf("bob's ack %+v", b)
	}
	rs := decode[struct {
		Reactions []reactionJSON `json:"reactions"`
	}](t, bob.do("message:reactions", map[string]any{"conversationId": conv, "messageIds": []string{m.MessageID}}))
	if len(rs.Reactions) != 1 || !rs.Reactions[0].Me || rs.Reactions[0].Count != 2 {
		t.Fatalf("reactions %+v", rs)
	}
}
