package standalone

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
)

// Per-connection ordering (docs/protocol.md): commands of one
// conversation run in the order they came, others beside them.

// deadInstance stops the system's instance of a service and puts in its
// place one that takes the requests of action and answers none, as an
// instance that died holding them: onRequest sees each.
func deadInstance(t *testing.T, f *fixture, stop interface{ Stop(context.Context) error }, user, service, action string, onRequest func(*nats.Msg)) {
	t.Helper()
	if err := stop.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	nc := f.natsAs(user)
	if _, err := nc.Subscribe(names.Command(service, "acme", action), onRequest); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A presence:query that a dead presence instance holds does not hold the
// send behind it on the same connection: the send's ack comes at once, the
// query's unavailable when its attempts are over.
func TestHeldPresenceQueryDoesNotDelaySend(t *testing.T) {
	f := start(t, func(c *Config) {
		c.Edge.AttemptTimeout = time.Second
		c.Edge.RequestTimeout = 2 * time.Second
	})
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	deadInstance(t, f, f.sys.Presence, natsauth.Presence, names.Presence, names.ActionQuery, func(*nats.Msg) {})
	start := time.Now()
	if err := alice.Send("q", "presence:query", map[string]any{"userIds": []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Send("s", "message:send", map[string]any{"conversationId": conv, "content": "hi", "clientMsgId": "s"}); err != nil {
		t.Fatal(err)
	}
	s, err := alice.Reply("s", wait)
	sendAfter := time.Since(start)
	if err != nil || s.Type != "ack" {
		t.Fatalf("send: %v %v", s, err)
	}
	q, err := alice.Reply("q", wait)
	queryAfter := time.Since(start)
	if err != nil || q.Type != "error" {
		t.Fatalf("query: %v %v", q, err)
	}
	if code := decode[struct{ Code string }](t, q.Data).Code; code != "unavailable" {
		t.Fatalf("query answered %s, want unavailable", code)
	}
	t.Logf("send acked after %v, the held query answered after %v", sendAfter, queryAfter)
	if sendAfter > 500*time.Millisecond || queryAfter < 2*time.Second {
		t.Fatalf("send acked after %v, query after %v: want the send at once, the query after the request timeout", sendAfter, queryAfter)
	}
}

// Two sends to one conversation sent back to back on one connection are
// stored in the order they were sent, every time.
func TestSendsToOneConversationStoredInOrder(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	other := alice.create("bob")
	for i := range 200 {
		ids := []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i), fmt.Sprintf("o%d", i)}
		convs := []string{conv, conv, other}
		for k, id := range ids {
			if err := alice.Send(id, "message:send", map[string]any{"conversationId": convs[k], "content": id, "clientMsgId": id}); err != nil {
				t.Fatal(err)
			}
		}
		var seqs [2]uint64
		for k, id := range ids {
			r, err := alice.Reply(id, wait)
			if err != nil || r.Type != "ack" {
				t.Fatalf("%s: %v %v", id, r, err)
			}
			if k < 2 {
				seqs[k] = decode[sendAck](t, r.Data).Seq
			}
		}
		if seqs[0] >= seqs[1] {
			t.Fatalf("iteration %d: the first send stored at seq %d, the second at %d", i, seqs[0], seqs[1])
		}
	}
}

// The first of two sends to one conversation goes to a messaging instance
// that dies holding it; the second is sent once a live instance serves,
// while the first still waits for its retry. The second is stored after
// the first all the same: it waited for it.
func TestSlowSendKeepsTheNextBehindIt(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.AttemptTimeout = 500 * time.Millisecond })
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	var first sync.Once
	up := make(chan struct{})
	deadInstance(t, f, f.sys.Messaging, natsauth.Messaging, names.Messaging, names.ActionSend, func(*nats.Msg) {
		first.Do(func() {
			// A live instance serves from now on; this one keeps what it
			// took (and the copies of later requests) unanswered.
			m, err := messaging.New(context.Background(), f.natsAs(natsauth.Messaging), messaging.Config{Logger: testLogger()})
			if err != nil {
				t.Error(err)
			} else {
				t.Cleanup(func() { _ = m.Stop(context.Background()) })
			}
			close(up)
		})
	})
	if err := alice.Send("a", "message:send", map[string]any{"conversationId": conv, "content": "a", "clientMsgId": "a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up:
	case <-time.After(wait):
		t.Fatal("the first send did not reach the dying instance")
	}
	if err := alice.Send("b", "message:send", map[string]any{"conversationId": conv, "content": "b", "clientMsgId": "b"}); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, id := range []string{"a", "b"} {
		r, err := alice.Reply(id, wait)
		if err != nil || r.Type != "ack" {
			t.Fatalf("%s: %v %v", id, r, err)
		}
		seqs = append(seqs, decode[sendAck](t, r.Data).Seq)
	}
	if seqs[0] >= seqs[1] {
		t.Fatalf("the held send stored at seq %d, the one sent after it at %d", seqs[0], seqs[1])
	}
}

// A connection that sends 1,000 presence queries a dead instance holds,
// and reads none of its replies, costs the edge a bounded number of
// goroutines: the reader stops reading at MaxCommandsInFlight.
func TestFloodOfHeldCommandsBoundsGoroutines(t *testing.T) {
	const n = 1000
	f := start(t, func(c *Config) {
		c.Edge.AttemptTimeout = 5 * time.Second
		c.Edge.RequestTimeout = 5 * time.Second
	})
	var held atomic.Int64
	deadInstance(t, f, f.sys.Presence, natsauth.Presence, names.Presence, names.ActionQuery, func(*nats.Msg) { held.Add(1) })
	runtime.GC()
	base := runtime.NumGoroutine()
	nc, _, _, err := ws.Dial(context.Background(), f.url+"?access_token="+token("acme", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go func() { // blocks once the edge stops reading
		for i := range n {
			b := fmt.Appendf(nil, `{"id":"q%d","type":"presence:query","data":{"userIds":["bob"]}}`, i)
			if wsutil.WriteClientText(nc, b) != nil {
				return
			}
		}
	}()
	bound := int64(edge.DefaultMaxCommandsInFlight)
	for deadline := time.Now().Add(wait); held.Load() < bound; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d queries reached presence, want %d", held.Load(), bound)
		}
	}
	most := 0
	for range 25 {
		time.Sleep(20 * time.Millisecond)
		most = max(most, runtime.NumGoroutine()-base)
	}
	t.Logf("%d commands sent, %d in flight: %d goroutines above the start", n, held.Load(), most)
	if h := held.Load(); h != bound {
		t.Fatalf("%d queries in flight, want %d", h, bound)
	}
	if most > int(bound)+20 {
		t.Fatalf("%d goroutines more for %d commands in flight", most, bound)
	}
}

// A Socket.IO session runs the same lanes: the ack of a send comes before
// the ack of a presence query sent before it that a dead instance holds,
// each with its own ack id.
func TestSocketIOAcksOutOfOrderAcrossLanes(t *testing.T) {
	f := start(t, func(c *Config) {
		c.Edge.AttemptTimeout = time.Second
		c.Edge.RequestTimeout = 2 * time.Second
	})
	s := f.connectSIO("acme", "alice")
	conv := decode[createAck](t, s.do("conversation:create", map[string]any{"participants": []string{"bob"}})).ConversationID
	deadInstance(t, f, f.sys.Presence, natsauth.Presence, names.Presence, names.ActionQuery, func(*nats.Msg) {})
	s.text(`42100["presence:query",{"userIds":["bob"]}]`)
	s.text(`42101["message:send",{"conversationId":"` + conv + `","content":"hi","clientMsgId":"s"}]`)
	var acks []string
	for len(acks) < 2 {
		if p := s.packet("acks"); strings.HasPrefix(p, "43") {
			acks = append(acks, p)
		}
	}
	if !strings.HasPrefix(acks[0], `43101[{"messageId":`) || !strings.HasPrefix(acks[1], `43100[{"error":{"type":"error","code":"unavailable"`) {
		t.Fatalf("acks %q: want the send's (101) first, then the query's unavailable (100)", acks)
	}
}
