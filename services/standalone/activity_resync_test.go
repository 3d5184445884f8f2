package standalone

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/edge"
)

// natsGate hands out in-process connections to the embedded server until
// it is cut: cut closes the live one and refuses new ones, so the client
// stays disconnected (and misses what is published meanwhile, as in a
// NATS node's failover) until restore lets its reconnect through.
type natsGate struct {
	srv  nats.InProcessConnProvider
	mu   sync.Mutex
	shut bool
	conn net.Conn
}

func (g *natsGate) InProcessConn() (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		return nil, errors.New("gate cut")
	}
	c, err := g.srv.InProcessConn()
	g.conn = c
	return c, err
}

func (g *natsGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
	if g.conn != nil {
		_ = g.conn.Close()
	}
}

func (g *natsGate) restore() {
	g.mu.Lock()
	g.shut = false
	g.mu.Unlock()
}

// gatedEdge serves a second edge whose NATS connection goes through a gate.
func gatedEdge(t *testing.T, f *fixture, reg prometheus.Registerer) (*fixture, *natsGate, *nats.Conn) {
	t.Helper()
	g := &natsGate{srv: f.sys.NATS}
	nc, err := natsx.Connect(natsx.ConnConfig{Name: natsauth.Edge, InboxPrefix: names.InboxPrefix(natsauth.Edge),
		InProcess: g, User: natsauth.Edge, Password: f.sys.passwords[natsauth.Edge], Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return serveEdge(t, f, nc, edge.Config{Limits: generous(), Registerer: reg}), g, nc
}

// until polls cond for up to wait.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", wait, what)
		}
	}
}

// A user removed from a conversation while the edge's NATS connection was
// down (the removal event is lost) gets no more activity of it once the
// edge has reconnected and resynced, and still gets the activity of a
// conversation they are in.
func TestConversationActivityResyncAfterReconnect(t *testing.T) {
	f := start(t)
	reg := prometheus.NewRegistry()
	f2, gate, nc := gatedEdge(t, f, reg)
	alice := f.dial("acme", "alice")
	left, stays := alice.create("dave"), alice.create("dave")
	dave := f2.dial("acme", "dave")
	following(t, alice, dave, left)
	following(t, alice, dave, stays)

	gate.cut()
	until(t, "the edge's NATS to go", func() bool { return !nc.IsConnected() })
	// The removal's event is published before messaging answers: it is
	// gone by the ack, with the edge disconnected.
	alice.do("conversation:remove", map[string]any{"conversationId": left, "userId": "dave"})
	gate.restore()
	until(t, "the resync after the reconnect", func() bool {
		return counter(t, reg, "switchboard_edge_activity_resyncs_total", "reconnect") >= 1
	})

	time.Sleep(1100 * time.Millisecond) // past the conversations' throttle seconds
	alice.send(left, "after dave left")
	ack := alice.send(stays, "dave is still here")
	a := decode[activityJSON](t, dave.event("conversation:activity").Data)
	if a.ConversationID != stays || a.LastSeq != ack.Seq {
		t.Fatalf("dave's activity %+v, want seq %d of the conversation he is in (not of the one he left)", a, ack.Seq)
	}
	dave.none("conversation:activity", 1500*time.Millisecond)
}

// A slow consumer on a user's or an activity subject schedules a resync;
// on a conversation's events (which rooms refill from the stream) it does
// not. The handler called is the one the edge chained on its connection.
func TestConversationActivityResyncOnSlowConsumer(t *testing.T) {
	f := start(t)
	reg := prometheus.NewRegistry()
	nc := f.natsAs(natsauth.Edge)
	f2 := serveEdge(t, f, nc, edge.Config{Limits: generous(), Registerer: reg})
	f2.dial("acme", "dave") // a follower to resync
	slow := func(subject string) {
		nc.ErrorHandler()(nc, &nats.Subscription{Subject: subject}, nats.ErrSlowConsumer)
	}
	slow(names.ConvEvents("acme", "c1"))
	slow(names.UserEvents("acme", "dave"))
	until(t, "the resync after a slow consumer", func() bool {
		return counter(t, reg, "switchboard_edge_activity_resyncs_total", "slow_consumer") >= 1
	})
	time.Sleep(200 * time.Millisecond)
	if n := counter(t, reg, "switchboard_edge_activity_resyncs_total", ""); n != 1 {
		t.Fatalf("%v resyncs, want 1 (none for a conversation's subject)", n)
	}
}
