// Package ratelimit is the per-user rate limiter of every edge: token
// buckets per org, user and command type, shared by any number of
// instances.
//
// It answers chat.cmd.ratelimit.<org>.check (queue group "ratelimit") with
// chatv1.RateLimitResult: whether the principal may run the command now,
// the whole tokens left, and when denied how long until a token is there.
//
// State: chat_ratelimit holds <org>.<user>.<bucket> -> chatv1.Bucket, the
// tokens at a time in milliseconds. A command has its own bucket when the
// configured limits.Set names it, else it counts in the shared
// limits.Default bucket. A check reads the bucket (or takes it from its
// cache), refills it to now, and when a token is there writes the bucket
// back with compare-and-set on the key's revision: of two instances that
// read the same revision, one write fails and that instance reads again, so
// no token is spent twice. A denied check writes nothing. Every write sets
// the key's TTL to the time an empty bucket takes to refill, so an idle
// bucket expires, and an expired bucket is a full one.
//
// Why not kv.Update: it drops the key's TTL (docs/nats-notes.md). Writes are
// publishes to $KV.chat_ratelimit.<key> with the expected last subject
// sequence and a per-message TTL instead; reads go to the bucket's stream,
// because an expired key leaves a marker whose sequence the next write
// must expect.
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// maxPeriod bounds a limit's period, so that TTLs stay sane.
const maxPeriod = 366 * 24 * time.Hour

// Config configures a Limiter; the zero value of each field is its default.
type Config struct {
	// Limits maps command types to their buckets. Default limits.Defaults()
	// (docs/protocol.md, "Rate limits"); a set without limits.Default gets
	// the protocol's default bucket.
	Limits limits.Set
	// Replicas of the chat_ratelimit bucket. Default 1.
	Replicas int
	// Workers bounds the checks handled at once. Default 256.
	Workers int
	// Timeout bounds one check, KV round trips included: a caller (the
	// edge) has given up on it by then. Default 2s.
	Timeout time.Duration
	// CacheSize bounds the buckets an instance remembers. Default 262144.
	CacheSize int
	// Registerer gets the metrics. Default: not exported.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// validKeyToken is what a command may hold to name a bucket: a KV key
// token once ':' became '_' (names.RateLimitKey).
var validKeyToken = regexp.MustCompile(`^[-/_=a-zA-Z0-9:]+$`)

func (c *Config) setDefaults() error {
	if c.Limits == nil {
		c.Limits = limits.Defaults()
	}
	// A copy, so that the caller's map may change; with a default bucket.
	set := limits.Set{limits.Default: limits.Defaults()[limits.Default]}
	for k, v := range c.Limits {
		set[k] = v
	}
	c.Limits = set
	for cmd, l := range c.Limits {
		if !validKeyToken.MatchString(cmd) {
			return fmt.Errorf("ratelimit: command %q: letters, digits and -/_=: only", cmd)
		}
		if l.Capacity < 1 || l.Period < time.Millisecond || l.Period > maxPeriod {
			return fmt.Errorf("ratelimit: limit %s=%v: capacity at least 1, period between 1ms and %v", cmd, l, maxPeriod)
		}
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 1 << 18
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Limiter is one ratelimit instance. Its checks run on svc's worker pool;
// checks of one bucket are serialized by the cache's stripe lock.
type Limiter struct {
	cfg    Config
	nc     *nats.Conn // for the bucket writes (natsx.PublishExpect)
	js     jetstream.JetStream
	stream jetstream.Stream // behind chat_ratelimit
	log    *slog.Logger
	cache  *cache
	srv    *svc.Server

	checks    *prometheus.CounterVec
	allowed   prometheus.Counter // checks{result="allowed"}
	denied    prometheus.Counter // checks{result="denied"}
	conflicts prometheus.Counter
}

// Setup creates the chat_ratelimit bucket of a Limiter with cfg, or updates
// it to it. It needs a NATS user that may manage JetStream (an admin); New
// only opens it (natsx.Open).
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	_, err := natsx.KV(ctx, js, bucketConfig(cfg), natsx.Update)
	return err
}

// New opens the chat_ratelimit bucket (creating it when missing, see
// natsx.Open) and starts answering checks.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Limiter, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	l := &Limiter{
		cfg:   cfg,
		nc:    nc,
		js:    js,
		log:   cfg.Logger.With("service", names.RateLimit),
		cache: newCache(cfg.CacheSize),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_ratelimit_checks_total",
			Help: "Rate-limit checks answered, by result (allowed or denied).",
		}, []string{"result"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ratelimit_cas_conflicts_total",
			Help: "Bucket writes that lost a compare-and-set race (to another instance, or to an expiry) and were retried.",
		}),
	}
	for _, c := range []prometheus.Collector{l.checks, l.conflicts} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, err
		}
	}
	l.allowed = l.checks.WithLabelValues("allowed")
	l.denied = l.checks.WithLabelValues("denied")
	if err := l.setup(ctx); err != nil {
		return nil, err
	}
	l.srv, err = svc.New(nc, svc.Config{Name: names.RateLimit, Workers: cfg.Workers, Timeout: cfg.Timeout, Registerer: cfg.Registerer, Logger: l.log})
	if err != nil {
		return nil, err
	}
	if err := svc.Handle(l.srv, names.ActionCheck, l.check); err != nil {
		_ = l.srv.Stop(ctx)
		return nil, fmt.Errorf("ratelimit endpoint: %w", err)
	}
	// The endpoint's subscription is live once the server has it: a check
	// sent right after New returns must not find no responders.
	if err := nc.Flush(); err != nil {
		_ = l.srv.Stop(ctx)
		return nil, fmt.Errorf("ratelimit endpoint: %w", err)
	}
	return l, nil
}

func bucketConfig(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      names.BucketRateLimit,
		Description: "per-user token buckets by command type",
		// History 1: with more, per-key TTLs are raised to LimitMarkerTTL.
		History:        1,
		LimitMarkerTTL: time.Second,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
	}
}

func (l *Limiter) setup(ctx context.Context) error {
	_, err := natsx.KV(ctx, l.js, bucketConfig(l.cfg), natsx.Open)
	if err != nil {
		return err
	}
	l.stream, err = l.js.Stream(ctx, names.KVStream(names.BucketRateLimit))
	if err != nil {
		return fmt.Errorf("bucket %s stream: %w", names.BucketRateLimit, err)
	}
	return nil
}

// Stop stops taking checks and finishes those in flight.
func (l *Limiter) Stop(ctx context.Context) error { return l.srv.Stop(ctx) }

// check answers one RateLimitCheck.
func (l *Limiter) check(ctx context.Context, req *chatv1.RateLimitCheck) (*chatv1.RateLimitResult, error) {
	if req.GetCommand() == "" {
		return nil, errs.Invalid(errs.Field{Field: "command", Reason: errs.ReasonRequired})
	}
	bucket, limit := l.cfg.Limits.Bucket(req.GetCommand())
	p := req.GetPrincipal()
	d, err := l.take(ctx, names.RateLimitKey(p.GetOrg(), p.GetUser(), bucket), limit)
	if err != nil {
		return nil, err
	}
	if d.allowed {
		l.allowed.Inc()
	} else {
		l.denied.Inc()
	}
	return &chatv1.RateLimitResult{Allowed: d.allowed, Remaining: d.remaining, RetryAfterMs: d.retryAfter.Milliseconds()}, nil
}

// maxAttempts bounds the compare-and-set retries of one check.
const maxAttempts = 32

// backoff waits a random while, longer after each lost race, so that
// instances hammering one bucket take turns instead of colliding again.
func backoff(attempt int) {
	limit := min(time.Duration(attempt+1)*200*time.Microsecond, 5*time.Millisecond)
	time.Sleep(rand.N(limit))
}

// errBusy is a check that lost maxAttempts races in a row.
var errBusy = errs.New(errs.CodeUnavailable, "rate limit bucket is busy; retry")

// take takes a token from the bucket at key, if there is one.
//
// A trusted cache entry (this instance wrote the key last, as far as it
// knows) is written over without a read: one KV round trip. An entry that
// lost a race is no longer trusted: the next checks read first (two round
// trips, instead of a failed write, a read and a write), until a read shows
// that no other instance wrote since. Any entry, trusted or not, may deny:
// a stale entry only overstates the tokens.
func (l *Limiter) take(ctx context.Context, key string, limit limits.Limit) (decision, error) {
	st := l.cache.lock(key)
	defer st.mu.Unlock()
	life := ttl(limit)
	for attempt := range maxAttempts {
		now := l.cfg.Now()
		e, cached := st.get(key, now)
		if cached {
			if _, d := take(e.st, limit, now); !d.allowed {
				return d, nil
			}
		}
		if !cached || !e.trusted {
			fresh, err := l.load(ctx, key)
			if err != nil {
				return decision{}, err
			}
			fresh.trusted = !cached || fresh.rev == e.rev
			e = fresh
		}
		e.expires = now.Add(life)
		next, d := take(e.st, limit, now)
		if !d.allowed {
			st.put(key, e, now, l.cache.perStripe)
			return d, nil
		}
		rev, err := l.store(ctx, key, next, e.rev, life)
		if natsx.IsWrongLastSequence(err) {
			l.conflicts.Inc()
			e.trusted = false
			st.put(key, e, now, l.cache.perStripe)
			backoff(attempt)
			continue
		}
		if err != nil {
			st.drop(key) // the write may have happened: read it next time
			return decision{}, err
		}
		st.put(key, entry{st: next, rev: rev, trusted: e.trusted, expires: e.expires}, now, l.cache.perStripe)
		return d, nil
	}
	return decision{}, errBusy
}

// unavailable turns a JetStream that did not answer into errs.Unavailable
// (logged here: svc logs only internal errors), and wraps anything else.
func (l *Limiter) unavailable(op string, err error) error {
	if natsx.IsUnavailable(err) {
		l.log.Warn("bucket store did not answer", "op", op, "err", err)
		return errs.Unavailable
	}
	return fmt.Errorf("%s: %w", op, err)
}
