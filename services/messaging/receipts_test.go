package messaging

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func mark(t *testing.T, nc *nats.Conn, p *chatv1.Principal, conv string, seq uint64, read bool) error {
	t.Helper()
	action := names.ActionDelivered
	if read {
		action = names.ActionRead
	}
	return call(t, nc, action, &chatv1.MarkRequest{Principal: p, ConversationId: conv, Seq: seq}, &chatv1.MarkResponse{})
}

// liveEvents subscribes to a conversation's live events.
func liveEvents(t *testing.T, nc *nats.Conn, org, conv string) chan *chatv1.Event {
	t.Helper()
	ch := make(chan *chatv1.Event, 1000)
	sub, err := nc.Subscribe(names.ConvEvents(org, conv), func(m *nats.Msg) {
		ev := &chatv1.Event{}
		if proto.Unmarshal(m.Data, ev) == nil {
			ch <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = nc.Flush()
	return ch
}

// nextOf returns the next live event with a body of the kind keep picks.
func nextOf(t *testing.T, ch chan *chatv1.Event, keep func(*chatv1.Event) bool, within time.Duration) *chatv1.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-ch:
			if keep(ev) {
				return ev
			}
		case <-deadline:
			return nil
		}
	}
}

func isReceipt(ev *chatv1.Event) bool { return ev.GetReceipt() != nil }
func isTyping(ev *chatv1.Event) bool  { return ev.GetTyping() != nil }

func TestReceiptsMoveForwardOnly(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice, bob := who("acme", "alice"), who("acme", "bob")
	conv := createConv(t, nc, alice, "bob")
	var seqs []uint64
	for _, c := range []string{"1", "2", "3"} {
		seqs = append(seqs, sendMsg(t, nc, alice, conv, "m"+c, c).Seq)
	}
	live := liveEvents(t, nc, "acme", conv)

	if err := mark(t, nc, bob, conv, seqs[1], false); err != nil {
		t.Fatal(err)
	}
	if r := nextOf(t, live, isReceipt, 2*time.Second).GetReceipt(); r.UserId != "bob" || r.Delivered != seqs[1] || r.Read != 0 {
		t.Fatalf("receipt after delivered: %v", r)
	}
	// Read implies delivered.
	if err := mark(t, nc, bob, conv, seqs[2], true); err != nil {
		t.Fatal(err)
	}
	if r := nextOf(t, live, isReceipt, 2*time.Second).GetReceipt(); r.Delivered != seqs[2] || r.Read != seqs[2] {
		t.Fatalf("receipt after read: %v", r)
	}
	// An older seq is accepted and changes nothing: no event.
	if err := mark(t, nc, bob, conv, seqs[0], true); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, live, isReceipt, 300*time.Millisecond); ev != nil {
		t.Fatalf("an older marker published %v", ev)
	}
	// Beyond the last seq is invalid.
	mustCode(t, mark(t, nc, bob, conv, seqs[2]+1000, true), errs.CodeValidation)
	// Only participants, only for themselves, never across orgs.
	mustCode(t, mark(t, nc, who("acme", "carol"), conv, seqs[0], true), errs.CodeForbidden)
	mustCode(t, mark(t, nc, who("evil", "bob"), conv, seqs[0], true), errs.CodeNotFound)
	mustCode(t, mark(t, nc, &chatv1.Principal{Org: "acme", User: "bot", System: true}, conv, seqs[0], true), errs.CodeForbidden)

	var j chatv1.JoinResponse
	if err := call(t, nc, names.ActionJoin, &chatv1.JoinRequest{Principal: alice, ConversationId: conv}, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Receipts) != 1 || j.Receipts[0].UserId != "bob" || j.Receipts[0].Read != seqs[2] {
		t.Fatalf("join receipts %v", j.Receipts)
	}
	// The list shows each caller's own read marker next to lastSeq.
	for _, c := range []struct {
		p    *chatv1.Principal
		read uint64
	}{{bob, seqs[2]}, {alice, 0}} {
		var l chatv1.ListConversationsResponse
		if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: c.p}, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Conversations) != 1 || l.Conversations[0].Read != c.read || l.Conversations[0].LastSeq != seqs[2] {
			t.Fatalf("%s lists %v", c.p.User, l.Conversations)
		}
	}
}

func TestTyping(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	s, err := New(context.Background(), nc, Config{TypingTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	alice := who("acme", "alice")
	conv := createConv(t, nc, alice, "bob")
	live := liveEvents(t, nc, "acme", conv)
	typing := func(p *chatv1.Principal, on bool) error {
		return call(t, nc, names.ActionTyping, &chatv1.TypingRequest{Principal: p, ConversationId: conv, IsTyping: on}, &chatv1.TypingResponse{})
	}

	if err := typing(alice, true); err != nil {
		t.Fatal(err)
	}
	if ty := nextOf(t, live, isTyping, 2*time.Second).GetTyping(); ty.UserId != "alice" || !ty.IsTyping {
		t.Fatalf("typing event %v", ty)
	}
	// Renewals are no events; they keep the typist in the join reply.
	for range 5 {
		if err := typing(alice, true); err != nil {
			t.Fatal(err)
		}
	}
	if ev := nextOf(t, live, isTyping, 200*time.Millisecond); ev != nil {
		t.Fatalf("a renewal published %v", ev)
	}
	var j chatv1.JoinResponse
	if err := call(t, nc, names.ActionJoin, &chatv1.JoinRequest{Principal: who("acme", "bob"), ConversationId: conv}, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Typing) != 1 || j.Typing[0] != "alice" {
		t.Fatalf("join typing %v", j.Typing)
	}
	// Typing ends by itself after the TTL.
	start := time.Now()
	if ty := nextOf(t, live, isTyping, 5*time.Second).GetTyping(); ty == nil || ty.IsTyping || ty.UserId != "alice" {
		t.Fatalf("expiry event %v", ty)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("typing ended after %v, before its TTL", waited)
	}
	// Explicit stop: one event; a stop when not typing: none.
	_ = typing(alice, true)
	nextOf(t, live, isTyping, time.Second)
	_ = typing(alice, false)
	if ty := nextOf(t, live, isTyping, time.Second).GetTyping(); ty == nil || ty.IsTyping {
		t.Fatalf("stop event %v", ty)
	}
	_ = typing(alice, false)
	if ev := nextOf(t, live, isTyping, 300*time.Millisecond); ev != nil {
		t.Fatalf("a second stop published %v", ev)
	}
	mustCode(t, typing(who("acme", "carol"), true), errs.CodeForbidden)
	mustCode(t, typing(who("evil", "alice"), true), errs.CodeNotFound)
	// Never in the history.
	var h chatv1.HistoryResponse
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv}, &h); err != nil {
		t.Fatal(err)
	}
	for _, ev := range h.Events {
		if ev.GetTyping() != nil {
			t.Fatal("typing is in the history")
		}
	}
}
