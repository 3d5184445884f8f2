package standalone

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
)

func TestTwoUsersChatOnEveryConnection(t *testing.T) {
	f := start(t)
	alice, alice2, bob := f.dial("acme", "alice"), f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	// bob learns of the new conversation on his user subject.
	up := decode[struct {
		ConversationID string   `json:"conversationId"`
		Participants   []string `json:"participants"`
	}](t, bob.event("conversation:updated").Data)
	if up.ConversationID != conv || len(up.Participants) != 2 {
		t.Fatalf("bob's conversation:updated: %+v", up)
	}
	for _, c := range []*client{alice, alice2, bob} {
		c.join(conv)
	}
	var sent []sendAck
	for i := range 5 {
		sent = append(sent, alice.send(conv, fmt.Sprintf("a%d", i)))
		sent = append(sent, bob.send(conv, fmt.Sprintf("b%d", i)))
	}
	for _, c := range []*client{alice, alice2, bob} {
		prev := sent[0].Seq
		for i, want := range sent {
			e := decode[msgEvent](t, c.event("message:new").Data)
			if e.Seq != want.Seq || e.MessageID != want.MessageID {
				t.Fatalf("%s event %d: seq %d id %s, want seq %d id %s", c.name, i, e.Seq, e.MessageID, want.Seq, want.MessageID)
			}
			if i > 0 && e.PrevSeq != prev {
				t.Fatalf("%s event %d: prevSeq %d, want %d", c.name, i, e.PrevSeq, prev)
			}
			prev = e.Seq
		}
	}

	// Edits and deletes reach everyone; a non-sender's are forbidden.
	m := sent[0]
	bob.fails("message:edit", map[string]any{"conversationId": conv, "messageId": m.MessageID, "content": "x"}, "error", "forbidden")
	bob.fails("message:delete", map[string]any{"conversationId": conv, "messageId": m.MessageID}, "error", "forbidden")
	alice.do("message:edit", map[string]any{"conversationId": conv, "messageId": m.MessageID, "content": "edited"})
	alice.do("message:delete", map[string]any{"conversationId": conv, "messageId": m.MessageID})
	for _, c := range []*client{alice, alice2, bob} {
		ed := decode[msgEvent](t, c.event("message:edited").Data)
		if ed.MessageID != m.MessageID || ed.Content != "edited" || ed.SenderID != "alice" {
			t.Fatalf("%s message:edited %+v", c.name, ed)
		}
		del := decode[msgEvent](t, c.event("message:deleted").Data)
		if del.MessageID != m.MessageID || del.PrevSeq != ed.Seq {
			t.Fatalf("%s message:deleted %+v after edit seq %d", c.name, del, ed.Seq)
		}
	}
}

func TestResendIsDuplicate(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	alice.join(conv)
	data := map[string]any{"conversationId": conv, "content": "once", "clientMsgId": "9b1f0c"}
	first := decode[sendAck](t, alice.do("message:send", data))
	again := decode[sendAck](t, alice.do("message:send", data))
	if first.Duplicate || !again.Duplicate || again.Seq != first.Seq || again.MessageID != first.MessageID || again.CreatedAt != first.CreatedAt {
		t.Fatalf("first %+v, resend %+v", first, again)
	}
	h := decode[struct {
		Events []wsclient.Frame `json:"events"`
	}](t, alice.do("conversation:history", map[string]any{"conversationId": conv}))
	n := 0
	for _, e := range h.Events {
		if e.Type == "message:new" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("history holds %d messages after a resend, want 1", n)
	}
	// The live event came once.
	alice.event("message:new")
	alice.none("message:new", 300*time.Millisecond)
}
