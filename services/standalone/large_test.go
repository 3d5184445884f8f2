package standalone

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// largeConversation creates a conversation of n participants: alice and
// u1..u(n-1).
func largeConversation(alice *client, n int) string {
	others := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		others = append(others, fmt.Sprintf("u%d", i))
	}
	return alice.create(others...)
}

// markAll marks seq read for every participant, over NATS as acme's
// backend does (faster than n sockets).
func markAll(t *testing.T, f *fixture, conv string, n int, seq uint64) {
	t.Helper()
	nc := f.backend()
	for i := range n {
		user := "alice"
		if i > 0 {
			user = fmt.Sprintf("u%d", i)
		}
		err := svc.Call(context.Background(), nc, names.SystemCommand(names.Messaging, "acme", names.ActionRead),
			&chatv1.MarkRequest{Principal: &chatv1.Principal{Org: "acme", User: user}, ConversationId: conv, Seq: seq}, &chatv1.MarkResponse{})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A conversation of 1,000 participants: joining it and marking read in it
// work, and the join reply carries everyone's markers and presence. The
// reply's size and time are logged for 10, 100 and 1,000 participants.
func TestLargeConversations(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	for _, n := range []int{10, 100, 1000} {
		conv := largeConversation(alice, n)
		last := alice.send(conv, "hello all")
		markAll(t, f, conv, n, last.Seq)
		// A fresh connection, so the room is joined cold at this edge.
		c := f.dial("acme", "alice")
		var size int
		var took time.Duration
		for range 3 { // the fastest of three
			t0 := time.Now()
			r := c.try("conversation:join", map[string]any{"conversationId": conv})
			d := time.Since(t0)
			if r.Type != "ack" {
				t.Fatalf("join of %d: %s", n, r)
			}
			if took == 0 || d < took {
				took = d
			}
			size = len(r.Data) + len(`{"id":"c-00","type":"ack","data":}`)
			ack := decode[joinAckJSON](t, r.Data)
			if len(ack.Conversation.Participants) != n || len(ack.Receipts) != n || len(ack.Presence) != n {
				t.Fatalf("join of %d: %d participants, %d receipts, %d presence", n, len(ack.Conversation.Participants), len(ack.Receipts), len(ack.Presence))
			}
		}
		t.Logf("join of a conversation of %4d participants: reply %6d bytes, %v", n, size, took)
	}
}
