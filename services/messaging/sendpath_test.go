package messaging

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// sendOn sends on one instance, by calling it directly.
func sendOn(s *Service, p *chatv1.Principal, conv, clientID string) (*chatv1.SendResponse, error) {
	return s.send(context.Background(), &chatv1.SendRequest{Principal: p, ConversationId: conv, Content: "hi", ClientMsgId: clientID})
}

// A participant removed on one instance is refused at once by another
// whose cached record still lists them, and one added back is accepted at
// once; the cache serves the sends in between.
func TestRemovedParticipantIsRefusedByEveryInstance(t *testing.T) {
	ns := natstest.Server(t)
	nc1, nc2 := natstest.Conn(t, ns), natstest.Conn(t, ns)
	reg := prometheus.NewRegistry()
	a, err := New(context.Background(), nc1, Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	b := start(t, nc2)
	ctx := context.Background()
	alice, bob := who("acme", "alice"), who("acme", "bob")
	created, err := b.create(ctx, &chatv1.CreateConversationRequest{Principal: alice, Participants: []string{"bob"}, Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	conv := created.ConversationId

	for round := range 20 {
		// Warm a's cache: the second send is checked against it.
		for i := range 3 {
			if _, err := sendOn(a, bob, conv, fmt.Sprintf("r%d-%d", round, i)); err != nil {
				t.Fatalf("round %d: bob's send %d on a: %v", round, i, err)
			}
		}
		remover := b
		if round%2 == 1 {
			remover = a // the removal's event is a's own
		}
		if _, err := remover.remove(ctx, &chatv1.RemoveParticipantRequest{Principal: alice, ConversationId: conv, UserId: "bob"}); err != nil {
			t.Fatal(err)
		}
		_, err := sendOn(a, bob, conv, fmt.Sprintf("r%d-removed", round))
		if !errs.Is(err, errs.CodeForbidden) {
			t.Fatalf("round %d: bob's send on a right after his removal on the other instance: %v, want forbidden", round, err)
		}
		if _, err := b.add(ctx, &chatv1.AddParticipantsRequest{Principal: alice, ConversationId: conv, UserIds: []string{"bob"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := sendOn(a, bob, conv, fmt.Sprintf("r%d-back", round)); err != nil {
			t.Fatalf("round %d: bob's send on a right after he was added back on b: %v", round, err)
		}
	}
	cached := testutil.ToFloat64(a.convChecks.WithLabelValues("cached"))
	read := testutil.ToFloat64(a.convChecks.WithLabelValues("read"))
	t.Logf("a's send checks: %v cached, %v read", cached, read)
	if cached < 20 {
		t.Fatalf("%v of a's send checks came from the cache, want at least 20 (one a round)", cached)
	}
}

// A send writes only the stream: its message's state comes from the event
// its id names, until an edit or delete needs more.
func TestSendWritesNoMessageState(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	s := start(t, nc)
	ctx := context.Background()
	alice, bob := who("acme", "alice"), who("acme", "bob")
	conv := createConv(t, nc, alice, "bob")
	m := sendMsg(t, nc, alice, conv, "hello", "1")
	if len(m.MessageId) != 26 || !ids.Valid(m.MessageId) {
		t.Fatalf("message id %q is not a 26-character ULID", m.MessageId)
	}
	if _, err := s.messages.Get(ctx, names.MessageKey("acme", conv, m.MessageId)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("message state after a send: %v, want none", err)
	}
	// The stored event names the message by the same id.
	ev, err := s.eventAt(ctx, "acme", conv, m.Seq)
	if err != nil || ev.GetMessageNew().GetMessageId() != m.MessageId {
		t.Fatalf("stored event %v (%v), want message %s", ev, err, m.MessageId)
	}
	// An id of another conversation's message, or a made-up one, is unknown.
	other := createConv(t, nc, alice, "bob")
	mustCode(t, call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: other, MessageId: m.MessageId, Content: "x"}, &chatv1.EditResponse{}), errs.CodeNotFound)
	mustCode(t, call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: messageID(1, m.Seq), Content: "x"}, &chatv1.EditResponse{}), errs.CodeNotFound)
	mustCode(t, call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: ids.New()}, &chatv1.DeleteResponse{}), errs.CodeNotFound)
	mustCode(t, call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: bob, ConversationId: conv, MessageId: m.MessageId, Content: "x"}, &chatv1.EditResponse{}), errs.CodeForbidden)

	// Two deletes at once: one wins, the other finds it gone.
	results := make(chan error, 2)
	for range 2 {
		go func() {
			results <- call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId}, &chatv1.DeleteResponse{})
		}()
	}
	e1, e2 := <-results, <-results
	if (e1 == nil) == (e2 == nil) || (e1 != nil && !errs.Is(e1, errs.CodeNotFound)) || (e2 != nil && !errs.Is(e2, errs.CodeNotFound)) {
		t.Fatalf("two deletes: %v and %v, want one ok and one not_found", e1, e2)
	}
	st, _, err := getProto[chatv1.MessageState](ctx, s.messages, names.MessageKey("acme", conv, m.MessageId))
	if err != nil || !st.Deleted || st.SenderId != "alice" || st.Seq != m.Seq {
		t.Fatalf("message state after the delete: %v (%v)", st, err)
	}
}

// A message stored before ids were made from seqs (a random ULID, its state
// in chat_messages) is still edited and deleted through its state.
func TestStoredBeforeMessageIDsFromSeqs(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	s := start(t, nc)
	ctx := context.Background()
	alice := who("acme", "alice")
	conv := createConv(t, nc, alice, "bob")
	id := ids.New()
	ev := &chatv1.Event{ConversationId: conv, Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{
		MessageId: id, SenderId: "alice", Content: "old", ClientMsgId: "old", CreatedAtMs: 1,
	}}}
	res, err := s.appendEvent(ctx, "acme", conv, ev, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.putMessageState(ctx, "acme", conv, id, &chatv1.MessageState{Seq: res.seq, SenderId: "alice"}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.eventAt(ctx, "acme", conv, res.seq); err != nil || got.GetMessageNew().GetMessageId() != id {
		t.Fatalf("stored event %v (%v), want its own id %s", got, err, id)
	}
	if err := call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: id, Content: "new"}, &chatv1.EditResponse{}); err != nil {
		t.Fatalf("edit: %v", err)
	}
	if err := call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: id}, &chatv1.DeleteResponse{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	mustCode(t, call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: id, Content: "again"}, &chatv1.EditResponse{}), errs.CodeNotFound)
}
