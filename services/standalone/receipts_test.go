package standalone

import (
	"fmt"
	"testing"
	"time"
)

type receiptEvent struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
	Delivered      uint64 `json:"delivered"`
	Read           uint64 `json:"read"`
}

func TestReadOnOneDeviceReachesTheOther(t *testing.T) {
	f := start(t)
	alice, bob1, bob2 := f.dial("acme", "alice"), f.dial("acme", "bob"), f.dial("acme", "bob")
	conv := alice.create("bob")
	for _, c := range []*client{alice, bob1, bob2} {
		c.join(conv)
	}
	m := alice.send(conv, "hi")
	bob1.do("message:read", map[string]any{"conversationId": conv, "seq": m.Seq})
	for _, c := range []*client{bob2, alice, bob1} {
		r := decode[receiptEvent](t, c.event("receipt").Data)
		if r.UserID != "bob" || r.Read != m.Seq || r.Delivered != m.Seq || r.ConversationID != conv {
			t.Fatalf("%s receipt %+v", c.name, r)
		}
	}
	// The join reply carries every participant's markers.
	ack := f.dial("acme", "alice").join(conv)
	if len(ack.Receipts) != 1 {
		t.Fatalf("join receipts %s", ack.Receipts)
	}
	r := decode[receiptEvent](t, ack.Receipts[0])
	if r.UserID != "bob" || r.Read != m.Seq {
		t.Fatalf("join receipt %+v", r)
	}
	bob1.fails("message:read", map[string]any{"conversationId": conv, "seq": m.Seq + 1000}, "validation-error", "validation_failed")
	f.dial("evil", "bob").fails("message:read", map[string]any{"conversationId": conv, "seq": m.Seq}, "error", "not_found")
	f.dial("acme", "carol").fails("message:delivered", map[string]any{"conversationId": conv, "seq": m.Seq}, "error", "forbidden")
}

func TestReceiptsCoalesce(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.Limits = generous() })
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	alice.join(conv)
	var last uint64
	for i := range 100 {
		last = alice.send(conv, fmt.Sprint(i)).Seq
	}
	start := time.Now()
	// 100 read marks within about a second, one per message.
	h := decode[struct {
		Events []struct {
			Data struct {
				Seq uint64 `json:"seq"`
			} `json:"data"`
		} `json:"events"`
	}](t, bob.do("conversation:history", map[string]any{"conversationId": conv, "limit": 100}))
	for _, e := range h.Events {
		bob.do("message:read", map[string]any{"conversationId": conv, "seq": e.Data.Seq})
		time.Sleep(8 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var got []receiptEvent
	for {
		e, err := alice.Next("receipt", 1500*time.Millisecond)
		if err != nil {
			break
		}
		got = append(got, decode[receiptEvent](t, e.Data))
	}
	if len(got) == 0 || got[len(got)-1].Read != last {
		t.Fatalf("receipts %+v, want the last one at read %d", got, last)
	}
	// At most one per half second, plus the first.
	if maxN := int(elapsed/(500*time.Millisecond)) + 2; len(got) > maxN {
		t.Fatalf("%d receipt events for 100 marks in %v (at most %d)", len(got), elapsed, maxN)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Read < got[i-1].Read {
			t.Fatalf("receipts went backwards: %+v", got)
		}
	}
}

func TestOfflineParticipantSeesUnreadAndMissed(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	bob.join(conv)
	first := alice.send(conv, "seen")
	bob.do("message:read", map[string]any{"conversationId": conv, "seq": first.Seq})
	bob.Kill()
	missed := alice.send(conv, "while away")

	bob = f.dial("acme", "bob")
	list := decode[struct {
		Conversations []struct {
			ConversationID string `json:"conversationId"`
			LastSeq        uint64 `json:"lastSeq"`
			Read           uint64 `json:"read"`
		} `json:"conversations"`
	}](t, bob.do("conversation:list", map[string]any{}))
	if len(list.Conversations) != 1 || list.Conversations[0].LastSeq != missed.Seq || list.Conversations[0].Read != first.Seq {
		t.Fatalf("bob's list %+v: want lastSeq %d > read %d", list.Conversations, missed.Seq, first.Seq)
	}
	ack := decode[joinAckJSON](t, bob.do("conversation:join", map[string]any{"conversationId": conv, "sinceSeq": first.Seq}))
	if len(ack.Missed) != 1 || decode[msgEvent](t, ack.Missed[0].Data).MessageID != missed.MessageID {
		t.Fatalf("missed %v", ack.Missed)
	}
}

type typingEvent struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
	IsTyping       bool   `json:"isTyping"`
}

func TestTypingReachesOthersAndEnds(t *testing.T) {
	f := start(t, func(c *Config) { c.Messaging.TypingTTL = 2 * time.Second; c.Edge.Limits = generous() })
	alice1, alice2, bob := f.dial("acme", "alice"), f.dial("acme", "alice"), f.dial("acme", "bob")
	mallory := f.dial("evil", "bob")
	conv := alice1.create("bob")
	for _, c := range []*client{alice1, alice2, bob} {
		c.join(conv)
	}
	for range 5 { // a burst of renewals
		alice1.do("message:typing", map[string]any{"conversationId": conv, "isTyping": true})
	}
	for _, c := range []*client{alice2, bob} {
		if e := decode[typingEvent](t, c.event("typing").Data); e.UserID != "alice" || !e.IsTyping {
			t.Fatalf("%s typing %+v", c.name, e)
		}
		c.none("typing", 300*time.Millisecond) // one event for the burst
	}
	alice1.none("typing", 10*time.Millisecond) // not echoed to the typist
	if ack := bob.join(conv); len(ack.Typing) != 1 || ack.Typing[0] != "alice" {
		t.Fatalf("join typing %v", ack.Typing)
	}
	// Ends by itself after the TTL.
	for _, c := range []*client{alice2, bob} {
		if e := decode[typingEvent](t, c.event("typing").Data); e.IsTyping {
			t.Fatalf("%s expiry %+v", c.name, e)
		}
	}
	f.dial("acme", "carol").fails("message:typing", map[string]any{"conversationId": conv, "isTyping": true}, "error", "forbidden")
	mallory.fails("message:typing", map[string]any{"conversationId": conv, "isTyping": true}, "error", "not_found")
	mallory.none("typing", 200*time.Millisecond)
	bob.fails("message:typing", map[string]any{"conversationId": conv}, "validation-error", "validation_failed")
}
