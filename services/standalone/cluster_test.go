package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/proto/names"
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

// deployNode loads deploy/nats/n<i>.conf as nats-server would, then
// moves it onto free ports and a temp store: clientPort -1 (random), the
// cluster listener and routes onto routePorts (deploy's 6222, 6223, 6224 in
// order; the routes keep their credentials).
func deployNode(t *testing.T, i int, routePorts []int) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(fmt.Sprintf("%s/deploy/nats/n%d.conf", repoRoot, i+1))
	if err != nil {
		t.Fatal(err)
	}
	opts.Port, opts.HTTPPort, opts.StoreDir, opts.NoSigs = -1, -1, t.TempDir(), true
	opts.Cluster.Port = routePorts[i]
	for _, r := range opts.Routes {
		p, err := strconv.Atoi(r.Port())
		if err != nil || p < 6222 || p > 6224 {
			t.Fatalf("n%d.conf: route %s is not one of deploy's", i+1, r.Redacted())
		}
		r.Host = fmt.Sprintf("%s:%d", r.Hostname(), routePorts[p-6222])
	}
	return opts
}

// runNode starts a server from opts, shut down by t.Cleanup.
func runNode(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SWITCHBOARD_TEST_LOGS") != "" {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats node not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// cluster starts deploy/'s three JetStream nodes (deploy/nats/n*.conf with
// the users and permissions of accounts.conf, routes authorized) on free
// loopback ports.
func cluster(t *testing.T) []*server.Server {
	t.Helper()
	routes := []int{freePort(t), freePort(t), freePort(t)}
	var nodes []*server.Server
	for i := range 3 {
		nodes = append(nodes, runNode(t, deployNode(t, i, routes)))
	}
	return nodes
}

// password is a deploy/ user's password (a local cluster's: see
// accounts.conf).
func password(user string) string { return user + "-local-only" }

// violations collects the asynchronous errors (permissions violations) of
// connections.
type violations chan error

// connectAs connects user (with its deploy/ password and inbox prefix) to
// the nodes, the first-th node first; its asynchronous errors go to v
// when v is not nil.
func connectAs(t *testing.T, nodes []*server.Server, user string, first int, v violations) *nats.Conn {
	t.Helper()
	var urls []string
	for j := range nodes {
		addr := nodes[(first+j)%len(nodes)].Addr().String()
		urls = append(urls, fmt.Sprintf("nats://%s:%s@%s", user, password(user), addr))
	}
	opts := []nats.Option{nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond),
		nats.CustomInboxPrefix(names.InboxPrefix(user)), nats.Name(user)}
	if v != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case v <- fmt.Errorf("%s: %w", user, err):
			default:
			}
		}))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// none fails if any connection reported an asynchronous error.
func (v violations) none(t *testing.T) {
	t.Helper()
	for {
		select {
		case err := <-v:
			t.Errorf("%v", err)
		default:
			return
		}
	}
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
// permissions of deploy/, on deploy/'s 3-node cluster with replicas 3,
// after the admin set JetStream up; nobody hits a permissions violation,
// and the chat goes on when a node stops.
func TestClusterWithServicePermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes := cluster(t)
	ctx := context.Background()
	log := testLogger()
	v := make(violations, 100)
	cfg := Config{Messaging: messaging.Config{Replicas: 3}, Presence: presence.Config{Replicas: 3},
		RateLimit: ratelimit.Config{Replicas: 3, Limits: generous()}}
	retry(t, "setup", func() (struct{}, error) {
		return struct{}{}, Setup(ctx, connectAs(t, nodes, natsauth.Admin, 0, v), cfg)
	})
	ms := retry(t, "messaging", func() (*messaging.Service, error) {
		return messaging.New(ctx, connectAs(t, nodes, natsauth.Messaging, 0, v), messaging.Config{Logger: log})
	})
	t.Cleanup(func() { _ = ms.Stop(ctx) })
	ps := retry(t, "presence", func() (*presence.Service, error) {
		return presence.New(ctx, connectAs(t, nodes, natsauth.Presence, 1, v), presence.Config{Logger: log})
	})
	t.Cleanup(func() { _ = ps.Stop(ctx) })
	rl := retry(t, "ratelimit", func() (*ratelimit.Limiter, error) {
		return ratelimit.New(ctx, connectAs(t, nodes, natsauth.RateLimit, 2, v), ratelimit.Config{Limits: generous(), Logger: log})
	})
	t.Cleanup(func() { _ = rl.Stop(ctx) })
	f := serveEdge(t, nil, connectAs(t, nodes, natsauth.Edge, 1, v), edge.Config{Limits: generous()})

	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	alice.join(conv)
	bob.join(conv)
	first := alice.send(conv, "over the cluster")
	if m := decode[msgEvent](t, bob.event("message:new").Data); m.Seq != first.Seq {
		t.Fatalf("bob got %+v", m)
	}
	alice.do("message:typing", map[string]any{"conversationId": conv, "isTyping": true})
	bob.event("typing")
	bob.do("message:read", map[string]any{"conversationId": conv, "seq": first.Seq})
	alice.event("receipt")
	if got := alice.queryStatus("bob").Status; got != "online" {
		t.Fatalf("bob is %q", got)
	}
	history := decode[struct {
		Events []json.RawMessage `json:"events"`
	}](t, alice.do("conversation:history", map[string]any{"conversationId": conv}))
	if len(history.Events) == 0 {
		t.Fatal("no history")
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
	// Stopping (watchers delete their consumers) needs no more rights.
	for _, stop := range []func(context.Context) error{ms.Stop, ps.Stop, rl.Stop} {
		if err := stop(ctx); err != nil {
			t.Error(err)
		}
	}
	v.none(t)
}
