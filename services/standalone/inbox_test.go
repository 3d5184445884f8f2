package standalone

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The inbox: conversation:list's unread and lastMessage, and
// conversation:activity (docs/protocol.md).

type lastMessageJSON struct {
	MessageID string `json:"messageId"`
	SenderID  string `json:"senderId"`
	Content   string `json:"content"`
	CreatedAt string `json:"createdAt"`
}

type inboxRow struct {
	ConversationID string           `json:"conversationId"`
	LastSeq        uint64           `json:"lastSeq"`
	Read           uint64           `json:"read"`
	Unread         *int             `json:"unread"`
	LastMessage    *lastMessageJSON `json:"lastMessage"`
}

// inbox lists c's conversations (one page of 200) by id.
func (c *client) inbox() map[string]inboxRow {
	c.f.t.Helper()
	p := decode[struct {
		Conversations []inboxRow `json:"conversations"`
	}](c.f.t, c.do("conversation:list", map[string]any{"limit": 200}))
	out := map[string]inboxRow{}
	for _, r := range p.Conversations {
		if r.Unread == nil {
			c.f.t.Fatalf("list row %s without unread", r.ConversationID)
		}
		out[r.ConversationID] = r
	}
	return out
}

func TestListUnreadCounts(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")

	// Bob was away while 150 messages of alice's arrived.
	busy := alice.create("bob")
	var last sendAck
	for range 150 {
		last = alice.send(busy, "news")
	}
	row := bob.inbox()[busy]
	if *row.Unread != 100 || row.LastSeq != last.Seq {
		t.Fatalf("after 150 messages: unread %d lastSeq %d, want 100 and %d", *row.Unread, row.LastSeq, last.Seq)
	}
	if a := alice.inbox()[busy]; *a.Unread != 0 {
		t.Fatalf("the sender's own 150 messages count %d unread", *a.Unread)
	}
	bob.do("message:read", map[string]any{"conversationId": busy, "seq": last.Seq})
	if row := bob.inbox()[busy]; *row.Unread != 0 || row.Read != last.Seq {
		t.Fatalf("after reading: unread %d read %d", *row.Unread, row.Read)
	}

	// 7 from alice and 3 of bob's own, interleaved: 7 for bob, 3 for alice.
	mixed := alice.create("bob")
	for i := range 10 {
		if i%3 == 1 {
			bob.send(mixed, "mine")
		} else {
			alice.send(mixed, "yours")
		}
	}
	if n := *bob.inbox()[mixed].Unread; n != 7 {
		t.Fatalf("bob: unread %d, want 7", n)
	}
	if n := *alice.inbox()[mixed].Unread; n != 3 {
		t.Fatalf("alice: unread %d, want 3", n)
	}
	// Read up to the 5th message (events: the create's, then the messages
	// i = 0..9): of i = 5..9, bob sent i = 7; alice's 4 are unread.
	h := decode[historyPage](t, bob.do("conversation:history", map[string]any{"conversationId": mixed, "limit": 200}))
	mid := decode[durable](t, h.Events[5].Data).Seq
	bob.do("message:read", map[string]any{"conversationId": mixed, "seq": mid})
	if n := *bob.inbox()[mixed].Unread; n != 4 {
		t.Fatalf("bob after reading 5 messages: unread %d, want 4", n)
	}
}

func TestListLastMessage(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")

	empty := alice.create("bob")
	long := alice.create("bob")
	content := strings.Repeat("é", 150) + strings.Repeat("🎉", 100) // 250 characters, 700 bytes
	first := alice.send(long, "first")
	sent := alice.send(long, content)
	// The newest event is a reaction, not a message: the tally finds the
	// message before it.
	bob.do("message:react", map[string]any{"conversationId": long, "messageId": first.MessageID, "emoji": "👍", "on": true})

	deleted := alice.create("bob")
	kept := alice.send(deleted, "kept")
	gone := alice.send(deleted, "gone")
	alice.do("message:delete", map[string]any{"conversationId": deleted, "messageId": gone.MessageID})

	rows := bob.inbox()
	if r := rows[empty]; r.LastMessage != nil || *r.Unread != 0 {
		t.Fatalf("a conversation without messages: %+v, unread %d", r.LastMessage, *r.Unread)
	}
	lm := rows[long].LastMessage
	want := strings.Repeat("é", 150) + strings.Repeat("🎉", 50)
	if lm == nil || lm.MessageID != sent.MessageID || lm.SenderID != "alice" || lm.Content != want || lm.CreatedAt != sent.CreatedAt {
		t.Fatalf("lastMessage %+v, want %s by alice with 200 characters", lm, sent.MessageID)
	}
	if n := utf8.RuneCountInString(lm.Content); n != 200 {
		t.Fatalf("lastMessage content of %d characters", n)
	}
	if n := *rows[long].Unread; n != 2 {
		t.Fatalf("unread %d after 2 messages and a reaction, want 2", n)
	}
	r := rows[deleted]
	if r.LastMessage == nil || r.LastMessage.MessageID != kept.MessageID || r.LastMessage.Content != "kept" {
		t.Fatalf("after deleting the newest: lastMessage %+v, want %s", r.LastMessage, kept.MessageID)
	}
	// A deleted message is not unread (docs/protocol.md).
	if *r.Unread != 1 {
		t.Fatalf("unread %d with one of two messages deleted, want 1", *r.Unread)
	}
	// Deleting the other too leaves none.
	alice.do("message:delete", map[string]any{"conversationId": deleted, "messageId": kept.MessageID})
	if r := bob.inbox()[deleted]; r.LastMessage != nil || *r.Unread != 0 {
		t.Fatalf("every message deleted: lastMessage %+v, unread %d", r.LastMessage, *r.Unread)
	}
}

type activityJSON struct {
	ConversationID string `json:"conversationId"`
	LastSeq        uint64 `json:"lastSeq"`
	SenderID       string `json:"senderId"`
	Preview        string `json:"preview"`
	CreatedAt      string `json:"createdAt"`
}

// following sends messages from sender until c gets their activity: the
// edge follows a user's conversations shortly after the user connects.
// It then lets the throttle's second pass and drops what came.
func following(t *testing.T, sender, c *client, conv string) {
	t.Helper()
	for range 40 {
		sender.send(conv, "warm-up")
		if _, err := c.Next("conversation:activity", 250*time.Millisecond); err == nil {
			time.Sleep(1200 * time.Millisecond)
			for {
				if _, err := c.Next("conversation:activity", 0); err != nil {
					return
				}
			}
		}
	}
	t.Fatalf("%s never got activity of %s", c.name, conv)
}

func TestConversationActivity(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	bobJoined, bobAway := f.dial("acme", "bob"), f.dial("acme", "bob")
	carol := f.dial("acme", "carol")   // not a participant
	otherBob := f.dial("other", "bob") // the same user id in another org
	conv := alice.create("bob")
	bobJoined.join(conv)
	following(t, alice, bobAway, conv)

	ack := alice.send(conv, strings.Repeat("x", 300))
	a := decode[activityJSON](t, bobAway.event("conversation:activity").Data)
	if a.ConversationID != conv || a.LastSeq != ack.Seq || a.SenderID != "alice" || a.Preview != strings.Repeat("x", 200) || a.CreatedAt != ack.CreatedAt {
		t.Fatalf("activity %+v, want seq %d by alice with a preview of 200", a, ack.Seq)
	}
	bobJoined.event("message:new")
	bobJoined.none("conversation:activity", 1500*time.Millisecond)
	carol.none("conversation:activity", 0)
	otherBob.none("conversation:activity", 0)

	t.Run("coalesced", func(t *testing.T) {
		bobAway := bobAway.with(t)
		var acks []sendAck
		start := time.Now()
		for range 5 {
			acks = append(acks, alice.with(t).send(conv, "burst"))
			time.Sleep(40 * time.Millisecond)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Skipf("the burst took %v, too slow to test coalescing", d)
		}
		first := decode[activityJSON](t, bobAway.event("conversation:activity").Data)
		if first.LastSeq != acks[0].Seq {
			t.Fatalf("first activity of the burst: seq %d, want %d", first.LastSeq, acks[0].Seq)
		}
		second := decode[activityJSON](t, bobAway.event("conversation:activity").Data)
		if second.LastSeq != acks[4].Seq {
			t.Fatalf("second activity: seq %d, want the newest %d", second.LastSeq, acks[4].Seq)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Fatalf("the second activity came %v after the burst began, within the second", d)
		}
		bobAway.none("conversation:activity", 1500*time.Millisecond)
	})

	t.Run("membership", func(t *testing.T) {
		alice, dave := alice.with(t), f.with(t).dial("acme", "dave")
		time.Sleep(300 * time.Millisecond) // dave's (empty) conversations are loaded
		alice.send(conv, "before dave")
		dave.none("conversation:activity", 500*time.Millisecond)
		alice.do("conversation:add", map[string]any{"conversationId": conv, "userIds": []string{"dave"}})
		dave.event("conversation:updated")
		ack := alice.send(conv, "with dave")
		if a := decode[activityJSON](t, dave.event("conversation:activity").Data); a.LastSeq != ack.Seq {
			t.Fatalf("dave's activity: seq %d, want %d", a.LastSeq, ack.Seq)
		}
		alice.do("conversation:remove", map[string]any{"conversationId": conv, "userId": "dave"})
		dave.event("conversation:updated")
		time.Sleep(1100 * time.Millisecond) // past the throttle's second
		alice.send(conv, "without dave")
		dave.none("conversation:activity", 1500*time.Millisecond)
	})
}

// A list page of conversations whose last messages are 200 '<' (1,200
// bytes of JSON each) and whose participants are 100 ids of 64 characters
// still fits the reply's JSON budget: the last message is counted.
func TestListPageWithLastMessagesFits(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	const convs = 80
	for i := range convs {
		conv := alice.create(append([]string{"bob"}, padIDs(i, 98)...)...)
		alice.send(conv, strings.Repeat("<", 300))
	}
	all, largest, pages := listAll(bob, 200)
	t.Logf("list of %d conversations with last messages: %d pages, largest %d bytes", len(all), pages, largest)
	if len(all) != convs || largest > replyItemsBytes+64 || pages < 2 {
		t.Fatalf("listed %d of %d in %d pages, largest %d bytes", len(all), convs, pages, largest)
	}
	for _, r := range bob.inbox() {
		if r.LastMessage == nil || r.LastMessage.Content != strings.Repeat("<", 200) || *r.Unread != 1 {
			t.Fatalf("row %s: last message %+v, unread %d", r.ConversationID, r.LastMessage, *r.Unread)
		}
	}
}

// A Socket.IO session that connects after the conversation exists follows
// it from the list asked at connect, and gets its activity as an event
// named conversation:activity.
func TestConversationActivityOverSocketIO(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	bob := f.connectSIO("acme", "bob")
	bob.do("conversation:list", map[string]any{})
	time.Sleep(300 * time.Millisecond) // the follow of the list asked at connect
	ack := alice.send(conv, "over socket.io")
	a := decode[activityJSON](t, bob.event("conversation:activity"))
	if a.ConversationID != conv || a.LastSeq != ack.Seq || a.Preview != "over socket.io" || a.SenderID != "alice" {
		t.Fatalf("activity %+v, want seq %d", a, ack.Seq)
	}
}
