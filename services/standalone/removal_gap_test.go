package standalone

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
)

// natsLink is the in-process link of a NATS client to the embedded server,
// which a test cuts and restores: what is published while it is cut never
// reaches the client, as over a broken network, and the client reconnects
// by itself once it is restored.
type natsLink struct {
	ns *server.Server

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

// InProcessConn is the client's way to the server (nats.InProcessServer).
func (l *natsLink) InProcessConn() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return nil, errors.New("link cut")
	}
	c, err := l.ns.InProcessConn()
	if err == nil {
		l.conns = append(l.conns, c)
	}
	return c, err
}

// Cut breaks the link and refuses new connections until Restore.
func (l *natsLink) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

func (l *natsLink) Restore() {
	l.mu.Lock()
	l.cut = false
	l.mu.Unlock()
}

// linkedEdge starts an edge whose NATS connection (as the edge's user)
// goes through a natsLink.
func linkedEdge(t *testing.T, f *fixture) (*fixture, *natsLink, *nats.Conn) {
	t.Helper()
	link := &natsLink{ns: f.sys.NATS}
	nc, err := natsx.Connect(natsx.ConnConfig{
		URL: f.sys.NATS.ClientURL(), InProcess: link, User: natsauth.Edge, Password: f.sys.passwords[natsauth.Edge],
		InboxPrefix: names.InboxPrefix(natsauth.Edge), Name: "edge-behind-link", Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return serveEdge(t, f, nc, edge.Config{}), link, nc
}

// connected waits until nc is connected (or not, with want false); once
// connected, a round trip makes sure the server has its subscriptions
// again.
func connected(t *testing.T, nc *nats.Conn, want bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for nc.IsConnected() != want {
		if time.Now().After(deadline) {
			t.Fatalf("NATS connection: connected %v, want %v", nc.IsConnected(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if want {
		if err := nc.FlushTimeout(wait); err != nil {
			t.Fatal(err)
		}
	}
}

// removedWhileCut removes bob from conv while the link of the edge bob is
// on is cut: that edge never gets the removal live.
func removedWhileCut(t *testing.T, alice *client, conv string, link *natsLink, nc *nats.Conn) {
	t.Helper()
	link.Cut()
	connected(t, nc, false)
	alice.do("conversation:remove", map[string]any{"conversationId": conv, "userId": "bob"})
	link.Restore()
	connected(t, nc, true)
}

// A removed participant whose removal the edge lost is the only member
// there: the edge cannot fetch the gap as bob (refused), learns so that bob
// is no participant, and gives him nothing more.
func TestRemovalLostAloneGetsNothing(t *testing.T) {
	f := start(t)
	other, link, nc := linkedEdge(t, f)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	bob := other.dial("acme", "bob")
	bob.join(conv)

	removedWhileCut(t, alice, conv, link, nc)
	alice.send(conv, "after bob left") // at bob's edge: ahead of the removal
	bob.none("message:new", time.Second)
	alice.send(conv, "and again")
	bob.none("message:new", 500*time.Millisecond)
}

// With a participant on the same edge, the gap is fetched as her: the
// removal is delivered in order (bob gets it, as a removed member does)
// and what follows only to her.
func TestRemovalLostFetchedAsParticipant(t *testing.T) {
	f := start(t)
	other, link, nc := linkedEdge(t, f)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob", "carol")
	bob := other.dial("acme", "bob")
	carol := other.dial("acme", "carol")
	bob.join(conv)
	carol.join(conv)

	removedWhileCut(t, alice, conv, link, nc)
	sent := alice.send(conv, "after bob left")
	for _, c := range []*client{bob, carol} {
		u := decode[struct {
			Participants []string `json:"participants"`
		}](t, c.event("conversation:updated").Data)
		if len(u.Participants) != 2 {
			t.Fatalf("%s: participants %v after bob's removal", c.name, u.Participants)
		}
	}
	if m := decode[msgEvent](t, carol.event("message:new").Data); m.Seq != sent.Seq {
		t.Fatalf("carol got seq %d, want %d", m.Seq, sent.Seq)
	}
	bob.none("message:new", 500*time.Millisecond)
}

// When messaging does not answer, nobody is sure: the held event goes to
// no one, until messaging answers again and says who is a participant.
func TestRemovalLostMessagingDownWithholds(t *testing.T) {
	f := start(t)
	other, link, nc := linkedEdge(t, f)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob", "carol")
	bob := other.dial("acme", "bob")
	carol := other.dial("acme", "carol")
	bob.join(conv)
	carol.join(conv)

	removedWhileCut(t, alice, conv, link, nc)
	ctx := context.Background()
	if err := f.sys.Messaging.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A message stored while messaging is down for this edge (another
	// instance's, say), published live: at the edge it is ahead of the
	// removal, and nobody can be asked.
	admin := f.natsAs(natsauth.Messaging) // stores events as messaging does
	js, _ := jetstream.New(admin)
	stream, err := js.Stream(ctx, names.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, names.Store("acme", conv))
	if err != nil {
		t.Fatal(err)
	}
	publishLive(t, admin, storeEvent(t, js, conv, m.Sequence, "while-down"))
	bob.none("message:new", time.Second)
	carol.none("message:new", 10*time.Millisecond)

	second, err := messaging.New(ctx, f.natsAs(natsauth.Messaging), messaging.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background()) })
	// The room asks again, until messaging answers: carol is confirmed and
	// gets what comes next, bob is not a participant.
	deadline := time.Now().Add(2 * wait)
	for {
		alice.send(conv, "messaging is back")
		e, err := carol.Next("message:new", 200*time.Millisecond)
		if err == nil {
			if got := decode[msgEvent](t, e.Data); got.Content != "messaging is back" {
				t.Fatalf("carol got %+v, want one sent since messaging is back", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol got nothing within %v of messaging's return", 2*wait)
		}
	}
	bob.none("message:new", 500*time.Millisecond)
}
