package standalone

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/obs"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

func limitSet(t *testing.T, spec string) limits.Set {
	t.Helper()
	s, err := limits.Parse(limits.Defaults(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// counter reads a counter of reg with the given label value (all series
// of the metric summed when label is "").
func counter(t *testing.T, reg prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabelValue(m, label) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabelValue(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// One user with three connections on two edges, two ratelimit instances,
// everyone sending as fast as possible: exactly the limit is admitted.
// (Each connection gets about 30 refusals: the close for repeated refusals
// is set out of the way, it is not what this test is about.)
func TestLimitHoldsAcrossConnectionsEdgesAndInstances(t *testing.T) {
	set := limitSet(t, "message:send=30/1h,default=100000/1s")
	// A loaded machine must not make the edge fall back to its own
	// per-connection buckets (after RateLimitTimeout): the test is about
	// the shared ones.
	f := start(t, func(c *Config) {
		c.Edge.Limits = set
		c.Edge.InvalidFrameLimit = 1000
		c.Edge.RateLimitTimeout = 5 * time.Second
	})
	nc := f.natsAs(natsauth.RateLimit)
	second, err := ratelimit.New(context.Background(), nc, ratelimit.Config{Limits: set, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background()) })
	f2 := serveEdge(t, f, f.natsAs(natsauth.Edge), edge.Config{Limits: set, InvalidFrameLimit: 1000, RateLimitTimeout: 5 * time.Second})

	conns := []*client{f.dial("acme", "alice"), f.dial("acme", "alice"), f2.dial("acme", "alice")}
	conv := conns[0].create("bob")
	var mu sync.Mutex
	results := map[string]int{}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				id := fmt.Sprintf("x%d-%d", i, j)
				r, err := c.Request(id, "message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": id}, wait)
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				mu.Lock()
				results[r.Type]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if results["ack"] != 30 || results["rate-limit-exceeded"] != 90 {
		t.Fatalf("results %v: want exactly 30 acks of 120", results)
	}
	h := decode[struct {
		Events []wsclient.Frame `json:"events"`
	}](t, conns[0].do("conversation:history", map[string]any{"conversationId": conv, "limit": 200}))
	if n := len(h.Events) - 1; n != 30 { // minus the creation event
		t.Fatalf("the conversation holds %d messages, want 30", n)
	}
}

// A flood of 10,000 frames from one client: at most the bucket's capacity
// is admitted, the refusals are made at the edge (the ratelimit service is
// asked only a few times), the socket is closed with 1008 at the tenth
// refusal (InvalidFrameLimit), and another user of the same edge keeps
// being served throughout.
func TestFloodIsRefusedAtTheEdge(t *testing.T) {
	reg := obs.NewRegistry()
	set := limitSet(t, "default=100000/1s") // message:send keeps its 10 per minute
	f := start(t, func(c *Config) {
		c.Edge.Limits = set
		c.Registry = reg
		// The service answers, however loaded the machine: a check that
		// waited past the default 250 ms would fall back to the
		// connection's own bucket (tested elsewhere) and admit more.
		c.Edge.RateLimitTimeout = 5 * time.Second
	})
	mallory, bob := f.dial("acme", "mallory"), f.dial("acme", "bob")
	conv := mallory.create("bob")
	bob.join(conv)

	checksBefore := counter(t, reg, "switchboard_edge_rate_checks_total", "allowed") + counter(t, reg, "switchboard_edge_rate_checks_total", "denied")
	var flood [][]byte
	for i := range 10000 {
		flood = append(flood, fmt.Appendf(nil, `{"type":"message:send","data":{"conversationId":%q,"content":"spam","clientMsgId":"f%d"}}`, conv, i))
	}
	done := make(chan int)
	go func() {
		sent := 0
		for _, frame := range flood {
			if mallory.SendText(frame) != nil {
				break // closed by the edge
			}
			sent++
		}
		done <- sent
	}()
	// bob is served while the flood goes on.
	var lat []time.Duration
	for range 20 {
		t0 := time.Now()
		bob.do("conversation:list", nil)
		lat = append(lat, time.Since(t0))
	}
	closedWith(t, mallory.Client, 1008)
	sent := <-done
	refused := counter(t, reg, "switchboard_edge_commands_total", "rate_limited")
	checks := counter(t, reg, "switchboard_edge_rate_checks_total", "allowed") + counter(t, reg, "switchboard_edge_rate_checks_total", "denied") - checksBefore
	local := counter(t, reg, "switchboard_edge_rate_checks_total", "local_denied")
	h := decode[struct {
		Events []wsclient.Frame `json:"events"`
	}](t, bob.do("conversation:history", map[string]any{"conversationId": conv, "limit": 200}))
	admitted := len(h.Events) - 1
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("flood: %d frames written before the close, %d admitted, %v refused (%v locally), %v NATS checks (the sends and bob's 20 lists); bob's list during the flood: p50 %v max %v",
		sent, admitted, refused, local, checks, lat[len(lat)/2], lat[len(lat)-1])
	if admitted > 10 {
		t.Fatalf("%d of the flood admitted, want at most 10", admitted)
	}
	if refused != 10 {
		t.Fatalf("%v refusals answered before the close, want 10 (InvalidFrameLimit)", refused)
	}
	if local == 0 {
		t.Fatal("no refusal was made at the edge: every one asked the ratelimit service")
	}
	if checks > 10+1+20+5 { // 10 admitted, 1 denial, bob's 20 lists, a few races
		t.Fatalf("%v rate-limit checks went to NATS for a flood refused at the edge", checks)
	}
	if lat[len(lat)-1] > 2*time.Second {
		t.Fatalf("bob waited %v during the flood", lat[len(lat)-1])
	}
	bob.stillServes()
}

// A connection that sends only rate-limited commands is closed with 1008
// at the tenth refusal within a minute, every refusal answered first;
// another user, and another connection of the same user, are not closed.
func TestRefusedCommandsClose1008(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.Limits = limitSet(t, "message:send=1/1h,default=100000/1s") })
	bob := f.dial("acme", "bob")
	alice, alice2 := f.dial("acme", "alice"), f.dial("acme", "alice")
	conv := alice.create("bob")
	alice.send(conv, "the one admitted")
	for i := 1; i <= 10; i++ {
		alice.fails("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": fmt.Sprintf("r%d", i)}, "rate-limit-exceeded", "rate_limited")
		if i < 10 {
			alice.stillServes()
		}
	}
	closedWith(t, alice.Client, 1008)
	bob.stillServes()
	alice2.fails("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "other"}, "rate-limit-exceeded", "rate_limited")
	alice2.stillServes()
}

// With the ratelimit service down the edge limits each connection on its
// own (never unlimited); with the service back the shared limit returns.
func TestRateLimitFallbackAndReturn(t *testing.T) {
	reg := obs.NewRegistry()
	set := limitSet(t, "message:send=5/1h,default=100000/1s")
	f := start(t, func(c *Config) {
		c.Edge.Limits = set
		c.Registry = reg
		c.Edge.RateLimitRetry = 200 * time.Millisecond
	})
	if err := f.sys.RateLimit.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	a1, a2 := f.dial("acme", "alice"), f.dial("acme", "alice")
	conv := a1.create("bob")
	sendN := func(c *client, n int) (acks int) {
		for range n {
			r := c.try("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": fmt.Sprint(f.ids.Add(1))})
			if r.Type == "ack" {
				acks++
			}
		}
		return acks
	}
	if got := sendN(a1, 8); got != 5 {
		t.Fatalf("with the service down, one connection got %d of 8 sends through, want its own 5", got)
	}
	if counter(t, reg, "switchboard_edge_rate_fallbacks_total", "") == 0 {
		t.Fatal("no fallback counted")
	}

	nc := f.natsAs(natsauth.RateLimit)
	back, err := ratelimit.New(context.Background(), nc, ratelimit.Config{Limits: set, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = back.Stop(context.Background()) })
	time.Sleep(300 * time.Millisecond) // past RateLimitRetry
	// Shared again: the user's 5 across both connections, not 5 each.
	if got := sendN(a1, 3) + sendN(a2, 4); got != 5 {
		t.Fatalf("with the service back, two connections got %d of 7 sends through, want the shared 5", got)
	}
}

func TestRateLimitReply(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.Limits = limitSet(t, "message:send=2/1m,default=100000/1s") })
	alice := f.dial("acme", "alice")
	conv := alice.create()
	alice.send(conv, "1")
	alice.send(conv, "2")
	r := alice.fails("message:send", map[string]any{"conversationId": conv, "content": "3", "clientMsgId": "c3"}, "rate-limit-exceeded", "rate_limited")
	d := decode[struct {
		Message      string `json:"message"`
		RetryAfterMs *int64 `json:"retryAfterMs"`
	}](t, r.Data)
	if d.Message != "message:send is limited to 2 per minute" || d.RetryAfterMs == nil || *d.RetryAfterMs <= 0 || *d.RetryAfterMs > 30000 {
		t.Fatalf("rate-limit reply %s", r.Data)
	}
}

// Upgrades past the per-user and per-address limits get 429.
func TestUpgradeGuards(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.MaxConnectionsPerUser = 2; c.Edge.MaxUpgradesPerIP = 5 })
	f.dial("acme", "alice")
	f.dial("acme", "alice")
	_, err := wsclient.DialToken(context.Background(), f.url, token("acme", "alice"))
	if se, ok := err.(wsclient.StatusError); !ok || se != 429 {
		t.Fatalf("a third connection of one user: %v, want 429", err)
	}
	refused := 0
	for range 10 {
		c, err := wsclient.DialToken(context.Background(), f.url, token("acme", fmt.Sprintf("u%d", f.ids.Add(1))))
		if se, ok := err.(wsclient.StatusError); ok && se == 429 {
			refused++
		} else if err == nil {
			c.Kill()
		}
	}
	if refused == 0 {
		t.Fatal("13 upgrades from one address within a second were all accepted (limit 5)")
	}
}
