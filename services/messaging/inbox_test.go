package messaging

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func TestCutChars(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""}, {"abc", 3, "abc"}, {"abcd", 3, "abc"}, {"ééé", 2, "éé"}, {"🎉🎉🎉", 1, "🎉"}, {"a\xffb", 2, "a\xff"},
	} {
		if got := cutChars(c.in, c.n); got != c.want {
			t.Errorf("cutChars(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// storedEvents reads a conversation's stored events as they are.
func storedEvents(t *testing.T, nc *nats.Conn, org, conv string) []*chatv1.Event {
	t.Helper()
	b, err := natsx.GetBatch(context.Background(), nc, names.StreamEvents, names.Store(org, conv), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*chatv1.Event
	for _, m := range b.Msgs {
		ev, err := decodeEvent(m.Data, m.Seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// checkTallies checks every tallied event's tally against the events
// before it, counting from the first tallied event's since_seq.
func checkTallies(t *testing.T, events []*chatv1.Event) {
	t.Helper()
	var prevMsg, count uint64
	for _, ev := range events {
		if ev.Tally != nil && (ev.Tally.MessagesBefore != count || (ev.Tally.PrevMessageSeq != prevMsg && ev.Tally.PrevMessageSeq != 0)) {
			t.Fatalf("event %d: tally %v, want %d messages before, the last at %d", ev.Seq, ev.Tally, count, prevMsg)
		}
		if ev.GetMessageNew() != nil {
			prevMsg = ev.Seq
			if ev.Tally != nil {
				count++
			}
		}
	}
}

// Two instances appending to one conversation keep its tallies exact: each
// append's tally comes from the event it was checked to follow.
func TestTalliesOfTwoInstances(t *testing.T) {
	ns := natstest.Server(t)
	nc1, nc2 := natstest.Conn(t, ns), natstest.Conn(t, ns)
	start(t, nc1)
	start(t, nc2)
	alice, bob := who("acme", "alice"), who("acme", "bob")
	conv := createConv(t, nc1, alice, "bob")
	done := make(chan error, 4)
	for w := range 4 {
		go func() {
			nc, p := nc1, alice
			if w%2 == 1 {
				nc = nc2
			}
			if w >= 2 {
				p = bob
			}
			for i := range 30 {
				if _, err := trySend(nc, p, conv, "x", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	events := storedEvents(t, nc1, "acme", conv)
	checkTallies(t, events)
	if last := events[len(events)-1]; last.Tally == nil || last.Tally.MessagesBefore != 119 || last.Tally.SinceSeq != 0 {
		t.Fatalf("last tally %v, want 119 messages before it, counted from the start", last.Tally)
	}
	var l chatv1.ListConversationsResponse
	if err := call(t, nc2, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice}, &l); err != nil {
		t.Fatal(err)
	}
	if s := l.Conversations[0]; s.Unread != 60 || s.LastMessage.GetMessageId() != events[len(events)-1].GetMessageNew().MessageId {
		t.Fatalf("alice: unread %d (want bob's 60), last message %v", s.Unread, s.LastMessage)
	}
}

// publishLegacy stores ev the way messaging did before tallies: no tally.
func publishLegacy(t *testing.T, js jetstream.JetStream, org, conv string, prev uint64, ev *chatv1.Event) uint64 {
	t.Helper()
	ev.PrevSeq = prev
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: names.Store(org, conv), Data: data}, jetstream.WithExpectLastSequencePerSubject(prev))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// A conversation whose older events were stored without tallies: a list
// finds its last message by walking back, and the events appended after
// them count from there.
func TestInboxOverUntalliedEvents(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := who("acme", "alice"), who("acme", "bob")
	// The service that stores the create runs first, then stops: the
	// legacy events come after it, and the next instance has no cache.
	s := start(t, nc)
	conv := createConv(t, nc, alice, "bob")
	_ = s.Stop(context.Background())
	var last uint64
	for _, ev := range storedEvents(t, nc, "acme", conv) {
		last = ev.Seq
	}
	msg := func(sender, content string) *chatv1.Event {
		return &chatv1.Event{ConversationId: conv, Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{
			MessageId: "01JD0000000000000000000000", SenderId: sender, Content: content, CreatedAtMs: 1,
		}}}
	}
	for i := range 3 {
		ev := msg("alice", fmt.Sprint("old ", i))
		ev.GetMessageNew().MessageId = fmt.Sprintf("01JD00000000000000000000%02d", i)
		last = publishLegacy(t, js, "acme", conv, last, ev)
	}
	// The newest event is not a message: the list walks back to "old 2".
	last = publishLegacy(t, js, "acme", conv, last, &chatv1.Event{ConversationId: conv, Body: &chatv1.Event_ConversationUpdated{ConversationUpdated: &chatv1.ConversationUpdated{Participants: []string{"alice", "bob"}}}})
	start(t, nc)
	list := func(p *chatv1.Principal) *chatv1.ConversationSummary {
		t.Helper()
		var l chatv1.ListConversationsResponse
		if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: p}, &l); err != nil {
			t.Fatal(err)
		}
		return l.Conversations[0]
	}
	if s := list(bob); s.Unread != 3 || s.LastMessage.GetContent() != "old 2" {
		t.Fatalf("over untallied events: unread %d, last message %v", s.Unread, s.LastMessage)
	}
	// New events count from the last untallied one.
	for i := range 4 {
		sendMsg(t, nc, alice, conv, strings.Repeat("n", i+1), fmt.Sprint("new", i))
	}
	events := storedEvents(t, nc, "acme", conv)
	checkTallies(t, events)
	if tl := events[len(events)-1].Tally; tl == nil || tl.SinceSeq != last || tl.MessagesBefore != 3 {
		t.Fatalf("tally after untallied events: %v, want since %d and 3 messages before", tl, last)
	}
	if s := list(bob); s.Unread != 7 || s.LastMessage.GetContent() != "nnnn" {
		t.Fatalf("unread %d, last message %v; want 7 and nnnn", s.Unread, s.LastMessage)
	}
}

// An ids-only list (what an edge asks at connect to follow a user's
// activity) holds the most recent conversations first, up to its limit,
// with ids and last seqs only, and none of another user's.
func TestListIDsOnly(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice := who("acme", "alice")
	a, b, c := createConv(t, nc, alice, "bob"), createConv(t, nc, alice), createConv(t, nc, alice, "bob")
	createConv(t, nc, who("acme", "carol"))
	sent := sendMsg(t, nc, alice, a, "newest", "1")
	var l chatv1.ListConversationsResponse
	if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice, IdsOnly: true}, &l); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range l.Conversations {
		got = append(got, s.ConversationId)
		if s.Title != "" || len(s.Participants) > 0 {
			t.Fatalf("ids-only summary with a record: %v", s)
		}
	}
	if want := []string{a, c, b}; fmt.Sprint(got) != fmt.Sprint(want) || l.Conversations[0].LastSeq != sent.Seq || l.Cursor != "" {
		t.Fatalf("ids only: %v (first last seq %d), want %v (%d)", got, l.Conversations[0].LastSeq, want, sent.Seq)
	}
	if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice, IdsOnly: true, Limit: 2}, &l); err != nil || len(l.Conversations) != 2 {
		t.Fatalf("limit 2: %d conversations (%v)", len(l.Conversations), err)
	}
}
