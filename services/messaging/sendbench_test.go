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
		conv := createConv(b, nc, who("acme", fmt.Sprint("u", i)), "x")
		ids[i] = conv
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
		conv := createConv(b, nc, p, "x")
		rooms[i].conv = conv
		for k := range 4 {
			sent := sendMsg(b, nc, p, conv, "m", fmt.Sprint(k))
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
	conv := createConv(b, nc, who("acme", "u0"), users...)
	sent := sendMsg(b, nc, who("acme", "u0"), conv, "m", "1")
	var next atomic.Int64
	b.SetParallelism(8)
	cpu0 := cpuNanos()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		p := who("acme", users[int(next.Add(1))%len(users)])
		for k := 0; pb.Next(); k++ {
			req := &chatv1.ReactRequest{Principal: p, ConversationId: conv, MessageId: sent.MessageId, Emoji: fmt.Sprint("e", k%8), On: (k/8)%2 == 0}
			if err := svc.Call(ctx, nc, names.Command(names.Messaging, "acme", names.ActionReact), req, &chatv1.ReactResponse{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
