package standalone

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// storeEvent appends a message to the conversation's stream subject the
// way messaging does, without publishing it live, and returns the event
// with its seq.
func storeEvent(t *testing.T, js jetstream.JetStream, conv string, prev uint64, id string) *chatv1.Event {
	t.Helper()
	ev := &chatv1.Event{ConversationId: conv, PrevSeq: prev, Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{
		MessageId: id, SenderId: "alice", Content: id, ClientMsgId: id, CreatedAtMs: time.Now().UnixMilli(),
	}}}
	data, _ := proto.Marshal(ev)
	ack, err := js.Publish(context.Background(), names.Store("acme", conv), data, jetstream.WithExpectLastSequencePerSubject(prev))
	if err != nil {
		t.Fatal(err)
	}
	ev.Seq = ack.Sequence
	return ev
}

func publishLive(t *testing.T, nc *nats.Conn, ev *chatv1.Event) {
	t.Helper()
	data, _ := proto.Marshal(ev)
	if err := nc.Publish(names.ConvEvents("acme", ev.ConversationId), data); err != nil {
		t.Fatal(err)
	}
}

func TestEdgeDeliversInSeqOrder(t *testing.T) {
	f := start(t)
	nc := f.natsAs(natsauth.Messaging)
	js, _ := jetstream.New(nc)
	alice := f.dial("acme", "alice")
	conv := alice.create()
	last := alice.join(conv).LastSeq

	expect := func(t *testing.T, c *client, evs ...*chatv1.Event) {
		t.Helper()
		for _, want := range evs {
			got := decode[msgEvent](t, c.event("message:new").Data)
			if got.Seq != want.Seq || got.PrevSeq != want.PrevSeq {
				t.Fatalf("got seq %d prev %d, want seq %d prev %d", got.Seq, got.PrevSeq, want.Seq, want.PrevSeq)
			}
		}
	}

	t.Run("reordered", func(t *testing.T) {
		alice := alice.with(t)
		a := storeEvent(t, js, conv, last, "r1")
		b := storeEvent(t, js, conv, a.Seq, "r2")
		publishLive(t, nc, b)
		publishLive(t, nc, a)
		expect(t, alice, a, b)
		last = b.Seq
	})
	t.Run("lost live event is fetched from the stream", func(t *testing.T) {
		alice := alice.with(t)
		a := storeEvent(t, js, conv, last, "l1")
		b := storeEvent(t, js, conv, a.Seq, "l2")
		c := storeEvent(t, js, conv, b.Seq, "l3")
		publishLive(t, nc, c) // a and b never come live
		expect(t, alice, a, b, c)
		last = c.Seq
	})
	t.Run("duplicates are dropped", func(t *testing.T) {
		alice := alice.with(t)
		a := storeEvent(t, js, conv, last, "d1")
		publishLive(t, nc, a)
		publishLive(t, nc, a)
		expect(t, alice, a)
		alice.none("message:new", 300*time.Millisecond)
		last = a.Seq
	})
	t.Run("a gap that cannot be filled is passed on", func(t *testing.T) {
		alice := alice.with(t)
		// An event whose predecessor is not in the stream (expired, say):
		// delivered after the wait, the client sees the gap in prevSeq.
		ghost := &chatv1.Event{ConversationId: conv, Seq: last + 1000, PrevSeq: last + 999, Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{MessageId: "ghost", SenderId: "x", Content: "x"}}}
		publishLive(t, nc, ghost)
		expect(t, alice, ghost)
	})
}
