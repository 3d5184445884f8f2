package edge

import (
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Rate limits at the edge. Every command takes a token from the user's
// bucket for its type, kept by the ratelimit service and shared by every
// edge. A denial is remembered here until its retryAfter, and the user's
// further commands of that type are refused without asking anybody, so a
// flood costs one map lookup per frame. When the service does not answer
// within RateLimitTimeout, each connection falls back to buckets of its own
// with the same limits (never unlimited) for RateLimitRetry, then asks the
// service again.

// limiter is the edge's part of rate limiting. It is safe for concurrent
// use.
type limiter struct {
	s         *Server
	seed      maphash.Seed
	shards    [16]deniedShard
	downUntil atomic.Int64 // unix nanos: the service is skipped until then
}

type deniedShard struct {
	mu sync.Mutex
	m  map[string]int64 // <org>.<user>.<bucket> -> unix nanos the denial ends
}

func newLimiter(s *Server) *limiter {
	l := &limiter{s: s, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = map[string]int64{}
	}
	return l
}

func (l *limiter) shard(key string) *deniedShard {
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

func (l *limiter) deniedUntil(key string) int64 {
	sh := l.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key]
}

func (l *limiter) deny(key string, until int64) {
	sh := l.shard(key)
	sh.mu.Lock()
	sh.m[key] = until
	sh.mu.Unlock()
}

// sweep forgets denials that are over (called by the janitor).
func (l *limiter) sweep(now int64) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, until := range sh.m {
			if until <= now {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}

// check takes a token for a command of c, or returns a rate_limited error
// with an honest retryAfter.
func (c *conn) checkRate(typ string) error {
	now := time.Now()
	bucket, limit := c.s.cfg.Limits.Bucket(typ)
	answered, err := c.s.sharedRate(c.principal(), typ, now)
	if !answered {
		return c.localRate(typ, bucket, limit, now)
	}
	return err
}

// sharedRate takes a token of p's bucket for typ from the ratelimit
// service (or finds it denied here already). answered is false when the
// service is skipped or did not answer: the caller falls back.
func (s *Server) sharedRate(p *chatv1.Principal, typ string, now time.Time) (answered bool, err error) {
	bucket, limit := s.cfg.Limits.Bucket(typ)
	key := p.Org + "." + p.User + "." + bucket
	if until := s.limiter.deniedUntil(key); now.UnixNano() < until {
		s.metrics.rateChecks.WithLabelValues("local_denied").Inc()
		return true, rateLimited(typ, limit, time.Duration(until-now.UnixNano()))
	}
	if now.UnixNano() < s.limiter.downUntil.Load() {
		return false, nil
	}
	ctx, cancel := contextWithTimeout(s.cfg.RateLimitTimeout)
	defer cancel()
	var res chatv1.RateLimitResult
	start := time.Now()
	err = svc.Call(ctx, s.nc, names.Command(names.RateLimit, p.Org, names.ActionCheck), &chatv1.RateLimitCheck{Principal: p, Command: typ}, &res)
	s.metrics.requests.WithLabelValues(names.RateLimit, names.ActionCheck).Observe(time.Since(start).Seconds())
	if err != nil {
		s.limiter.downUntil.Store(now.Add(s.cfg.RateLimitRetry).UnixNano())
		s.metrics.rateFallbacks.Inc()
		s.warnEvery("ratelimit-down", 10*time.Second, "ratelimit service unavailable: per-connection limits in force", "err", err)
		return false, nil
	}
	if !res.Allowed {
		retry := time.Duration(res.RetryAfterMs) * time.Millisecond
		s.limiter.deny(key, now.Add(retry).UnixNano())
		s.metrics.rateChecks.WithLabelValues("denied").Inc()
		return true, rateLimited(typ, limit, retry)
	}
	s.metrics.rateChecks.WithLabelValues("allowed").Inc()
	return true, nil
}

// localRate is the fallback: a bucket per connection with the same limit.
func (c *conn) localRate(typ, bucket string, limit limits.Limit, now time.Time) error {
	b := c.buckets[bucket]
	if b == nil {
		b = &localBucket{tokens: float64(limit.Capacity), at: now}
		c.buckets[bucket] = b
	}
	rate := limit.RefillPerSecond()
	b.tokens = min(float64(limit.Capacity), b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		c.s.metrics.rateChecks.WithLabelValues("fallback_allowed").Inc()
		return nil
	}
	c.s.metrics.rateChecks.WithLabelValues("fallback_denied").Inc()
	retry := time.Duration((1 - b.tokens) / rate * float64(time.Second))
	return rateLimited(typ, limit, retry.Truncate(time.Millisecond)+time.Millisecond)
}

// localBucket is a connection's own token bucket, owned by its reader.
type localBucket struct {
	tokens float64
	at     time.Time
}

func rateLimited(typ string, l limits.Limit, retry time.Duration) error {
	if retry < time.Millisecond {
		retry = time.Millisecond
	}
	return &errs.Error{
		Code:       errs.CodeRateLimited,
		Message:    fmt.Sprintf("%s is limited to %d per %s", typ, l.Capacity, periodName(l.Period)),
		RetryAfter: retry,
	}
}

// periodName says a period the way people do: "minute", "10 seconds".
func periodName(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}, {time.Millisecond, "millisecond"}} {
		if d%u.d == 0 {
			if n := d / u.d; n != 1 {
				return fmt.Sprintf("%d %ss", n, u.name)
			}
			return u.name
		}
	}
	return d.String()
}

// admission guards the upgrade: attempts per client address per second,
// live connections per user on this edge, and per edge. What is refused
// gets 429 before any upgrade.
type admission struct {
	s     *Server
	mu    sync.Mutex
	ips   map[string]*ipWindow
	users map[string]int // <org>.<user> -> live connections here
	total int
}

type ipWindow struct {
	second int64 // unix second of the count
	n      int
}

func newAdmission(s *Server) *admission {
	return &admission{s: s, ips: map[string]*ipWindow{}, users: map[string]int{}}
}

// attempt counts an upgrade attempt of a client address.
func (a *admission) attempt(r *http.Request) bool {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	sec := time.Now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.ips[ip]
	if w == nil || w.second != sec {
		if w == nil {
			w = &ipWindow{}
			a.ips[ip] = w
		}
		w.second, w.n = sec, 0
	}
	w.n++
	return w.n <= a.s.cfg.MaxUpgradesPerIP
}

// admit reserves a connection slot for a user; release gives it back.
func (a *admission) admit(org, user string) (ok bool, why string) {
	key := org + "." + user
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.total >= a.s.cfg.MaxConnections:
		return false, "edge full"
	case a.users[key] >= a.s.cfg.MaxConnectionsPerUser:
		return false, "too many connections for this user"
	}
	a.total++
	a.users[key]++
	return true, ""
}

func (a *admission) release(org, user string) {
	key := org + "." + user
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.users[key]--; a.users[key] <= 0 {
		delete(a.users, key)
	}
}

// sweep forgets addresses not seen this second (called by the janitor).
func (a *admission) sweep(now time.Time) {
	sec := now.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, w := range a.ips {
		if w.second < sec {
			delete(a.ips, ip)
		}
	}
}
