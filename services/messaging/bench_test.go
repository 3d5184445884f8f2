package messaging

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// BenchmarkMarkRead measures read marks through NATS: each moves one of
// 100 participants' markers forward (a compare-and-set on chat_receipts
// and a receipt event).
func BenchmarkMarkRead(b *testing.B) {
	nc := benchService(b)
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	ctx := context.Background()
	conv := createConv(b, nc, who("acme", "u0"), users...)
	var last *chatv1.SendResponse
	for i := range 50 {
		last = sendMsg(b, nc, who("acme", "u0"), conv, "m", fmt.Sprint(i))
	}
	first := last.Seq - 49
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			user := users[i%100]
			seq := first + uint64(i/100)%50 // forward for each user, then again (no-ops)
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionRead),
				&chatv1.MarkRequest{Principal: who("acme", user), ConversationId: conv, Seq: seq}, &chatv1.MarkResponse{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "marks/s")
}

// BenchmarkHistoryNewest200 measures the newest page of 200 events, read by
// walking the prevSeq chain back one direct get per event.
func BenchmarkHistoryNewest200(b *testing.B) {
	nc := benchService(b)
	ctx := context.Background()
	conv := createConv(b, nc, who("acme", "u0"))
	for i := range 300 {
		sendMsg(b, nc, who("acme", "u0"), conv, "m", fmt.Sprint(i))
	}
	b.ResetTimer()
	for b.Loop() {
		var h chatv1.HistoryResponse
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionHistory),
			&chatv1.HistoryRequest{Principal: who("acme", "u0"), ConversationId: conv, Limit: 200}, &h); err != nil || len(h.Events) != 200 {
			b.Fatalf("%d events (%v)", len(h.Events), err)
		}
	}
}

// benchService starts a nats-server and a messaging service on it and
// returns a connection to send it commands.
func benchService(b *testing.B) *nats.Conn {
	b.Helper()
	nc, _ := benchServiceOf(b)
	return nc
}

// benchServiceOf is benchService with the service itself.
func benchServiceOf(b *testing.B) (*nats.Conn, *Service) {
	b.Helper()
	nc := natstest.Conn(b, natstest.Server(b))
	s, err := New(context.Background(), nc, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	return nc, s
}
