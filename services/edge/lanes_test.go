package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/devtoken"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// laneRig is a real edge on a real NATS server with no services: a test
// plays the instances it needs on nc, answering (or holding) requests.
type laneRig struct {
	s   *Server
	nc  *nats.Conn
	url string
}

func newLaneRig(t testing.TB, mod func(*Config)) *laneRig {
	t.Helper()
	ns := natstest.Server(t)
	lim, err := limits.Parse(limits.Defaults(), "default=100000/1s,message:send=100000/1s")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Auth: AuthConfig{Secret: testSecret}, Limits: lim, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(natstest.Conn(t, ns), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &laneRig{s: s, nc: natstest.Conn(t, ns), url: "ws://" + ln.Addr().String() + "/ws"}
}

func (r *laneRig) token() string { return devtoken.Mint(testSecret, "acme", "alice", time.Hour) }

// dial connects a client that reads everything (wsclient) and takes the
// session event.
func (r *laneRig) dial(t *testing.T) *wsclient.Client {
	t.Helper()
	c, err := wsclient.DialToken(context.Background(), r.url, r.token())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	if _, err := c.Next("session", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// serve plays an instance of service for action: each request goes to
// handle on a goroutine of its own, which may hold it.
func (r *laneRig) serve(t *testing.T, service, action string, handle func(*nats.Msg)) {
	t.Helper()
	sub, err := r.nc.Subscribe(names.Command(service, "acme", action), func(m *nats.Msg) { go handle(m) })
	if err != nil {
		t.Fatal(err)
	}
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

func respond(t *testing.T, m *nats.Msg, resp proto.Message) {
	b, err := proto.Marshal(resp)
	if err == nil {
		err = m.Respond(b)
	}
	if err != nil {
		t.Error(err)
	}
}

func send(conv, cmid string) map[string]any {
	return map[string]any{"conversationId": conv, "content": cmid, "clientMsgId": cmid}
}

// Sends to one conversation reach messaging one at a time in the order
// they came, even when the first is held; a send to another conversation
// and a presence query overtake the held one, and their acks come first.
func TestCommandsOfOneConversationInOrder(t *testing.T) {
	rig := newLaneRig(t, nil)
	release := make(chan struct{})
	arrived := make(chan string, 16)
	rig.serve(t, names.Messaging, names.ActionSend, func(m *nats.Msg) {
		var req chatv1.SendRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		arrived <- req.ClientMsgId
		if req.ClientMsgId == "a1" {
			<-release
		}
		respond(t, m, &chatv1.SendResponse{MessageId: req.ClientMsgId, Seq: 1})
	})
	rig.serve(t, names.Presence, names.ActionQuery, func(m *nats.Msg) {
		respond(t, m, &chatv1.PresenceQueryResponse{})
	})
	c := rig.dial(t)
	for _, cmd := range []struct{ id, conv string }{{"a1", "conv-a"}, {"a2", "conv-a"}, {"b1", "conv-b"}} {
		if err := c.Send(cmd.id, "message:send", send(cmd.conv, cmd.id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send("q1", "presence:query", map[string]any{"userIds": []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	// a1 is held: b1 and the query are answered meanwhile, a2 waits.
	for _, id := range []string{"b1", "q1"} {
		if r, err := c.Reply(id, 2*time.Second); err != nil || r.Type != "ack" {
			t.Fatalf("%s while a1 is held: %v %v", id, r, err)
		}
	}
	got := map[string]bool{}
	for len(got) < 2 {
		got[<-arrived] = true
	}
	if !got["a1"] || !got["b1"] {
		t.Fatalf("arrived while a1 is held: %v, want a1 and b1", got)
	}
	select {
	case id := <-arrived:
		t.Fatalf("%s reached messaging while a1 was held", id)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if id := <-arrived; id != "a2" {
		t.Fatalf("after a1: %s", id)
	}
	for _, id := range []string{"a1", "a2"} {
		if r, err := c.Reply(id, 2*time.Second); err != nil || r.Type != "ack" {
			t.Fatalf("%s: %v %v", id, r, err)
		}
	}
}

// A join and a leave of one conversation stay in order: the leave, sent
// right behind a join that messaging holds, takes the connection out of
// the room the join entered.
func TestJoinThenLeaveInOrder(t *testing.T) {
	rig := newLaneRig(t, nil)
	held := make(chan struct{})
	rig.serve(t, names.Messaging, names.ActionJoin, func(m *nats.Msg) {
		<-held
		respond(t, m, &chatv1.JoinResponse{Conversation: &chatv1.Conversation{ConversationId: "conv-a", Participants: []string{"alice"}}})
	})
	c := rig.dial(t)
	if err := c.Send("j", "conversation:join", map[string]any{"conversationId": "conv-a"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("l", "conversation:leave", map[string]any{"conversationId": "conv-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reply("l", 300*time.Millisecond); err == nil {
		t.Fatal("the leave was answered before the join it follows")
	}
	close(held)
	for _, id := range []string{"j", "l"} {
		if r, err := c.Reply(id, 3*time.Second); err != nil || r.Type != "ack" {
			t.Fatalf("%s: %v %v", id, r, err)
		}
	}
	if rig.s.hub.joined(rig.connOf(t, "alice"), "conv-a") {
		t.Fatal("still in the room after join then leave")
	}
}

// connOf is the one connection of user at the rig's edge.
func (r *laneRig) connOf(t *testing.T, user string) *conn {
	t.Helper()
	var found *conn
	r.s.conns.each(func(c *conn) {
		if c.user == user {
			found = c
		}
	})
	if found == nil {
		t.Fatalf("no connection of %s", user)
	}
	return found
}

// A connection that sends 1,000 commands a held service instance does not
// answer, and reads none of its replies, costs the edge at most
// MaxCommandsInFlight goroutines for them: its reader stops reading at the
// bound (back-pressure, not an error). Once the instance answers, every
// command is answered, and the idle connection has no goroutine left.
func TestCommandsInFlightBounded(t *testing.T) {
	const n, bound = 1000, 8
	rig := newLaneRig(t, func(c *Config) { c.MaxCommandsInFlight = bound })
	var mu sync.Mutex
	var held []*nats.Msg
	release := make(chan struct{})
	rig.serve(t, names.Presence, names.ActionQuery, func(m *nats.Msg) {
		mu.Lock()
		held = append(held, m)
		mu.Unlock()
		<-release
		respond(t, m, &chatv1.PresenceQueryResponse{})
	})
	heldNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}
	runtime.GC()
	base := runtime.NumGoroutine()
	nc, _, _, err := ws.Dial(context.Background(), rig.url+"?access_token="+rig.token())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	written := make(chan error, 1)
	go func() { // blocks once the edge stops reading
		for i := range n {
			b := fmt.Appendf(nil, `{"id":"q%d","type":"presence:query","data":{"userIds":["bob"]}}`, i)
			if err := wsutil.WriteClientText(nc, b); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	for deadline := time.Now().Add(5 * time.Second); heldNow() < bound; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d queries reached presence, want %d", heldNow(), bound)
		}
	}
	most := 0
	for range 20 {
		time.Sleep(20 * time.Millisecond)
		most = max(most, runtime.NumGoroutine()-base)
	}
	// The instance's goroutines (one per held request, the test's) are
	// counted too: bound of them, bound commands, the writer, the reader.
	t.Logf("goroutines above the start with %d commands held: %d", bound, most)
	if h := heldNow(); h != bound {
		t.Fatalf("%d queries in flight, want the bound %d", h, bound)
	}
	if most > 2*bound+4 {
		t.Fatalf("%d goroutines for %d commands in flight", most, bound)
	}
	close(release)
	seen := map[string]bool{}
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(seen) < n {
		b, err := wsutil.ReadServerText(nc)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(seen), err)
		}
		var f struct{ ID, Type string }
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if f.ID == "" {
			continue // session, pings
		}
		if f.Type != "ack" {
			t.Fatalf("%s: %s", f.ID, b)
		}
		seen[f.ID] = true
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	// Answered, the connection is idle again: its lanes' goroutines end.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > base+2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("idle again, %d goroutines above the start", runtime.NumGoroutine()-base)
		}
	}
}

// Failures that close a connection when they repeat are counted once each
// while their commands run side by side: forbidden sends to as many
// conversations at once close it with 4003, invalid ones (refused by the
// handlers, on the lanes' goroutines) with 1008, every reply coming
// before the close.
func TestRepeatedFailuresCloseUnderConcurrency(t *testing.T) {
	rig := newLaneRig(t, func(c *Config) { c.AuthFailureLimit = 5; c.InvalidFrameLimit = 10 })
	var gate sync.WaitGroup
	gate.Add(5)
	rig.serve(t, names.Messaging, names.ActionSend, func(m *nats.Msg) {
		gate.Done()
		gate.Wait() // all five in flight at once
		respond(t, m, &chatv1.SendResponse{Error: &chatv1.Error{Code: "forbidden", Message: "not a participant"}})
	})
	for _, tc := range []struct {
		name string
		n    int
		data func(i int) map[string]any
		code int
	}{
		{"forbidden", 5, func(i int) map[string]any { return send(fmt.Sprintf("conv-%d", i), "m") }, int(CloseAuthFailures)},
		{"invalid", 10, func(i int) map[string]any { return map[string]any{"conversationId": fmt.Sprintf("conv-%d", i)} }, int(ClosePolicy)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rig.dial(t)
			for i := range tc.n {
				if err := c.Send(fmt.Sprintf("s%d", i), "message:send", tc.data(i)); err != nil {
					t.Fatal(err)
				}
			}
			code, _, err := c.CloseCode(5 * time.Second)
			if err != nil || code != tc.code {
				t.Fatalf("close %d %v, want %d", code, err, tc.code)
			}
			errors := 0
			for _, f := range c.Pending() {
				if f.ID != "" {
					errors++
				}
			}
			if errors != tc.n {
				t.Fatalf("%d replies before the close, want %d: %v", errors, tc.n, c.Pending())
			}
		})
	}
}

// BenchmarkLaneOf is what finding a command's lane adds to it: one more
// pass over a typical send's data.
func BenchmarkLaneOf(b *testing.B) {
	cmd, err := decodeCommand(floodFrame)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if laneOf(cmd) != "general" {
			b.Fatal("wrong lane")
		}
	}
}
