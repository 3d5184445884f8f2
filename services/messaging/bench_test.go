package messaging

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/natsx/natstest"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// BenchmarkMarkRead measures read marks through NATS: each moves one of
// 100 participants' markers forward (a compare-and-set on chat_receipts
// and a receipt event).
func BenchmarkMarkRead(b *testing.B) {
	ns := natstest.Server(b)
	nc := natstest.Conn(b, ns)
	s, err := New(context.Background(), nc, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	ctx := context.Background()
	var created chatv1.CreateConversationResponse
	if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionCreate),
		&chatv1.CreateConversationRequest{Principal: who("acme", "u0"), Participants: users}, &created); err != nil {
		b.Fatal(err)
	}
	conv := created.ConversationId
	var last chatv1.SendResponse
	for i := range 50 {
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionSend),
			&chatv1.SendRequest{Principal: who("acme", "u0"), ConversationId: conv, Content: "m", ClientMsgId: fmt.Sprint(i)}, &last); err != nil {
			b.Fatal(err)
		}
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
