package presence

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func startService(t *testing.T, nc *nats.Conn, cfg Config) *Service {
	t.Helper()
	s, err := New(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// edge plays an edge: it reports connection states.
type edge struct {
	t  *testing.T
	nc *nats.Conn
	id string
}

// report sends states and fails the test if the service does not take
// them; only the test's goroutine may call it.
func (e edge) report(org string, states ...*chatv1.ConnectionState) {
	e.t.Helper()
	if err := e.update(org, states...); err != nil {
		e.t.Fatal(err)
	}
}

// update sends states; it touches no *testing.T, so that a goroutine
// other than the test's can call it.
func (e edge) update(org string, states ...*chatv1.ConnectionState) error {
	for _, st := range states {
		if st.LastActiveMs == 0 {
			st.LastActiveMs = time.Now().UnixMilli()
		}
	}
	return svc.Call(context.Background(), e.nc, names.Command(names.Presence, org, names.ActionUpdate),
		&chatv1.PresenceUpdate{Principal: &chatv1.Principal{Org: org, User: e.id}, Edge: e.id, Connections: states}, &chatv1.PresenceUpdateResponse{})
}

func conn(user, id, status string) *chatv1.ConnectionState {
	return &chatv1.ConnectionState{User: user, Connection: id, Status: status}
}

func gone(user, id string) *chatv1.ConnectionState {
	return &chatv1.ConnectionState{User: user, Connection: id, Gone: true}
}

// events collects presence events of org.
func events(t *testing.T, nc *nats.Conn, org string) chan *chatv1.Presence {
	t.Helper()
	ch := make(chan *chatv1.Presence, 100)
	sub, err := nc.Subscribe("chat.evt.presence."+org+".*", func(m *nats.Msg) {
		var ev chatv1.Event
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetPresence() != nil {
			ch <- ev.GetPresence()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = nc.Flush()
	return ch
}

func expectEvent(t *testing.T, ch chan *chatv1.Presence, user, status string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case p := <-ch:
		if p.UserId != user || p.Status != status {
			t.Fatalf("presence event %v, want %s %s", p, user, status)
		}
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("no presence event %s %s within %v", user, status, within)
	}
	return 0
}

func expectNone(t *testing.T, ch chan *chatv1.Presence, within time.Duration) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected presence event %v", p)
	case <-time.After(within):
	}
}

func query(t *testing.T, nc *nats.Conn, org string, users ...string) map[string]*chatv1.Presence {
	t.Helper()
	var resp chatv1.PresenceQueryResponse
	err := svc.Call(context.Background(), nc, names.Command(names.Presence, org, names.ActionQuery),
		&chatv1.PresenceQuery{Principal: &chatv1.Principal{Org: org, User: "q"}, UserIds: users}, &resp)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*chatv1.Presence{}
	for _, p := range resp.Presence {
		out[p.UserId] = p
	}
	return out
}

func TestStatusAcrossDevicesWithGrace(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	startService(t, nc, Config{Grace: 700 * time.Millisecond, Interval: 100 * time.Millisecond})
	ev := events(t, nc, "acme")
	e := edge{t, nc, "edge1"}

	if p := query(t, nc, "acme", "alice")["alice"]; p.Status != Offline || p.LastSeenAtMs != 0 {
		t.Fatalf("a user never seen: %v", p)
	}
	e.report("acme", conn("alice", "c1", Online), conn("alice", "c2", Online))
	expectEvent(t, ev, "alice", Online, 2*time.Second)
	e.report("acme", conn("alice", "c1", Away))
	expectNone(t, ev, 300*time.Millisecond) // c2 is still online
	e.report("acme", conn("alice", "c2", Away))
	expectEvent(t, ev, "alice", Away, 2*time.Second)
	e.report("acme", conn("alice", "c2", Online))
	expectEvent(t, ev, "alice", Online, 2*time.Second)

	// One device goes: still online. Both go: offline after the grace.
	e.report("acme", gone("alice", "c1"))
	expectNone(t, ev, 300*time.Millisecond)
	e.report("acme", gone("alice", "c2"))
	if p := query(t, nc, "acme", "alice")["alice"]; p.Status != Online {
		t.Fatalf("within the grace the user shows %s", p.Status)
	}
	if waited := expectEvent(t, ev, "alice", Offline, 3*time.Second); waited < 400*time.Millisecond {
		t.Fatalf("offline after %v, before the grace", waited)
	}
	if p := query(t, nc, "acme", "alice")["alice"]; p.Status != Offline || p.LastSeenAtMs == 0 {
		t.Fatalf("after the grace: %v", p)
	}
}

func TestQuickReconnectDoesNotFlap(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	startService(t, nc, Config{Grace: 2 * time.Second, Interval: 100 * time.Millisecond})
	ev := events(t, nc, "acme")
	e := edge{t, nc, "edge1"}
	e.report("acme", conn("bob", "c1", Online))
	expectEvent(t, ev, "bob", Online, 2*time.Second)
	e.report("acme", gone("bob", "c1"))
	time.Sleep(300 * time.Millisecond)
	e.report("acme", conn("bob", "c2", Online))
	expectNone(t, ev, 2500*time.Millisecond)
}

func TestCrashedEdgeExpires(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	startService(t, nc, Config{TTL: 2 * time.Second, Grace: 500 * time.Millisecond, Interval: 100 * time.Millisecond})
	ev := events(t, nc, "acme")
	e := edge{t, nc, "edge1"}
	e.report("acme", conn("carol", "c1", Online), conn("dave", "d1", Online))
	expectEvent(t, ev, "carol", Online, 2*time.Second)
	expectEvent(t, ev, "dave", Online, 2*time.Second)
	// dave's edge keeps renewing; carol's says nothing more. The renewer
	// hands its first failure to the test's goroutine when stopped.
	stop, renewed := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				renewed <- nil
				return
			case <-time.After(500 * time.Millisecond):
				if err := e.update("acme", conn("dave", "d1", Online)); err != nil {
					renewed <- fmt.Errorf("renew dave: %w", err)
					return
				}
			}
		}
	}()
	waited := expectEvent(t, ev, "carol", Offline, 5*time.Second)
	close(stop)
	if err := <-renewed; err != nil {
		t.Fatal(err)
	}
	if waited < 1500*time.Millisecond {
		t.Fatalf("carol offline after %v, before her TTL", waited)
	}
	if p := query(t, nc, "acme", "dave")["dave"]; p.Status != Online {
		t.Fatalf("renewed dave shows %s", p.Status)
	}
	// A heartbeat after expiry (the edge was only cut off) brings her back.
	e.report("acme", conn("carol", "c1", Online))
	expectEvent(t, ev, "carol", Online, 2*time.Second)
}

func TestTwoInstancesAgree(t *testing.T) {
	ns := natstest.Server(t)
	nc1, nc2 := natstest.Conn(t, ns), natstest.Conn(t, ns)
	s1 := startService(t, nc1, Config{Grace: 300 * time.Millisecond})
	s2 := startService(t, nc2, Config{Grace: 300 * time.Millisecond})
	e := edge{t, nc1, "edge1"}
	// Reports are spread over both instances by the queue group.
	for i, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		st := Online
		if i%2 == 0 {
			st = Away
		}
		e.report("acme", conn(u, "c-"+u, st))
	}
	e.report("acme", gone("u6", "c-u6"))
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6", "nobody"}
	deadline := time.Now().Add(3 * time.Second)
	for {
		a, b := s1.view.query("acme", users), s2.view.query("acme", users)
		same := len(a) == len(b)
		for i := range a {
			same = same && a[i].Status == b[i].Status && a[i].LastSeenAtMs == b[i].LastSeenAtMs
		}
		if same && a[0].Status == Away && a[1].Status == Online && a[5].Status == Offline && a[6].Status == Offline {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances disagree:\n%v\n%v", a, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOtherOrgsAreSeparate(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	startService(t, nc, Config{})
	evil := events(t, nc, "evil")
	edge{t, nc, "edge1"}.report("acme", conn("alice", "c1", Online))
	if p := query(t, nc, "evil", "alice")["alice"]; p.Status != Offline {
		t.Fatalf("another org sees acme's alice as %s", p.Status)
	}
	expectNone(t, evil, 300*time.Millisecond)
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
