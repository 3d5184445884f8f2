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

// BenchmarkReact measures message:react through NATS like BenchmarkSend:
// many users at once, each in a conversation of its own, toggling one of
// 8 emoji on one of 4 messages (every command a change: a compare-and-set
// on chat_reactions, the message_reacted append and the clearing of its
// pending mark).
func BenchmarkReact(b *testing.B) {
	nc := benchService(b)
	ctx := context.Background()
	const convs = 64
	type room struct {
		conv string
		msgs []string
	}
	rooms := make([]room, convs)
	for i := range rooms {
		p := who("acme", fmt.Sprint("u", i))
		var created chatv1.CreateConversationResponse
		if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionCreate),
			&chatv1.CreateConversationRequest{Principal: p, Participants: []string{"x"}}, &created); err != nil {
			b.Fatal(err)
		}
		rooms[i].conv = created.ConversationId
		for k := range 4 {
			var sent chatv1.SendResponse
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionSend),
				&chatv1.SendRequest{Principal: p, ConversationId: created.ConversationId, Content: "m", ClientMsgId: fmt.Sprint(k)}, &sent); err != nil {
				b.Fatal(err)
			}
			rooms[i].msgs = append(rooms[i].msgs, sent.MessageId)
		}
	}
	var next atomic.Int64
	b.SetParallelism(16)
	cpu0 := cpuNanos()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) % convs
		// One goroutine per user (16 of 64 rooms): its toggles alternate.
		p, r := who("acme", fmt.Sprint("u", i)), rooms[i]
		for k := 0; pb.Next(); k++ {
			var resp chatv1.ReactResponse
			req := &chatv1.ReactRequest{Principal: p, ConversationId: r.conv, MessageId: r.msgs[(k/8)%4], Emoji: fmt.Sprint("e", k%8), On: (k/32)%2 == 0}
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionReact), req, &resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReactOneMessage is BenchmarkReact with every user on one
// message of one conversation: the reacts queue on the message's lock.
func BenchmarkReactOneMessage(b *testing.B) {
	nc := benchService(b)
	ctx := context.Background()
	users := make([]string, 16)
	for i := range users {
		users[i] = fmt.Sprint("u", i)
	}
	var created chatv1.CreateConversationResponse
	if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionCreate),
		&chatv1.CreateConversationRequest{Principal: who("acme", "u0"), Participants: users}, &created); err != nil {
		b.Fatal(err)
	}
	var sent chatv1.SendResponse
	if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionSend),
		&chatv1.SendRequest{Principal: who("acme", "u0"), ConversationId: created.ConversationId, Content: "m", ClientMsgId: "1"}, &sent); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(8)
	cpu0 := cpuNanos()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		p := who("acme", users[int(next.Add(1))%len(users)])
		for k := 0; pb.Next(); k++ {
			req := &chatv1.ReactRequest{Principal: p, ConversationId: created.ConversationId, MessageId: sent.MessageId, Emoji: fmt.Sprint("e", k%8), On: (k/8)%2 == 0}
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionReact), req, &chatv1.ReactResponse{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
