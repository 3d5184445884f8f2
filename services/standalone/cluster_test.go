package standalone

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cluster starts three JetStream nodes on loopback with the accounts and
// permissions of deploy/nats/accounts.conf.
func cluster(t *testing.T) []*server.Server {
	t.Helper()
	accounts, err := os.ReadFile("../../deploy/nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]int, 3)
	var urls []string
	for i := range routes {
		routes[i] = freePort(t)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", routes[i]))
	}
	var nodes []*server.Server
	for i := range 3 {
		cfg := fmt.Sprintf("server_name: n%d\ncluster { name: switchboard, listen: \"127.0.0.1:%d\", routes: [%s] }\n%s",
			i+1, routes[i], strings.Join(urls, ", "), accounts)
		ns, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), ConfigString: cfg})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, ns)
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	return nodes
}

// connectAs connects user (with its local password) to the nodes, the
// i-th node first.
func connectAs(t *testing.T, nodes []*server.Server, user string, first int) *nats.Conn {
	t.Helper()
	var urls []string
	for j := range nodes {
		addr := nodes[(first+j)%len(nodes)].Addr().String()
		urls = append(urls, fmt.Sprintf("nats://%s:%s-local-only@%s", user, user, addr))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// retry runs start until it succeeds (the cluster elects its JetStream
// leader first).
func retry[T any](t *testing.T, what string, start func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := start()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The services run separately, each with its own NATS user and the
// permissions of deploy/, on a 3-node cluster with replicas 3; the chat
// goes on when a node stops.
func TestClusterWithServicePermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes := cluster(t)
	ctx := context.Background()
	log := testLogger()
	ms := retry(t, "messaging", func() (*messaging.Service, error) {
		return messaging.New(ctx, connectAs(t, nodes, "messaging", 0), messaging.Config{Replicas: 3, Logger: log})
	})
	t.Cleanup(func() { _ = ms.Stop(ctx) })
	ps := retry(t, "presence", func() (*presence.Service, error) {
		return presence.New(ctx, connectAs(t, nodes, "presence", 1), presence.Config{Replicas: 3, Logger: log})
	})
	t.Cleanup(func() { _ = ps.Stop(ctx) })
	rl := retry(t, "ratelimit", func() (*ratelimit.Limiter, error) {
		return ratelimit.New(ctx, connectAs(t, nodes, "ratelimit", 2), ratelimit.Config{Replicas: 3, Limits: generous(), Logger: log})
	})
	t.Cleanup(func() { _ = rl.Stop(ctx) })
	f := serveEdge(t, nil, connectAs(t, nodes, "edge", 1), edge.Config{Limits: generous()})

	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	alice.join(conv)
	bob.join(conv)
	first := alice.send(conv, "over the cluster")
	if m := decode[msgEvent](t, bob.event("message:new").Data); m.Seq != first.Seq {
		t.Fatalf("bob got %+v", m)
	}

	// The edge's user can reach neither JetStream nor the event store.
	errs := make(chan error, 4)
	nc, err := nats.Connect(fmt.Sprintf("nats://edge:edge-local-only@%s", nodes[0].Addr()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish("chat.store.acme."+conv, []byte("forged"))
	_ = nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("forged store publish: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the edge's user published to chat.store without a permissions violation")
	}

	// A node stops: replicas 3 keep serving, clients reconnect.
	nodes[2].Shutdown()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := alice.try("message:send", map[string]any{"conversationId": conv, "content": "after a node left", "clientMsgId": fmt.Sprint(time.Now().UnixNano())})
		if r.Type == "ack" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no send went through after a node stopped: %s", r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if m := decode[msgEvent](t, bob.event("message:new").Data); m.Content != "after a node left" {
		t.Fatalf("bob got %+v", m)
	}
}
