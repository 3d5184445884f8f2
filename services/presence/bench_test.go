package presence

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// BenchmarkHeartbeats measures how many connection renewals one presence
// instance writes per second: edges send them in batches of 500 (one batch
// per request here, so that the benchmark waits for the writes). From it:
// connections one instance keeps = renewals/s x the heartbeat interval.
func BenchmarkHeartbeats(b *testing.B) {
	ns := natstest.Server(b)
	nc := natstest.Conn(b, ns)
	s, err := New(context.Background(), nc, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	const conns, batch = 20000, 500
	states := make([]*chatv1.ConnectionState, conns)
	for i := range states {
		states[i] = &chatv1.ConnectionState{User: fmt.Sprintf("u%d", i%5000), Connection: fmt.Sprintf("c%d", i), Status: Online, LastActiveMs: time.Now().UnixMilli()}
	}
	send := func(part []*chatv1.ConnectionState) {
		err := svc.Call(context.Background(), nc, names.Command(names.Presence, "acme", names.ActionUpdate),
			&chatv1.PresenceUpdate{Principal: &chatv1.Principal{Org: "acme", User: "edge1"}, Edge: "edge1", Connections: part}, &chatv1.PresenceUpdateResponse{})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < conns; i += batch { // connect them all first
		send(states[i : i+batch])
	}
	time.Sleep(200 * time.Millisecond) // let the view catch up with the revisions
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		off := (i * batch) % conns
		send(states[off : off+batch])
	}
	elapsed := time.Since(start)
	perSec := float64(b.N*batch) / elapsed.Seconds()
	b.ReportMetric(perSec, "renewals/s")
	b.ReportMetric(perSec*10, "conns@10s")
	b.ReportMetric(float64(counterValue(s.metrics.writes.WithLabelValues("conflict")))/float64(b.N*batch), "conflicts/renewal")
}
