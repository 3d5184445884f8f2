package standalone

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
)

// sendResult is what one retrying sender saw.
type sendResult struct {
	acked   map[string]uint64 // clientMsgId -> seq
	codes   map[string]int    // error codes seen, retried or not
	slowest time.Duration     // the longest wait for one reply
	err     error             // a transport failure: the test fails
}

// sendWithRetries sends n messages on c, each retried with the same
// clientMsgId while it is answered unavailable (as docs/protocol.md tells
// clients), until stop is closed or the message is acked. It runs on its
// own goroutine: it reports, never fails the test.
func sendWithRetries(c *wsclient.Client, conv, prefix string, n int, stop <-chan struct{}) sendResult {
	res := sendResult{acked: map[string]uint64{}, codes: map[string]int{}}
	for i := 0; i < n; i++ {
		cmid := fmt.Sprintf("%s-%d", prefix, i)
		for attempt := 0; ; attempt++ {
			select {
			case <-stop:
				return res
			default:
			}
			start := time.Now()
			r, err := c.Request(fmt.Sprintf("%s-%d", cmid, attempt), "message:send",
				map[string]any{"conversationId": conv, "content": cmid, "clientMsgId": cmid}, 10*time.Second)
			res.slowest = max(res.slowest, time.Since(start))
			if err != nil {
				res.err = fmt.Errorf("%s: %w", cmid, err)
				return res
			}
			if r.Type == "ack" {
				var a sendAck
				if err := r.Decode(&a); err != nil {
					res.err = err
					return res
				}
				res.acked[cmid] = a.Seq
				break
			}
			var e struct {
				Code string `json:"code"`
			}
			_ = r.Decode(&e)
			res.codes[e.Code]++
			if e.Code != "unavailable" {
				break // counted; the test decides
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return res
}

// runSenders runs one retrying sender per client, fault runs while they
// send, and returns what they saw once all are done.
func runSenders(t *testing.T, clients []*client, conv string, n int, fault func()) []sendResult {
	t.Helper()
	stop := make(chan struct{})
	results := make([]sendResult, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = sendWithRetries(c.Client, conv, fmt.Sprintf("s%d", i), n, stop)
		}()
	}
	fault()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		close(stop)
		<-done
		t.Fatal("senders did not finish in 90 s")
	}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("sender %d: %v", i, r.err)
		}
		for code, k := range r.codes {
			if code != "unavailable" {
				t.Errorf("sender %d got %q %d times (only unavailable is expected of a fault)", i, code, k)
			}
		}
	}
	return results
}

// storedOnce checks that every acked message is in the conversation's
// stored events exactly once, at the seq its ack gave, and that no message
// is stored twice, reading the stream directly.
func storedOnce(t *testing.T, nc *nats.Conn, org, conv string, results []sendResult) {
	t.Helper()
	var stored []storedMsg
	var after uint64
	for {
		b, err := readBatch(nc, names.Store(org, conv), after+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Msgs {
			ev := &chatv1.Event{}
			if err := proto.Unmarshal(m.Data, ev); err != nil {
				t.Fatal(err)
			}
			if mn := ev.GetMessageNew(); mn != nil {
				stored = append(stored, storedMsg{mn.ClientMsgId, m.Seq})
			}
			after = m.Seq
		}
		if len(b.Msgs) == 0 || b.Pending == 0 {
			break
		}
	}
	checkStoredOnce(t, stored, results)
}

// readBatch reads up to 1,000 stored events from seq, trying again for up
// to 30 s: right after a fault the probe's own connection may still be
// moving to another node, or ask a replica that is catching up.
func readBatch(nc *nats.Conn, subject string, seq uint64) (natsx.Batch, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := natsx.GetBatch(ctx, nc, names.StreamEvents, subject, seq, 1000)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return b, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// storedMsg is a message_new of the stream: its clientMsgId and seq.
type storedMsg struct {
	clientMsgID string
	seq         uint64
}

func checkStoredOnce(t *testing.T, stored []storedMsg, results []sendResult) {
	t.Helper()
	seen := map[string]uint64{}
	for _, m := range stored {
		if prev, dup := seen[m.clientMsgID]; dup {
			t.Errorf("%s stored twice, at %d and %d", m.clientMsgID, prev, m.seq)
		}
		seen[m.clientMsgID] = m.seq
	}
	acked := 0
	for _, r := range results {
		for cmid, seq := range r.acked {
			acked++
			if got, ok := seen[cmid]; !ok {
				t.Errorf("%s acked at seq %d is not stored", cmid, seq)
			} else if got != seq {
				t.Errorf("%s acked at seq %d, stored at %d", cmid, seq, got)
			}
		}
	}
	t.Logf("%d messages acked, %d stored", acked, len(seen))
}

// A second messaging instance serves beside the standalone's; it dies
// mid-traffic (its connection drops, as with kill -9: the requests it
// holds are never answered). Senders retry on unavailable: every acked
// message is stored once, nobody sees anything but unavailable, and no
// reply waits the edge's whole request timeout.
func TestFaultMessagingInstanceDies(t *testing.T) {
	f := start(t)
	nc := f.natsAs(natsauth.Messaging)
	second, err := messaging.New(context.Background(), nc, messaging.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background()) })

	owner := f.dial("acme", "owner")
	users := []string{"u0", "u1", "u2", "u3"}
	conv := owner.create(users...)
	var clients []*client
	for _, u := range users {
		clients = append(clients, f.dial("acme", u))
	}
	results := runSenders(t, clients, conv, 60, func() {
		time.Sleep(300 * time.Millisecond)
		nc.Close()
	})
	storedOnce(t, f.natsAs(natsauth.Messaging), "acme", conv, results)
	for i, r := range results {
		if len(r.acked) != 60 {
			t.Errorf("sender %d: %d of 60 acked", i, len(r.acked))
		}
		// The edge's attempt timeout (2 s) plus a retry, well under the
		// request timeout (5 s) that a dead instance used to cost.
		t.Logf("sender %d: slowest reply %v", i, r.slowest)
		if r.slowest > 4*time.Second {
			t.Errorf("sender %d waited %v for one reply", i, r.slowest)
		}
	}
}

// Presence stops (for less than a TTL, then for more) and comes back: no
// user connected all along is announced offline nor answered offline. The
// timings have production's ratio: the TTL is three heartbeats. Keys whose
// TTL ran out just after the restart, before their next heartbeat, used to
// be announced offline; keys that expired during the outage were answered
// offline until their heartbeat's turn.
func TestFaultPresenceRestartAnnouncesNobodyOffline(t *testing.T) {
	const ttl, heartbeat = 3 * time.Second, time.Second
	pcfg := presence.Config{TTL: ttl, Grace: 2 * time.Second, Interval: 100 * time.Millisecond, Logger: testLogger()}
	f := start(t, func(c *Config) {
		c.Presence = pcfg
		c.Edge.SweepInterval = 100 * time.Millisecond
		c.Edge.PresenceInterval = heartbeat
		c.Edge.PresenceThrottle = 100 * time.Millisecond
	})
	var users []string
	for i := range 12 {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	watcher := f.dial("acme", "watcher")
	conv := watcher.create(users...)
	for _, u := range users {
		f.dial("acme", u)
	}
	watcher.join(conv)
	for _, u := range users {
		for deadline := time.Now().Add(5 * time.Second); watcher.queryStatus(u).Status != "online"; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s is not online", u)
			}
		}
	}
	var running interface{ Stop(context.Context) error } = f.sys.Presence
	for _, down := range []time.Duration{ttl - 500*time.Millisecond, ttl + time.Second} {
		if err := running.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(down)
		p, err := presence.New(context.Background(), f.natsAs(natsauth.Presence), pcfg)
		if err != nil {
			t.Fatal(err)
		}
		running = p
		t.Cleanup(func() { _ = p.Stop(context.Background()) })
		// Edges report every connection at their next sweep.
		time.Sleep(500 * time.Millisecond)
		for _, u := range users {
			if st := watcher.queryStatus(u).Status; st != "online" {
				t.Errorf("after %v down: %s is %s", down, u, st)
			}
		}
		// Nobody is announced offline within a TTL, a grace and a
		// heartbeat of the restart.
		deadline := time.Now().Add(ttl + pcfg.Grace + heartbeat)
		for {
			e, err := watcher.Next("presence", time.Until(deadline))
			if err != nil {
				break
			}
			if p := decode[presenceEvent](t, e.Data); p.Status != "online" {
				t.Errorf("after %v down: %s announced %s", down, p.UserID, p.Status)
			}
		}
	}
}
