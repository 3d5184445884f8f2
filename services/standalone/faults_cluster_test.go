package standalone

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	ctx := context.Background()
	log := testLogger()
	for i := range 2 {
		ms := retry(t, "messaging", func() (*messaging.Service, error) {
			return messaging.New(ctx, connectAs(t, nodes, "messaging", i), messaging.Config{Replicas: 3, Logger: log})
		})
		t.Cleanup(func() { _ = ms.Stop(ctx) })
	}
	ps := retry(t, "presence", func() (*presence.Service, error) {
		return presence.New(ctx, connectAs(t, nodes, "presence", 1), presence.Config{Replicas: 3, Logger: log})
	})
	t.Cleanup(func() { _ = ps.Stop(ctx) })
	rl := retry(t, "ratelimit", func() (*ratelimit.Limiter, error) {
		return ratelimit.New(ctx, connectAs(t, nodes, "ratelimit", 2), ratelimit.Config{Replicas: 3, Limits: generous(), Logger: log})
	})
	t.Cleanup(func() { _ = rl.Stop(ctx) })
	f := serveEdge(t, nil, connectAs(t, nodes, "edge", 0), edge.Config{Limits: generous(), MaxUpgradesPerIP: 1000})

	owner := f.dial("acme", "owner")
	users := []string{"u0", "u1", "u2", "u3"}
	conv := owner.create(users...)
	var clients []*client
	for _, u := range users {
		clients = append(clients, f.dial("acme", u))
	}
	probe := connectAs(t, nodes, "messaging", 0)
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
