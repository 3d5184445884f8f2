package standalone

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsauth"

	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

// The node leading the event stream stops while clients send, retrying
// on unavailable: the stream elects another leader, nothing acked is lost,
// nothing is stored twice, and no sender is told anything but
// unavailable.
func TestFaultStreamLeaderStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes := cluster(t)
	setUpCluster(t, nodes)
	ctx := context.Background()
	log := testLogger()
	for i := range 2 {
		ms := retry(t, "messaging", func() (*messaging.Service, error) {
			return messaging.New(ctx, connectAs(t, nodes, natsauth.Messaging, i, nil), messaging.Config{Logger: log})
		})
		t.Cleanup(func() { _ = ms.Stop(ctx) })
	}
	ps := retry(t, "presence", func() (*presence.Service, error) {
		return presence.New(ctx, connectAs(t, nodes, natsauth.Presence, 1, nil), presence.Config{Logger: log})
	})
	t.Cleanup(func() { _ = ps.Stop(ctx) })
	rl := retry(t, "ratelimit", func() (*ratelimit.Limiter, error) {
		return ratelimit.New(ctx, connectAs(t, nodes, natsauth.RateLimit, 2, nil), ratelimit.Config{Limits: generous(), Logger: log})
	})
	t.Cleanup(func() { _ = rl.Stop(ctx) })
	f := serveEdge(t, nil, connectAs(t, nodes, natsauth.Edge, 0, nil), edge.Config{Limits: generous(), MaxUpgradesPerIP: 1000})

	owner := f.dial("acme", "owner")
	users := []string{"u0", "u1", "u2", "u3"}
	conv := owner.create(users...)
	var clients []*client
	for _, u := range users {
		clients = append(clients, f.dial("acme", u))
	}
	probe := connectAs(t, nodes, natsauth.Messaging, 0, nil)
	js, err := jetstream.New(probe)
	if err != nil {
		t.Fatal(err)
	}
	results := runSenders(t, clients, conv, 40, func() {
		time.Sleep(300 * time.Millisecond)
		info := streamInfo(t, js, names.StreamEvents)
		for _, ns := range nodes {
			if ns.Name() == info.Cluster.Leader {
				t.Logf("stopping %s, leader of %s", ns.Name(), names.StreamEvents)
				ns.Shutdown()
				return
			}
		}
		t.Errorf("no node leads %s: %+v", names.StreamEvents, info.Cluster)
	})
	storedOnce(t, probe, "acme", conv, results)
	for i, r := range results {
		if len(r.acked) != 40 {
			t.Errorf("sender %d: %d of 40 acked", i, len(r.acked))
		}
		t.Logf("sender %d: %v, slowest reply %v", i, r.codes, r.slowest)
	}
}

// Two of the three nodes stop while clients send, and come back on their
// stores 3 s later: without a quorum every command is unavailable (never
// internal), and once the nodes are back every message is acked and
// stored once.
func TestFaultQuorumLostAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes, restart := restartableCluster(t)
	setUpCluster(t, nodes)
	ctx := context.Background()
	log := testLogger()
	ms := retry(t, "messaging", func() (*messaging.Service, error) {
		return messaging.New(ctx, connectAs(t, nodes, natsauth.Messaging, 0, nil), messaging.Config{Logger: log})
	})
	t.Cleanup(func() { _ = ms.Stop(ctx) })
	rl := retry(t, "ratelimit", func() (*ratelimit.Limiter, error) {
		return ratelimit.New(ctx, connectAs(t, nodes, natsauth.RateLimit, 0, nil), ratelimit.Config{Limits: generous(), Logger: log})
	})
	t.Cleanup(func() { _ = rl.Stop(ctx) })
	f := serveEdge(t, nil, connectAs(t, nodes, natsauth.Edge, 0, nil), edge.Config{Limits: generous(), MaxUpgradesPerIP: 1000})

	owner := f.dial("acme", "owner")
	users := []string{"u0", "u1", "u2"}
	conv := owner.create(users...)
	var clients []*client
	for _, u := range users {
		clients = append(clients, f.dial("acme", u))
	}
	results := runSenders(t, clients, conv, 60, func() {
		time.Sleep(100 * time.Millisecond)
		for _, i := range []int{1, 2} {
			nodes[i].Shutdown()
			nodes[i].WaitForShutdown()
		}
		time.Sleep(3 * time.Second)
		for _, i := range []int{1, 2} {
			restart(i)
		}
	})
	storedOnce(t, connectAs(t, nodes[:1], natsauth.Messaging, 0, nil), "acme", conv, results)
	unavailable := 0
	for i, r := range results {
		if len(r.acked) != 60 {
			t.Errorf("sender %d: %d of 60 acked", i, len(r.acked))
		}
		unavailable += r.codes["unavailable"]
	}
	t.Logf("%d unavailable answers while the quorum was lost", unavailable)
	if unavailable == 0 {
		t.Error("no command was answered unavailable: the quorum loss did not land mid-traffic")
	}
}

// restartableCluster is cluster, with a function that starts node i
// again on its store and its route port.
func restartableCluster(t *testing.T) ([]*server.Server, func(i int)) {
	t.Helper()
	routes := []int{freePort(t), freePort(t), freePort(t)}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := make([]*server.Server, 3)
	start := func(i int) {
		opts := deployNode(t, i, routes)
		opts.StoreDir = dirs[i]
		nodes[i] = runNode(t, opts)
	}
	for i := range 3 {
		start(i)
	}
	return nodes, start
}

// setUpCluster runs the admin's setup, replicas 3, on a cluster that may
// still be electing.
func setUpCluster(t *testing.T, nodes []*server.Server) {
	t.Helper()
	cfg := Config{Messaging: messaging.Config{Replicas: 3}, Presence: presence.Config{Replicas: 3},
		RateLimit: ratelimit.Config{Replicas: 3, Limits: generous()}}
	retry(t, "setup", func() (struct{}, error) {
		return struct{}{}, Setup(context.Background(), connectAs(t, nodes, natsauth.Admin, 0, nil), cfg)
	})
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil {
		t.Fatal(fmt.Sprintf("%s has no cluster info", name))
	}
	return info
}
