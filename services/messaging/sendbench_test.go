package messaging

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// BenchmarkSend measures message:send through NATS from many senders at
// once, each in a conversation of its own (the send ceiling's shape).
func BenchmarkSend(b *testing.B) {
	nc := benchService(b)
	ctx := context.Background()
	const convs = 64
	ids := make([]string, convs)
	for i := range ids {
		var created chatv1.CreateConversationResponse
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionCreate),
			&chatv1.CreateConversationRequest{Principal: who("acme", fmt.Sprint("u", i)), Participants: []string{"x"}}, &created); err != nil {
			b.Fatal(err)
		}
		ids[i] = created.ConversationId
	}
	var next atomic.Int64
	b.SetParallelism(16)
	cpu0 := cpuNanos()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) % convs
		k := 0
		for pb.Next() {
			k++
			var resp chatv1.SendResponse
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionSend),
				&chatv1.SendRequest{Principal: who("acme", fmt.Sprint("u", i)), ConversationId: ids[i], Content: "hello", ClientMsgId: fmt.Sprint(next.Add(1))}, &resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// cpuNanos is this process's CPU time (the embedded nats-server's too).
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
