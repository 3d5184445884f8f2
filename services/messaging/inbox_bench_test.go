package messaging

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// BenchmarkSendTo1000 measures sends, one at a time, to a conversation of
// 1,000 participants: messaging's and the NATS server's CPU per send
// (cpu-ns/op), with its live event and, since the inbox, its activity.
func BenchmarkSendTo1000(b *testing.B) {
	nc := benchService(b)
	ctx := context.Background()
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprint("u", i)
	}
	conv := createConv(b, nc, who("acme", "u0"), users...)
	cpu0 := cpuNanos()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var resp chatv1.SendResponse
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionSend),
			&chatv1.SendRequest{Principal: who("acme", "u0"), ConversationId: conv, Content: "hello there", ClientMsgId: fmt.Sprint(i)}, &resp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkList50 measures a conversation:list page of 50 for a user with
// 50 conversations of 20 messages each from another user: unread-first
// (none read yet, the counts not cached: 50 scans), unread-again (the same
// list repeated while nothing changed: the counts cached, no scans) and
// read (every conversation read to its last seq: no scans).
func BenchmarkList50(b *testing.B) {
	nc, s := benchServiceOf(b)
	ctx := context.Background()
	var convs []string
	var lasts []uint64
	for c := range 50 {
		conv := createConv(b, nc, who("acme", "reader"), "writer")
		var sent *chatv1.SendResponse
		for i := range 20 {
			sent = sendMsg(b, nc, who("acme", "writer"), conv, "a message of some length", fmt.Sprint(c, "-", i))
		}
		convs, lasts = append(convs, conv), append(lasts, sent.Seq)
	}
	list := func(b *testing.B, fresh bool) {
		cpu0 := cpuNanos()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if fresh {
				s.unreads.reset()
			}
			var l chatv1.ListConversationsResponse
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionList),
				&chatv1.ListConversationsRequest{Principal: who("acme", "reader"), Limit: 50}, &l); err != nil || len(l.Conversations) != 50 {
				b.Fatalf("%d conversations (%v)", len(l.Conversations), err)
			}
		}
		b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.Run("unread-first", func(b *testing.B) { list(b, true) })
	b.Run("unread-again", func(b *testing.B) { list(b, false) })
	for i, conv := range convs {
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionRead),
			&chatv1.MarkRequest{Principal: who("acme", "reader"), ConversationId: conv, Seq: lasts[i]}, &chatv1.MarkResponse{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("read", func(b *testing.B) { list(b, false) })
}

// BenchmarkList200Worst measures the costliest list page: 200
// conversations, each with 250 unread messages of others (the scans stop
// at their byte budget and the tallies count the rest).
func BenchmarkList200Worst(b *testing.B) {
	nc, s := benchServiceOf(b)
	ctx := context.Background()
	for c := range 200 {
		conv := createConv(b, nc, who("acme", "reader"), "writer")
		for i := range 250 {
			sendMsg(b, nc, who("acme", "writer"), conv, "m", fmt.Sprint(c, "-", i))
		}
	}
	cpu0 := cpuNanos()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.unreads.reset() // every list scans
		var l chatv1.ListConversationsResponse
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionList),
			&chatv1.ListConversationsRequest{Principal: who("acme", "reader"), Limit: 200}, &l); err != nil || len(l.Conversations) != 200 || l.Conversations[0].Unread != 100 {
			b.Fatalf("%d conversations (%v)", len(l.Conversations), err)
		}
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}
