package messaging

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func start(t *testing.T, nc *nats.Conn) *Service {
	t.Helper()
	s, err := New(context.Background(), nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func who(org, user string) *chatv1.Principal { return &chatv1.Principal{Org: org, User: user} }

// request sends one command as req's principal. It touches no
// *testing.T, so that goroutines other than the test's can use it.
func request[Resp svc.Response](nc *nats.Conn, action string, req svc.Request, resp Resp) error {
	return svc.Call(context.Background(), nc, names.Command(names.Messaging, req.GetPrincipal().GetOrg(), action), req, resp)
}

// transportErr is err if it is a transport failure (no wire error: the
// service did not answer, or answered what is not a reply), else nil.
func transportErr(action string, err error) error {
	if err != nil && errs.As(err) == errs.Internal {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}

// call sends one command as req's principal and fails the test on a
// transport error.
func call[Resp svc.Response](t testing.TB, nc *nats.Conn, action string, req svc.Request, resp Resp) error {
	t.Helper()
	err := request(nc, action, req, resp)
	if terr := transportErr(action, err); terr != nil {
		t.Fatal(terr)
	}
	return err
}

func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if !errs.Is(err, code) {
		t.Fatalf("got %v, want code %s", err, code)
	}
}

func createConv(t testing.TB, nc *nats.Conn, p *chatv1.Principal, others ...string) string {
	t.Helper()
	var resp chatv1.CreateConversationResponse
	if err := call(t, nc, names.ActionCreate, &chatv1.CreateConversationRequest{Principal: p, Participants: others, Title: "t"}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.ConversationId
}

func sendMsg(t testing.TB, nc *nats.Conn, p *chatv1.Principal, conv, content, clientID string) *chatv1.SendResponse {
	t.Helper()
	resp, err := trySend(nc, p, conv, content, clientID)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// trySend is sendMsg for goroutines other than the test's: any error,
// wire or transport, is returned.
func trySend(nc *nats.Conn, p *chatv1.Principal, conv, content, clientID string) (*chatv1.SendResponse, error) {
	var resp chatv1.SendResponse
	if err := request(nc, names.ActionSend, &chatv1.SendRequest{Principal: p, ConversationId: conv, Content: content, ClientMsgId: clientID}, &resp); err != nil {
		return nil, fmt.Errorf("send %s: %w", clientID, err)
	}
	return &resp, nil
}

func TestSendDedupeAndHistory(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice := who("acme", "alice")
	conv := createConv(t, nc, alice, "bob")

	var acks []*chatv1.SendResponse
	for i := range 5 {
		acks = append(acks, sendMsg(t, nc, alice, conv, fmt.Sprintf("m%d", i), fmt.Sprintf("c%d", i)))
	}
	dup := sendMsg(t, nc, alice, conv, "m2 again", "c2")
	if !dup.Duplicate || dup.Seq != acks[2].Seq || dup.MessageId != acks[2].MessageId || dup.CreatedAtMs != acks[2].CreatedAtMs {
		t.Fatalf("resend answered %+v, want the first ack %+v with duplicate", dup, acks[2])
	}
	// Bob's clientMsgId "c2" is his own: not a duplicate of alice's.
	if b := sendMsg(t, nc, who("acme", "bob"), conv, "bob", "c2"); b.Duplicate {
		t.Fatal("another user's clientMsgId was taken as a duplicate")
	}

	var h chatv1.HistoryResponse
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, Limit: 3}, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 3 || !h.HasMore || h.Events[0].GetMessageNew().GetContent() != "m3" || h.Events[2].GetMessageNew().GetSenderId() != "bob" {
		t.Fatalf("newest 3: %v hasMore=%v", h.Events, h.HasMore)
	}
	// The chain back from the newest reaches the creation event.
	var all chatv1.HistoryResponse
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, Limit: 200}, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Events) != 7 || all.HasMore || all.Events[0].GetConversationUpdated() == nil || all.Events[0].PrevSeq != 0 {
		t.Fatalf("full history: %d events hasMore=%v first=%v", len(all.Events), all.HasMore, all.Events[0])
	}
	checkChain(t, all.Events)

	var after chatv1.HistoryResponse
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, AfterSeq: &acks[0].Seq, BeforeSeq: &acks[4].Seq, Limit: 2}, &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Events) != 2 || !after.HasMore || after.Events[0].Seq != acks[1].Seq {
		t.Fatalf("after/before page: %v hasMore=%v", after.Events, after.HasMore)
	}

	var j chatv1.JoinResponse
	since := acks[1].Seq
	if err := call(t, nc, names.ActionJoin, &chatv1.JoinRequest{Principal: alice, ConversationId: conv, SinceSeq: &since}, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Missed) != 4 || j.Missed[0].Seq != acks[2].Seq || j.Truncated || j.LastSeq != all.Events[6].Seq {
		t.Fatalf("join missed %d events, lastSeq %d, truncated %v", len(j.Missed), j.LastSeq, j.Truncated)
	}
}

func checkChain(t *testing.T, events []*chatv1.Event) {
	t.Helper()
	var prev uint64
	for i, ev := range events {
		if ev.PrevSeq != prev || ev.Seq <= prev {
			t.Fatalf("event %d: seq %d prevSeq %d after seq %d", i, ev.Seq, ev.PrevSeq, prev)
		}
		prev = ev.Seq
	}
}

func TestTwoInstancesKeepOneChain(t *testing.T) {
	ns := natstest.Server(t)
	nc1, nc2 := natstest.Conn(t, ns), natstest.Conn(t, ns)
	start(t, nc1)
	start(t, nc2)
	alice := who("acme", "alice")
	conv := createConv(t, nc1, alice, "bob")

	const perWorker, workers = 40, 8
	// The workers report to the test's goroutine, which alone may fail
	// the test.
	failed := make(chan error, workers)
	for w := range workers {
		go func() {
			nc := nc1
			if w%2 == 1 {
				nc = nc2
			}
			for i := range perWorker {
				if _, err := trySend(nc, alice, conv, "x", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					failed <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
			failed <- nil
		}()
	}
	for range workers {
		if err := <-failed; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	b, err := natsx.GetBatch(context.Background(), nc1, names.StreamEvents, names.Store("acme", conv), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Msgs) != 1+perWorker*workers {
		t.Fatalf("stream holds %d events, want %d", len(b.Msgs), 1+perWorker*workers)
	}
	var events []*chatv1.Event
	for _, m := range b.Msgs {
		ev := &chatv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			t.Fatal(err)
		}
		ev.Seq = m.Seq
		events = append(events, ev)
	}
	checkChain(t, events)
}

func TestTenancy(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	conv := createConv(t, nc, who("acme", "alice"), "bob")
	mallory := who("evil", "alice") // same user id, other org

	err := call(t, nc, names.ActionJoin, &chatv1.JoinRequest{Principal: mallory, ConversationId: conv}, &chatv1.JoinResponse{})
	mustCode(t, err, errs.CodeNotFound)
	err = call(t, nc, names.ActionSend, &chatv1.SendRequest{Principal: mallory, ConversationId: conv, Content: "x", ClientMsgId: "1"}, &chatv1.SendResponse{})
	mustCode(t, err, errs.CodeNotFound)
	err = call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: mallory, ConversationId: conv}, &chatv1.HistoryResponse{})
	mustCode(t, err, errs.CodeNotFound)
	var l chatv1.ListConversationsResponse
	if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: mallory}, &l); err != nil || len(l.Conversations) != 0 {
		t.Fatalf("other org lists %v (%v)", l.Conversations, err)
	}

	// A principal of one org on another org's subject is refused.
	err = svc.Call(context.Background(), nc, names.Command(names.Messaging, "acme", names.ActionJoin),
		&chatv1.JoinRequest{Principal: mallory, ConversationId: conv}, &chatv1.JoinResponse{})
	mustCode(t, err, errs.CodeForbidden)

	// A same-org non-participant is forbidden.
	err = call(t, nc, names.ActionSend, &chatv1.SendRequest{Principal: who("acme", "carol"), ConversationId: conv, Content: "x", ClientMsgId: "1"}, &chatv1.SendResponse{})
	mustCode(t, err, errs.CodeForbidden)
}

func TestEditDeleteOwnership(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice, bob := who("acme", "alice"), who("acme", "bob")
	conv := createConv(t, nc, alice, "bob")
	m := sendMsg(t, nc, alice, conv, "secret", "1")

	err := call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: bob, ConversationId: conv, MessageId: m.MessageId, Content: "x"}, &chatv1.EditResponse{})
	mustCode(t, err, errs.CodeForbidden)
	err = call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: bob, ConversationId: conv, MessageId: m.MessageId}, &chatv1.DeleteResponse{})
	mustCode(t, err, errs.CodeForbidden)

	var e chatv1.EditResponse
	if err := call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId, Content: "edited"}, &e); err != nil || e.Seq <= m.Seq {
		t.Fatalf("edit: %v seq %d", err, e.Seq)
	}
	var d chatv1.DeleteResponse
	if err := call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId}, &d); err != nil || d.Seq <= e.Seq {
		t.Fatalf("delete: %v seq %d", err, d.Seq)
	}
	err = call(t, nc, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId, Content: "again"}, &chatv1.EditResponse{})
	mustCode(t, err, errs.CodeNotFound)
	err = call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId}, &chatv1.DeleteResponse{})
	mustCode(t, err, errs.CodeNotFound)

	var h chatv1.HistoryResponse
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: bob, ConversationId: conv}, &h); err != nil {
		t.Fatal(err)
	}
	for _, ev := range h.Events {
		if mn := ev.GetMessageNew(); mn != nil && mn.Content != "" {
			t.Fatalf("history serves a deleted message's content %q", mn.Content)
		}
	}
}

func TestListOrderAndPaging(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice := who("acme", "alice")
	var convs []string
	for range 5 {
		convs = append(convs, createConv(t, nc, alice, "bob"))
	}
	sendMsg(t, nc, alice, convs[1], "bump", "b1") // now the most recent
	var got []string
	cursor := ""
	for {
		var l chatv1.ListConversationsResponse
		if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice, Limit: 2, Cursor: cursor}, &l); err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Conversations {
			got = append(got, c.ConversationId)
		}
		if cursor = l.Cursor; cursor == "" {
			break
		}
	}
	want := []string{convs[1], convs[4], convs[3], convs[2], convs[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("list order %v, want %v", got, want)
	}
	// Removal takes the conversation off bob's list.
	var pr chatv1.ParticipantsResponse
	if err := call(t, nc, names.ActionRemove, &chatv1.RemoveParticipantRequest{Principal: alice, ConversationId: convs[0], UserId: "bob"}, &pr); err != nil {
		t.Fatal(err)
	}
	var l chatv1.ListConversationsResponse
	if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: who("acme", "bob")}, &l); err != nil || len(l.Conversations) != 4 {
		t.Fatalf("bob lists %d conversations after removal (%v)", len(l.Conversations), err)
	}
	// The removal's delete marker expires: the index does not grow with
	// every removal ever made.
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), names.KVStream(names.BucketMemberships))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), names.KVSubject(names.BucketMemberships, names.MembershipKey("acme", "bob", convs[0])))
	if err != nil || m.Header.Get("KV-Operation") != "DEL" || m.Header.Get("Nats-TTL") == "" {
		t.Fatalf("removal marker %v (%v)", m.Header, err)
	}
}

// An edit and a delete of one message at once, on two instances: the
// stream never holds an edit after the message's deletion.
func TestEditNeverFollowsDelete(t *testing.T) {
	ns := natstest.Server(t)
	nc1, nc2 := natstest.Conn(t, ns), natstest.Conn(t, ns)
	start(t, nc1)
	start(t, nc2)
	alice := who("acme", "alice")
	conv := createConv(t, nc1, alice)
	for i := range 30 {
		m := sendMsg(t, nc1, alice, conv, "x", fmt.Sprint(i))
		// Both report to the test's goroutine. The edit may lose the race
		// (not_found); only a transport failure is one of the test.
		edited, deleted := make(chan error, 1), make(chan error, 1)
		go func() {
			err := request(nc1, names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId, Content: "e"}, &chatv1.EditResponse{})
			edited <- transportErr(names.ActionEdit, err)
		}()
		go func() {
			deleted <- request(nc2, names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: m.MessageId}, &chatv1.DeleteResponse{})
		}()
		editErr, deleteErr := <-edited, <-deleted
		if editErr != nil || deleteErr != nil {
			t.Fatalf("message %d: edit: %v; delete: %v", i, editErr, deleteErr)
		}
	}
	b, err := natsx.GetBatch(context.Background(), nc1, names.StreamEvents, names.Store("acme", conv), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{}
	for _, m := range b.Msgs {
		ev := &chatv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.GetMessageDeleted() != nil:
			if deleted[ev.GetMessageDeleted().MessageId] {
				t.Fatalf("message %s deleted twice", ev.GetMessageDeleted().MessageId)
			}
			deleted[ev.GetMessageDeleted().MessageId] = true
		case ev.GetMessageEdited() != nil && deleted[ev.GetMessageEdited().MessageId]:
			t.Fatalf("seq %d: an edit of %s after its deletion", m.Seq, ev.GetMessageEdited().MessageId)
		}
	}
	if len(deleted) != 30 {
		t.Fatalf("%d messages deleted, want 30", len(deleted))
	}
}
