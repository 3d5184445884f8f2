package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func start(t testing.TB, nc *nats.Conn, cfg Config) *Limiter {
	t.Helper()
	l, err := New(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	return l
}

func mustLimits(t testing.TB, spec string) limits.Set {
	t.Helper()
	set, err := limits.Parse(limits.Defaults(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// checkErr sends one check as org/user.
func checkErr(nc *nats.Conn, org, user, command string) (*chatv1.RateLimitResult, error) {
	var resp chatv1.RateLimitResult
	err := svc.Call(context.Background(), nc, names.Command(names.RateLimit, org, names.ActionCheck),
		&chatv1.RateLimitCheck{Principal: &chatv1.Principal{Org: org, User: user}, Command: command}, &resp)
	return &resp, err
}

func check(t testing.TB, nc *nats.Conn, org, user, command string) *chatv1.RateLimitResult {
	t.Helper()
	r, err := checkErr(nc, org, user, command)
	if err != nil {
		t.Fatalf("check %s: %v", command, err)
	}
	return r
}

// takeAll checks until denied and returns how many were allowed; the
// remaining counts must go down by one each time.
func takeAll(t *testing.T, nc *nats.Conn, user, command string, atMost int) (int, *chatv1.RateLimitResult) {
	t.Helper()
	for i := range atMost + 1 {
		r := check(t, nc, "acme", user, command)
		if !r.Allowed {
			return i, r
		}
		if want := uint32(atMost - i - 1); r.Remaining != want {
			t.Fatalf("%s check %d: remaining %d, want %d", command, i, r.Remaining, want)
		}
	}
	t.Fatalf("%s: still allowed after %d checks", command, atMost+1)
	return 0, nil
}

func TestDefaults(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc, Config{})

	n, denied := takeAll(t, nc, "alice", "message:send", 10)
	if n != 10 {
		t.Fatalf("message:send allowed %d, want 10", n)
	}
	if denied.Remaining != 0 || denied.RetryAfterMs <= 5000 || denied.RetryAfterMs > 6000 {
		t.Fatalf("denied with remaining %d retry_after_ms %d, want 0 and about 6000", denied.Remaining, denied.RetryAfterMs)
	}
	// Other command types have their own buckets.
	for cmd, want := range map[string]int{"message:typing": 5, "message:edit": 3, "message:delete": 3} {
		if n, _ := takeAll(t, nc, "alice", cmd, want); n != want {
			t.Fatalf("%s allowed %d, want %d", cmd, n, want)
		}
	}
	// Other users and other orgs are unaffected.
	if r := check(t, nc, "acme", "bob", "message:send"); !r.Allowed || r.Remaining != 9 {
		t.Fatalf("bob: %v", r)
	}
	if r := check(t, nc, "other", "alice", "message:send"); !r.Allowed || r.Remaining != 9 {
		t.Fatalf("alice of another org: %v", r)
	}
}

func TestUnknownCommandsShareTheDefaultBucket(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	reg := prometheus.NewRegistry()
	// The default bucket's own size, refilled so slowly that a loaded
	// machine's pauses between checks refill nothing (60 per 10 s gives a
	// token back every 167 ms).
	start(t, nc, Config{Registerer: reg, Limits: mustLimits(t, "default=60/1h")})

	if n, _ := takeAll(t, nc, "alice", "no:such-command", 60); n != 60 {
		t.Fatalf("unknown command allowed %d, want the default bucket's 60", n)
	}
	if r := check(t, nc, "acme", "alice", "conversation:list"); r.Allowed || r.RetryAfterMs <= 0 {
		t.Fatalf("conversation:list after 60 other default-bucket checks: %v", r)
	}
	if r := check(t, nc, "acme", "alice", "message:send"); !r.Allowed {
		t.Fatalf("message:send has its own bucket: %v", r)
	}
	want := `
# HELP switchboard_ratelimit_checks_total Rate-limit checks answered, by result (allowed or denied).
# TYPE switchboard_ratelimit_checks_total counter
switchboard_ratelimit_checks_total{result="allowed"} 61
switchboard_ratelimit_checks_total{result="denied"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchboard_ratelimit_checks_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRefusals(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc, Config{})

	_, err := checkErr(nc, "acme", "alice", "")
	if e := errs.As(err); !errs.Is(err, errs.CodeValidation) || len(e.Fields) != 1 || e.Fields[0].Field != "command" {
		t.Fatalf("empty command: %v", err)
	}
	// A principal of one org on another org's subject.
	var resp chatv1.RateLimitResult
	err = svc.Call(context.Background(), nc, names.Command(names.RateLimit, "acme", names.ActionCheck),
		&chatv1.RateLimitCheck{Principal: &chatv1.Principal{Org: "evil", User: "alice"}, Command: "message:send"}, &resp)
	if !errs.Is(err, errs.CodeForbidden) || resp.Allowed {
		t.Fatalf("org mismatch: %v allowed=%v", err, resp.Allowed)
	}
}

func TestBadConfig(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	for name, set := range map[string]limits.Set{
		"wildcard in a command": {"message.*": {Capacity: 1, Period: time.Second}},
		"space in a command":    {"message send": {Capacity: 1, Period: time.Second}},
		"zero capacity":         {"message:send": {Capacity: 0, Period: time.Second}},
		"zero period":           {"message:send": {Capacity: 1}},
	} {
		if _, err := New(context.Background(), nc, Config{Limits: set}); err == nil {
			t.Errorf("%s: New accepted %v", name, set)
		}
	}
	// A set without a default bucket gets docs/protocol.md's.
	l := start(t, nc, Config{Limits: limits.Set{"message:send": {Capacity: 1, Period: time.Minute}}})
	if got := l.cfg.Limits[limits.Default]; got != limits.Defaults()[limits.Default] {
		t.Fatalf("default bucket %v", got)
	}
}

// TestInjectedClock drives refill through NATS with Config.Now.
func TestInjectedClock(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	start(t, nc, Config{Now: func() time.Time { return time.UnixMilli(now.Load()) }})

	if n, r := takeAll(t, nc, "alice", "message:send", 10); n != 10 || r.RetryAfterMs != 6000 {
		t.Fatalf("allowed %d, then retry_after_ms %d; want 10 and exactly 6000", n, r.RetryAfterMs)
	}
	now.Add(5999)
	if r := check(t, nc, "acme", "alice", "message:send"); r.Allowed || r.RetryAfterMs != 1 {
		t.Fatalf("1 ms early: %v", r)
	}
	now.Add(1)
	if r := check(t, nc, "acme", "alice", "message:send"); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("on time: %v", r)
	}
}

// TestTwoInstancesAdmitExactlyCapacity floods one bucket through two
// instances on two connections: no token is spent twice.
func TestTwoInstancesAdmitExactlyCapacity(t *testing.T) {
	ns := natstest.Server(t)
	cfg := func() Config { return Config{Limits: mustLimits(t, "message:send=50/1h")} }
	l1 := start(t, natstest.Conn(t, ns), cfg())
	l2 := start(t, natstest.Conn(t, ns), cfg())
	client := natstest.Conn(t, ns)

	const workers, perWorker = 16, 40
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				r, err := checkErr(client, "acme", "alice", "message:send")
				if err != nil {
					errc <- err
					return
				}
				if r.Allowed {
					allowed.Add(1)
				} else if r.RetryAfterMs <= 0 {
					errc <- fmt.Errorf("denied with retry_after_ms %d", r.RetryAfterMs)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if got := allowed.Load(); got != 50 {
		t.Fatalf("two instances allowed %d of %d checks, want exactly 50", got, workers*perWorker)
	}
	served := func(l *Limiter) float64 {
		return testutil.ToFloat64(l.allowed) + testutil.ToFloat64(l.denied)
	}
	if served(l1) == 0 || served(l2) == 0 {
		t.Fatalf("one instance served everything: %v and %v checks", served(l1), served(l2))
	}
	t.Logf("checks per instance %v/%v, CAS conflicts %v/%v", served(l1), served(l2),
		testutil.ToFloat64(l1.conflicts), testutil.ToFloat64(l2.conflicts))

	if r := check(t, client, "acme", "bob", "message:send"); !r.Allowed || r.Remaining != 49 {
		t.Fatalf("bob after alice's flood: %v", r)
	}
}

// TestIdleBucketExpires: every write sets the key's TTL, a denied check
// writes nothing, and once the key expired the bucket is full again.
func TestIdleBucketExpires(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc, Config{Limits: mustLimits(t, "x=2/1s")})
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, names.BucketRateLimit)
	if err != nil {
		t.Fatal(err)
	}
	key := names.RateLimitKey("acme", "alice", "x")

	check(t, nc, "acme", "alice", "x")
	check(t, nc, "acme", "alice", "x")
	written := time.Now()
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if r := check(t, nc, "acme", "alice", "x"); r.Allowed {
		t.Fatalf("third check of 2/1s: %v", r)
	}
	if e2, err := kv.Get(ctx, key); err != nil || e2.Revision() != e.Revision() {
		t.Fatalf("a denied check wrote: revision %d -> %v (%v)", e.Revision(), e2, err)
	}

	// Gone after its TTL (1 s), not before.
	for {
		_, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(written) > 2500*time.Millisecond {
			t.Fatal("bucket key still there 2.5 s after its last write (TTL 1 s)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gone := time.Since(written); gone < 900*time.Millisecond {
		t.Fatalf("bucket key gone %v after its last write, TTL is 1 s", gone)
	}
	// The server left a marker for the expired key: the next write must
	// expect its sequence, not 0.
	if r := check(t, nc, "acme", "alice", "x"); !r.Allowed || r.Remaining != 1 {
		t.Fatalf("check after expiry: %v, want a full bucket", r)
	}
	if _, err := kv.Get(ctx, key); err != nil {
		t.Fatalf("bucket not written again after expiry: %v", err)
	}
}

// TestAlternatingInstances: checks of one bucket that alternate between two
// instances count every token once, an instance that lost a race reads
// before writing instead of losing again and again, and one left alone
// goes back to writing without reading.
func TestAlternatingInstances(t *testing.T) {
	ns := natstest.Server(t)
	l1 := start(t, natstest.Conn(t, ns), Config{})
	l2 := start(t, natstest.Conn(t, ns), Config{})
	ctx := context.Background()
	limit := limits.Limit{Capacity: 20, Period: time.Hour}
	key := names.RateLimitKey("acme", "alice", "message_send")
	remaining := uint32(limit.Capacity)
	takeOn := func(l *Limiter) {
		t.Helper()
		remaining--
		d, err := l.take(ctx, key, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !d.allowed || d.remaining != remaining {
			t.Fatalf("%+v, want allowed with %d left", d, remaining)
		}
	}
	conflicts := func() float64 {
		return testutil.ToFloat64(l1.conflicts) + testutil.ToFloat64(l2.conflicts)
	}

	for i := range 10 {
		takeOn([]*Limiter{l1, l2}[i%2])
	}
	// Each instance trusted its own write once and lost; then both read.
	if c := conflicts(); c != 2 {
		t.Fatalf("%v CAS conflicts in 10 alternating checks, want 2", c)
	}
	for range 3 {
		takeOn(l1)
	}
	st := l1.cache.lock(key)
	e, ok := st.get(key, time.Now())
	st.mu.Unlock()
	if !ok || !e.trusted {
		t.Fatalf("entry of an instance left alone: %+v (cached %v), want trusted", e, ok)
	}
	takeOn(l2) // its cache is stale: it reads
	takeOn(l1) // trusted, stale: loses once more
	if c := conflicts(); c != 3 {
		t.Fatalf("%v CAS conflicts, want 3", c)
	}
}
