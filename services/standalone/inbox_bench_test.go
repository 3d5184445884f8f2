package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
)

// BenchmarkSendTo1000Sockets measures message:send, one at a time, to a
// conversation of 1,000 participants who each have a socket on the edge,
// 50 of them joined (message:new) and the others not (since the inbox,
// conversation:activity, coalesced to one per second). cpu-ns/op is the
// whole process's CPU per send: edge, messaging, NATS and the 1,000
// sockets' readers, which only count and drop frames.
func BenchmarkSendTo1000Sockets(b *testing.B) {
	cfg := Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger()}
	cfg.Edge.Auth = edge.AuthConfig{Secret: secret}
	cfg.Edge.Limits = generous()
	cfg.Edge.MaxConnectionsPerUser = 1000
	cfg.Edge.MaxUpgradesPerIP = 100000
	sys, err := Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Shutdown(ctx)
	})
	url := "ws://" + sys.Addr() + "/ws"
	sender, err := wsclient.DialToken(context.Background(), url, token("acme", "u0"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sender.Kill)
	users := make([]string, 999)
	for i := range users {
		users[i] = fmt.Sprint("u", i+1)
	}
	r, err := sender.Request("c", "conversation:create", map[string]any{"participants": users}, wait)
	if err != nil || r.Type != "ack" {
		b.Fatalf("create: %v %v", r, err)
	}
	var created struct {
		ConversationID string `json:"conversationId"`
	}
	_ = json.Unmarshal(r.Data, &created)
	var frames atomic.Int64
	for i, u := range users {
		join := ""
		if i < 50 {
			join = created.ConversationID
		}
		drainSocket(b, url, u, join, &frames)
	}
	time.Sleep(2 * time.Second) // joins answered, conversations followed
	cpu0, frames0 := processCPU(), frames.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := sender.Request(fmt.Sprint("s", i), "message:send", map[string]any{"conversationId": created.ConversationID, "content": "hello there", "clientMsgId": fmt.Sprint(i)}, wait)
		if err != nil || r.Type != "ack" {
			b.Fatalf("send: %v %v", r, err)
		}
	}
	b.StopTimer()
	time.Sleep(1100 * time.Millisecond) // the last coalesced activities
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(frames.Load()-frames0)/float64(b.N), "frames/op")
}

// drainSocket dials user's socket, joins conv when not empty, and counts
// and drops every frame it gets.
func drainSocket(b *testing.B, url, user, conv string, frames *atomic.Int64) {
	b.Helper()
	c, _, _, err := ws.Dial(context.Background(), url+"?access_token="+token("acme", user))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	if conv != "" {
		msg, _ := json.Marshal(map[string]any{"id": "j", "type": "conversation:join", "data": map[string]any{"conversationId": conv}})
		if err := wsutil.WriteClientText(c, msg); err != nil {
			b.Fatal(err)
		}
	}
	go func(c net.Conn) {
		for {
			if _, err := wsutil.ReadServerText(c); err != nil {
				return
			}
			frames.Add(1)
		}
	}(c)
}

// processCPU is this process's CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
