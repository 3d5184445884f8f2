package messaging

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func reactReq(p *chatv1.Principal, conv, msg, emoji string, on bool) *chatv1.ReactRequest {
	return &chatv1.ReactRequest{Principal: p, ConversationId: conv, MessageId: msg, Emoji: emoji, On: on}
}

// reactedEvents are the message_reacted events stored for conv.
func reactedEvents(t *testing.T, nc *nats.Conn, org, conv string) []*chatv1.MessageReacted {
	t.Helper()
	b, err := natsx.GetBatch(context.Background(), nc, names.StreamEvents, names.Store(org, conv), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*chatv1.MessageReacted
	for _, m := range b.Msgs {
		ev, err := decodeEvent(m.Data, m.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if r := ev.GetMessageReacted(); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// A change stored in the state whose event was not appended (a crash in
// between) is appended by the retry, which answers changed with its seq;
// one whose event was appended but not cleared is not appended twice.
func TestPendingReactionConvergesOnRetry(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	s := start(t, nc)
	alice, bob := who("acme", "alice"), who("acme", "bob")
	conv := createConv(t, nc, alice, "bob")
	msg := sendMsg(t, nc, alice, conv, "hi", "c1").MessageId
	ctx := context.Background()
	key := names.ReactionsKey("acme", conv, msg)

	// The state of a react that stopped after its compare-and-set.
	pending := &chatv1.MessageReacted{MessageId: msg, UserId: "alice", Emoji: "👍", On: true, ReactedAtMs: 1}
	st := &chatv1.ReactionsState{Emoji: []*chatv1.EmojiUsers{{Emoji: "👍", UserIds: []string{"alice"}}}, Pending: pending}
	if _, err := s.putReactions(ctx, key, st, 0); err != nil {
		t.Fatal(err)
	}
	var resp chatv1.ReactResponse
	if err := call(t, nc, names.ActionReact, reactReq(alice, conv, msg, "👍", true), &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.Changed || resp.Seq == 0 {
		t.Fatalf("the retry answered %+v, want changed with the event's seq", &resp)
	}
	if evs := reactedEvents(t, nc, "acme", conv); len(evs) != 1 || evs[0].UserId != "alice" {
		t.Fatalf("stored %v, want alice's one event", evs)
	}

	// Stopped after its append, before clearing: bob's next change
	// appends the pending one first, deduplicated.
	st, rev, err := s.reactionsState(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	applyReaction(st, "bob", "🎉", true)
	st.Pending = &chatv1.MessageReacted{MessageId: msg, UserId: "bob", Emoji: "🎉", On: true, ReactedAtMs: 2}
	if rev, err = s.putReactions(ctx, key, st, rev); err != nil {
		t.Fatal(err)
	}
	ev := &chatv1.Event{ConversationId: conv, Body: &chatv1.Event_MessageReacted{MessageReacted: st.Pending}}
	if _, err := s.appendEvent(ctx, "acme", conv, ev, reactDedupeID(key, rev), nil); err != nil {
		t.Fatal(err)
	}
	if err := call(t, nc, names.ActionReact, reactReq(alice, conv, msg, "🎉", true), &resp); err != nil || !resp.Changed {
		t.Fatalf("alice's 🎉: %+v %v", &resp, err)
	}
	evs := reactedEvents(t, nc, "acme", conv)
	if len(evs) != 3 || evs[1].UserId != "bob" || evs[2].UserId != "alice" || evs[2].Emoji != "🎉" {
		t.Fatalf("stored %v, want alice 👍, bob 🎉, alice 🎉 once each", evs)
	}
	var rs chatv1.ReactionsResponse
	if err := call(t, nc, names.ActionReactions, &chatv1.ReactionsRequest{Principal: bob, ConversationId: conv, MessageIds: []string{msg}}, &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs.Reactions) != 2 || rs.Reactions[1].Count != 2 || !rs.Reactions[1].Me || rs.Reactions[0].Me {
		t.Fatalf("reactions %v", rs.Reactions)
	}
}

// Two instances and many devices racing on one message keep the state and
// the events in agreement: every change once, counts exact.
func TestRacingReactionsAgreeWithTheirEvents(t *testing.T) {
	ns := natstest.Server(t)
	nc1, nc2 := natstest.Conn(t, ns), natstest.Conn(t, ns)
	start(t, nc1)
	start(t, nc2)
	alice := who("acme", "alice")
	users := []string{"bob", "carol", "dave"}
	conv := createConv(t, nc1, alice, users...)
	msg := sendMsg(t, nc1, alice, conv, "hi", "c1").MessageId
	users = append(users, "alice")

	const workers = 8
	done := make(chan error, workers)
	for w := range workers {
		go func() {
			nc := []*nats.Conn{nc1, nc2}[w%2]
			p := who("acme", users[w%len(users)]) // two devices per user
			var err error
			for i := range 10 {
				emoji := fmt.Sprint("e", i%3)
				var resp chatv1.ReactResponse
				if err = request(nc, names.ActionReact, reactReq(p, conv, msg, emoji, i < 5 || i%2 == 0), &resp); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Replay the events: the result must be the state.
	on := map[string]bool{}
	for _, r := range reactedEvents(t, nc1, "acme", conv) {
		k := r.UserId + " " + r.Emoji
		if on[k] == r.On {
			t.Fatalf("event %v changes nothing", r)
		}
		on[k] = r.On
	}
	counts := map[string]uint32{}
	for k, v := range on {
		if v {
			var u, e string
			fmt.Sscan(k, &u, &e)
			counts[e]++
		}
	}
	var rs chatv1.ReactionsResponse
	if err := call(t, nc2, names.ActionReactions, &chatv1.ReactionsRequest{Principal: alice, ConversationId: conv, MessageIds: []string{msg}}, &rs); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for _, r := range rs.Reactions {
		got[r.Emoji] = r.Count
	}
	if fmt.Sprint(got) != fmt.Sprint(counts) {
		t.Fatalf("reactions %v, events say %v", got, counts)
	}
}

func TestReactValidation(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice := who("acme", "alice")
	conv := createConv(t, nc, alice, "bob")
	msg := sendMsg(t, nc, alice, conv, "hi", "c1").MessageId
	for _, e := range []string{"", "a b", "\u00a0", "x\ny", "\x7f", strings.Repeat("a", 65), "\u200b\u3000"} {
		mustCode(t, call(t, nc, names.ActionReact, reactReq(alice, conv, msg, e, true), &chatv1.ReactResponse{}), errs.CodeValidation)
	}
	for _, e := range []string{"👩‍💻", "❤️", "+1", ":party_parrot:"} {
		if err := call(t, nc, names.ActionReact, reactReq(alice, conv, msg, e, true), &chatv1.ReactResponse{}); err != nil {
			t.Fatalf("%q: %v", e, err)
		}
	}
	sys := &chatv1.Principal{Org: "acme", User: "bot", System: true}
	mustCode(t, svc.Call(context.Background(), nc, names.SystemCommand(names.Messaging, "acme", names.ActionReact), reactReq(sys, conv, msg, "x", true), &chatv1.ReactResponse{}), errs.CodeForbidden)
	mustCode(t, call(t, nc, names.ActionReact, reactReq(who("acme", "eve"), conv, msg, "x", true), &chatv1.ReactResponse{}), errs.CodeForbidden)
	mustCode(t, call(t, nc, names.ActionReactions, &chatv1.ReactionsRequest{Principal: alice, ConversationId: conv}, &chatv1.ReactionsResponse{}), errs.CodeValidation)
}

// A reactions reply fits its bounds: with many users every emoji shows
// fewer (the same number for all), counts stay exact; when even none
// would not fit, the reply ends at a message and says truncated.
func TestReactionsReplyFits(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	s := start(t, nc)
	users := make([]string, 30)
	for i := range users {
		users[i] = fmt.Sprintf("%064d", i)
	}
	build := func(emoji int) [][]*chatv1.Reaction {
		var per [][]*chatv1.Reaction
		for m := range maxReactionMessages {
			st := &chatv1.ReactionsState{}
			for e := range emoji {
				st.Emoji = append(st.Emoji, &chatv1.EmojiUsers{Emoji: fmt.Sprint("e", e), UserIds: users})
			}
			per = append(per, reactionsOf(messageID(1, uint64(m+1)), st, who("acme", users[3])))
		}
		return per
	}
	fits := func(out []*chatv1.Reaction) {
		t.Helper()
		w, j := reactionsSize([][]*chatv1.Reaction{out}, reactionUsersShown)
		if w > s.wireLimit() || j > s.cfg.ReplyBytes {
			t.Fatalf("reply of %d bytes (JSON %d), limits %d and %d", w, j, s.wireLimit(), s.cfg.ReplyBytes)
		}
	}
	out, truncated := s.fitReactions(build(10))
	fits(out)
	k := len(out[0].UserIds)
	if truncated || len(out) != 1000 || k == 0 || k >= reactionUsersShown {
		t.Fatalf("%d reactions, truncated %v, %d users each", len(out), truncated, k)
	}
	for _, r := range out {
		if len(r.UserIds) != k || r.Count != 30 || !r.Me {
			t.Fatalf("reaction %v, want %d users, count 30, me", r, k)
		}
	}
	out, truncated = s.fitReactions(build(maxEmojiPerMessage))
	fits(out)
	if truncated || len(out) != 5000 || len(out[0].UserIds) != 0 {
		t.Fatalf("%d reactions, truncated %v, want 5,000 without users", len(out), truncated)
	}
	s.cfg.ReplyBytes = 64 << 10 // read by fitReactions only: no command runs meanwhile
	out, truncated = s.fitReactions(build(maxEmojiPerMessage))
	fits(out)
	if !truncated || len(out) == 0 || len(out)%maxEmojiPerMessage != 0 || len(out[0].UserIds) != 0 {
		t.Fatalf("%d reactions, truncated %v", len(out), truncated)
	}
}
