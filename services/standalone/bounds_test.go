package standalone

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Replies are bounded in bytes (docs/protocol.md, "Reply sizes"): these
// tests fill conversations with what makes replies largest and check that
// every reply still comes, and that paging reaches everything.

// replyItemsBytes is the JSON budget of a reply's items (messaging's
// default ReplyBytes); a history page is its items and a few bytes more.
const replyItemsBytes = 512 << 10

// padID is a made-up user id of the longest kind (64 characters).
func padID(i, j int) string {
	s := fmt.Sprintf("p%d-%d-", i, j)
	return s + strings.Repeat("x", 64-len(s))
}

func padIDs(i, n int) []string {
	out := make([]string, n)
	for j := range out {
		out[j] = padID(i, j)
	}
	return out
}

type summaryJSON struct {
	ConversationID   string   `json:"conversationId"`
	Participants     []string `json:"participants"`
	ParticipantCount int      `json:"participantCount"`
	LastSeq          uint64   `json:"lastSeq"`
}

type listPage struct {
	Conversations []summaryJSON `json:"conversations"`
	Cursor        string        `json:"cursor"`
}

type historyPage struct {
	Events  []wsclient.Frame `json:"events"`
	HasMore bool             `json:"hasMore"`
}

type durable struct {
	Seq     uint64 `json:"seq"`
	PrevSeq uint64 `json:"prevSeq"`
}

// listAll pages through c's conversations with limit (0: the default) and
// returns them, with the data size of the largest page and the page count.
func listAll(c *client, limit int) (all []summaryJSON, largest, pages int) {
	c.f.t.Helper()
	cursor := ""
	for {
		data := map[string]any{}
		if limit > 0 {
			data["limit"] = limit
		}
		if cursor != "" {
			data["cursor"] = cursor
		}
		raw := c.do("conversation:list", data)
		largest, pages = max(largest, len(raw)), pages+1
		p := decode[listPage](c.f.t, raw)
		all = append(all, p.Conversations...)
		if p.Cursor == "" {
			return all, largest, pages
		}
		if len(p.Conversations) == 0 || pages > 1000 {
			c.f.t.Fatalf("list page %d: %d conversations and a cursor", pages, len(p.Conversations))
		}
		cursor = p.Cursor
	}
}

// historyBack pages from the newest event back to the first with limit 200
// and returns the events in seq order, the largest page's data size and
// the page count.
func historyBack(c *client, conv string) (events []durable, largest, pages int) {
	c.f.t.Helper()
	data := map[string]any{"conversationId": conv, "limit": 200}
	for {
		raw := c.do("conversation:history", data)
		largest, pages = max(largest, len(raw)), pages+1
		p := decode[historyPage](c.f.t, raw)
		page := make([]durable, 0, len(p.Events))
		for _, e := range p.Events {
			page = append(page, decode[durable](c.f.t, e.Data))
		}
		events = append(page, events...)
		if !p.HasMore {
			return events, largest, pages
		}
		if len(page) == 0 || pages > 1000 {
			c.f.t.Fatalf("history page %d: %d events and hasMore", pages, len(page))
		}
		data["beforeSeq"] = page[0].Seq
	}
}

// historyAfter pages forward from after with limit 200 to the newest event.
func historyAfter(c *client, conv string, after uint64) (events []durable, largest, pages int) {
	c.f.t.Helper()
	for {
		raw := c.do("conversation:history", map[string]any{"conversationId": conv, "afterSeq": after, "limit": 200})
		largest, pages = max(largest, len(raw)), pages+1
		p := decode[historyPage](c.f.t, raw)
		for _, e := range p.Events {
			events = append(events, decode[durable](c.f.t, e.Data))
		}
		if !p.HasMore {
			return events, largest, pages
		}
		if len(p.Events) == 0 || pages > 1000 {
			c.f.t.Fatalf("history page %d: %d events and hasMore", pages, len(p.Events))
		}
		after = events[len(events)-1].Seq
	}
}

// checkChain checks that events are one conversation's chain from its
// first event: each prevSeq is the seq before it.
func checkChain(t *testing.T, events []durable, want int) {
	t.Helper()
	if len(events) != want {
		t.Fatalf("%d events, want %d", len(events), want)
	}
	var prev uint64
	for i, e := range events {
		if e.PrevSeq != prev || e.Seq <= prev {
			t.Fatalf("event %d: seq %d prevSeq %d after %d", i, e.Seq, e.PrevSeq, prev)
		}
		prev = e.Seq
	}
}

// After 50 creates of 362 participants with the victim (1.2 MB of
// participant ids) and 30 adds that grow one of them to 962 (1.3 MB of
// conversation:updated events), the victim's list, history and join all
// answer, and paging reaches every conversation and every event.
func TestRepliesAfterPaddedCreates(t *testing.T) {
	f := start(t)
	mallory, victim := f.dial("acme", "mallory"), f.dial("acme", "victim")
	const convs, padded = 50, 360
	want := map[string]bool{}
	var grown string
	for i := range convs {
		grown = mallory.create(append([]string{"victim"}, padIDs(i, padded)...)...)
		want[grown] = true
	}
	const adds, each = 30, 20
	extra := padIDs(convs, adds*each)
	for i := range adds {
		mallory.do("conversation:add", map[string]any{"conversationId": grown, "userIds": extra[i*each : (i+1)*each]})
	}

	// The list, with the default limit and others.
	{
		for _, limit := range []int{0, 10, 200} {
			all, largest, pages := listAll(victim, limit)
			t.Logf("list limit %3d: %d conversations in %d pages, largest page %d bytes", limit, len(all), pages, largest)
			if len(all) != convs || largest > replyItemsBytes+64 {
				t.Fatalf("limit %d: listed %d conversations, want %d; largest page %d bytes", limit, len(all), convs, largest)
			}
			for _, s := range all {
				n := 2 + padded
				if s.ConversationID == grown {
					n += adds * each
				}
				if !want[s.ConversationID] || s.ParticipantCount != n || len(s.Participants) != 100 {
					t.Fatalf("summary %s: participantCount %d, %d ids; want %d and 100", s.ConversationID, s.ParticipantCount, len(s.Participants), n)
				}
			}
		}
		// On NATS, the reply of the largest page fits with room to spare.
		nc := f.natsAs(natsauth.Edge)
		var resp chatv1.ListConversationsResponse
		err := svc.Call(context.Background(), nc, names.Command(names.Messaging, "acme", names.ActionList),
			&chatv1.ListConversationsRequest{Principal: &chatv1.Principal{Org: "acme", User: "victim"}, Limit: 200}, &resp)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("list limit 200 on NATS: %d conversations, %d bytes (max payload %d)", len(resp.Conversations), proto.Size(&resp), nc.MaxPayload())
	}
	// History back from the newest of the grown conversation.
	{
		events, largest, pages := historyBack(victim, grown)
		t.Logf("history of %d events of up to 962 participants: %d pages, largest %d bytes", len(events), pages, largest)
		checkChain(t, events, adds+1)
		if largest > replyItemsBytes+64 {
			t.Fatalf("a history page of %d bytes", largest)
		}
	}
	// Join with sinceSeq, then history afterSeq.
	{
		r := victim.try("conversation:join", map[string]any{"conversationId": grown, "sinceSeq": 0})
		if r.Type != "ack" {
			t.Fatalf("join: %s", r.Type)
		}
		ack := decode[joinAckJSON](t, r.Data)
		t.Logf("join sinceSeq 0: %d missed, truncated %v, %d bytes", len(ack.Missed), ack.Truncated, len(r.Data))
		if !ack.Truncated || len(ack.Missed) == 0 || len(ack.Conversation.Participants) != 2+padded+adds*each {
			t.Fatalf("join: %d missed, truncated %v, %d participants", len(ack.Missed), ack.Truncated, len(ack.Conversation.Participants))
		}
		missed := make([]durable, 0, len(ack.Missed))
		for _, e := range ack.Missed {
			missed = append(missed, decode[durable](t, e.Data))
		}
		rest, _, pages := historyAfter(victim, grown, missed[len(missed)-1].Seq)
		t.Logf("then history afterSeq: %d events in %d pages", len(rest), pages)
		checkChain(t, append(missed, rest...), adds+1)
	}
}

// After 300 messages of 4,000 '<' (each 24,000 bytes once escaped in
// JSON), history with limit 200 answers in pages that fit the socket's send
// queue, and join with sinceSeq answers truncated; paging reaches every
// event and the connection stays open.
func TestRepliesOfEscapedContent(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create()
	content := strings.Repeat("<", 4000)
	const n = 300
	for range n {
		alice.send(conv, content)
	}

	events, largest, pages := historyBack(alice, conv)
	t.Logf("history limit 200 back from the newest: %d events in %d pages, largest %d bytes", len(events), pages, largest)
	checkChain(t, events, n+1)
	if largest > replyItemsBytes+64 {
		t.Fatalf("a history page of %d bytes", largest)
	}
	events, _, pages = historyAfter(alice, conv, 0)
	t.Logf("history limit 200 afterSeq 0: %d events in %d pages", len(events), pages)
	checkChain(t, events, n+1)

	r := alice.try("conversation:join", map[string]any{"conversationId": conv, "sinceSeq": 0})
	if r.Type != "ack" {
		t.Fatalf("join: %s", r.Type)
	}
	ack := decode[joinAckJSON](t, r.Data)
	t.Logf("join sinceSeq 0: %d missed, truncated %v, %d bytes", len(ack.Missed), ack.Truncated, len(r.Data))
	if !ack.Truncated || len(ack.Missed) == 0 || len(r.Data) > replyItemsBytes+64<<10 {
		t.Fatalf("join: %d missed, truncated %v, %d bytes", len(ack.Missed), ack.Truncated, len(r.Data))
	}
	missed := make([]durable, 0, len(ack.Missed))
	for _, e := range ack.Missed {
		missed = append(missed, decode[durable](t, e.Data))
	}
	rest, _, _ := historyAfter(alice, conv, missed[len(missed)-1].Seq)
	checkChain(t, append(missed, rest...), n+1)
	// Still connected: a command answers.
	alice.do("conversation:list", nil)
}

// storeUpdate appends a conversation:updated of participants to the
// conversation's stream subject, as messaging does, without publishing it
// live.
func storeUpdate(t *testing.T, js jetstream.JetStream, conv string, prev uint64, participants []string) uint64 {
	t.Helper()
	ev := &chatv1.Event{ConversationId: conv, PrevSeq: prev, Body: &chatv1.Event_ConversationUpdated{ConversationUpdated: &chatv1.ConversationUpdated{Participants: participants}}}
	data, _ := proto.Marshal(ev)
	ack, err := js.Publish(context.Background(), names.Store("acme", conv), data, jetstream.WithExpectLastSequencePerSubject(prev))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// The edge fills a gap of 20 events of 1,000 participants (1.3 MB, more
// than one reply) page by page, and delivers all of it in order.
func TestGapFillPagesLargeEvents(t *testing.T) {
	f := start(t)
	nc := f.natsAs(natsauth.Messaging) // stores events as messaging does
	js, _ := jetstream.New(nc)
	alice := f.dial("acme", "alice")
	conv := alice.create()
	alice.event("conversation:updated") // the creation, on her user subject
	prev := alice.join(conv).LastSeq
	participants := append([]string{"alice"}, padIDs(0, 999)...)
	var want []uint64
	for range 20 {
		prev = storeUpdate(t, js, conv, prev, participants)
		want = append(want, prev)
	}
	last := storeEvent(t, js, conv, prev, "after")
	publishLive(t, nc, last) // the 20 before it never come live
	for i, seq := range want {
		e := decode[updatedJSON](t, alice.event("conversation:updated").Data)
		if e.Seq != seq || len(e.Participants) != 1000 {
			t.Fatalf("event %d: seq %d with %d participants, want seq %d", i, e.Seq, len(e.Participants), seq)
		}
	}
	if m := decode[msgEvent](t, alice.event("message:new").Data); m.Seq != last.Seq || m.PrevSeq != prev {
		t.Fatalf("then message seq %d prevSeq %d, want %d after %d", m.Seq, m.PrevSeq, last.Seq, prev)
	}
}
