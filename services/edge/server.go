package edge

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/gopool"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/obs"
)

// Config configures an edge; the zero value of each field is its default.
type Config struct {
	// Auth says which tokens are accepted. Required: a key.
	Auth AuthConfig
	// AllowedOrigins, when not empty, is the Origin allow-list of upgrades
	// (exact matches, e.g. "https://chat.example.com"); a request from
	// another origin gets 403. A request without Origin is not a browser's
	// and is allowed.
	AllowedOrigins []string
	// IdleTimeout closes a connection that sent nothing for so long.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// PingInterval is how often the server pings. Default IdleTimeout/2.
	PingInterval time.Duration
	// MaxMessageBytes bounds a client message. Default 64 KiB.
	MaxMessageBytes int
	// SendQueueFrames and SendQueueBytes bound a connection's send queue;
	// a connection past either is closed with 1013. Default 1024 frames,
	// 4 MiB.
	SendQueueFrames int
	SendQueueBytes  int
	// WriteTimeout bounds one write to a socket (checked by the janitor,
	// every SweepInterval). Default 10s.
	WriteTimeout time.Duration
	// Writers is how many goroutines write queued frames to sockets.
	// Default GOMAXPROCS.
	Writers int
	// RequestTimeout bounds one command's NATS request. Default 5s.
	RequestTimeout time.Duration
	// AttemptTimeout bounds one try of a command that is safe to repeat
	// (reads, receipts, typing, sends: deduplicated by clientMsgId);
	// unanswered, it is tried again within RequestTimeout, most likely by
	// another instance. Default 2s.
	AttemptTimeout time.Duration
	// ExpiryWarning is how long before the token's exp auth:expiring is
	// sent. Default 30s.
	ExpiryWarning time.Duration
	// AuthFailureLimit failures (unauthenticated or forbidden replies)
	// within AuthFailureWindow close the connection with 4003.
	// Default 5 within 1 minute.
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
	// InvalidFrameLimit invalid or refused (rate-limited) commands within
	// a minute close the connection with 1008. Default 10.
	InvalidFrameLimit int
	// SweepInterval is how often pings, idle and expiry are checked.
	// Default 1s.
	SweepInterval time.Duration
	// GapWait is how long a conversation event that arrived before its
	// predecessor is held before the edge fetches the missing ones.
	// Default 100ms.
	GapWait time.Duration
	// ReceiptInterval is the least time between two receipt events of one
	// participant in one conversation; markers in between are coalesced
	// into the next. Default 500ms.
	ReceiptInterval time.Duration
	// PresenceInterval is how often each connection's presence is renewed
	// (in batches spread over the sweeps); keep it well under the presence
	// service's TTL. Default 10s.
	PresenceInterval time.Duration
	// AwayAfter makes a connection without commands away. Default
	// DefaultAwayAfter.
	AwayAfter time.Duration
	// PresenceTimeout bounds the presence query of a join. Default 500ms.
	PresenceTimeout time.Duration
	// PresenceThrottle is the least time between two presence events of
	// one user passed to sockets. Default 1s.
	PresenceThrottle time.Duration
	// RateLimitTimeout bounds a rate-limit check; past it the edge falls
	// back to per-connection buckets for RateLimitRetry. Defaults 250ms
	// and 1s.
	RateLimitTimeout time.Duration
	RateLimitRetry   time.Duration
	// MaxUpgradesPerIP bounds upgrade attempts per client address per
	// second, MaxConnectionsPerUser a user's live connections on this edge
	// and MaxConnections the edge's; past them the upgrade gets 429.
	// Defaults DefaultMaxUpgradesPerIP, DefaultMaxConnectionsPerUser and
	// DefaultMaxConnections.
	MaxUpgradesPerIP      int
	MaxConnectionsPerUser int
	MaxConnections        int
	// PresenceWatchesPerOrg is how many users of one organization the
	// edge watches the presence of with a subscription each, and
	// MaxPresenceSubscriptions how many such subscriptions it holds in
	// all; past either, an organization's presence comes through one
	// subscription to all its users, filtered here (watches.go). Defaults
	// 1,000 (a conversation's most participants) and 100,000.
	PresenceWatchesPerOrg    int
	MaxPresenceSubscriptions int
	// MaxActivitySubscriptions bounds the conversations the edge follows
	// for conversation:activity (a subscription each, shared by its users;
	// activity.go); past it more are not followed. Default 100,000.
	MaxActivitySubscriptions int
	// MaxJoinsPerConnection bounds the conversations one connection has
	// joined at once; the next conversation:join gets conflict (joining
	// one again does not count twice). Default
	// DefaultMaxJoinsPerConnection.
	MaxJoinsPerConnection int
	// MaxCommandsInFlight bounds the commands of one connection accepted
	// and not yet answered (lanes.go); at the bound the edge reads nothing
	// more from that socket until one is answered. Default
	// DefaultMaxCommandsInFlight.
	MaxCommandsInFlight int
	// Limits are the rate limits in force, shown in the session event.
	// Default limits.Defaults().
	Limits limits.Set
	// ID names this edge (in presence entries and logs). Default random.
	ID string
	// MaxFileBytes bounds an upload (POST /files): a larger one gets 413
	// and nothing is stored. Default files.DefaultMaxFileBytes (25 MiB).
	MaxFileBytes int64
	// FileTimeout bounds one upload or download, body included. Default
	// 10 minutes.
	FileTimeout time.Duration
	// SocketIOConnectTimeout bounds the wait for a Socket.IO session's
	// connect packet (the token). Default 10s.
	SocketIOConnectTimeout time.Duration
	// NoPoller gives every connection a reader goroutine instead of
	// watching idle sockets with epoll (Linux). Default false.
	NoPoller bool
	// Registerer gets the edge's metrics. They are not served by the
	// edge's Handler (a public listener): whoever owns the registry serves
	// it on a listener of its own. Default: a fresh registry.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of the Config fields that a flag shows too (Flags).
const (
	DefaultIdleTimeout           = 60 * time.Second
	DefaultAwayAfter             = 5 * time.Minute
	DefaultMaxUpgradesPerIP      = 100
	DefaultMaxConnectionsPerUser = 10
	DefaultMaxConnections        = 100_000
	DefaultMaxJoinsPerConnection = 500
	DefaultMaxCommandsInFlight   = 8
	DefaultMaxFileBytes          = files.DefaultMaxFileBytes
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.PingInterval, c.IdleTimeout/2)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.RequestTimeout, 5*time.Second)
	def(&c.AttemptTimeout, 2*time.Second)
	def(&c.ExpiryWarning, 30*time.Second)
	def(&c.AuthFailureWindow, time.Minute)
	def(&c.SweepInterval, time.Second)
	def(&c.GapWait, 100*time.Millisecond)
	def(&c.ReceiptInterval, 500*time.Millisecond)
	def(&c.PresenceInterval, 10*time.Second)
	def(&c.AwayAfter, DefaultAwayAfter)
	def(&c.PresenceTimeout, 500*time.Millisecond)
	def(&c.PresenceThrottle, time.Second)
	def(&c.RateLimitTimeout, 250*time.Millisecond)
	def(&c.RateLimitRetry, time.Second)
	def(&c.SocketIOConnectTimeout, 10*time.Second)
	def(&c.FileTimeout, 10*time.Minute)
	if c.MaxFileBytes <= 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	defInt(&c.MaxUpgradesPerIP, DefaultMaxUpgradesPerIP)
	defInt(&c.MaxConnectionsPerUser, DefaultMaxConnectionsPerUser)
	defInt(&c.MaxConnections, DefaultMaxConnections)
	defInt(&c.MaxJoinsPerConnection, DefaultMaxJoinsPerConnection)
	defInt(&c.MaxCommandsInFlight, DefaultMaxCommandsInFlight)
	defInt(&c.PresenceWatchesPerOrg, 1000)
	defInt(&c.MaxPresenceSubscriptions, 100_000)
	defInt(&c.MaxActivitySubscriptions, 100_000)
	defInt(&c.Writers, runtime.GOMAXPROCS(0))
	defInt(&c.MaxMessageBytes, 64<<10)
	defInt(&c.SendQueueFrames, 1024)
	defInt(&c.SendQueueBytes, 4<<20)
	defInt(&c.AuthFailureLimit, 5)
	defInt(&c.InvalidFrameLimit, 10)
	if c.Limits == nil {
		c.Limits = limits.Defaults()
	}
	if c.ID == "" {
		c.ID = ids.New()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is one edge: it accepts WebSockets, runs their commands against
// the services over NATS and fans conversation events out to them.
type Server struct {
	cfg     Config
	nc      *nats.Conn
	auth    *Verifier
	log     *slog.Logger
	metrics *metrics
	hub     *hub
	writers *writers
	poller  *poller     // nil: every connection has a reader goroutine
	pool    gopool.Pool // the poller's readers and the commands' lanes
	limiter *limiter
	admit   *admission
	conns   connSet
	mux     *http.ServeMux
	limits  map[string]limitJSON // the session event's limits
	sio     *socketIO
	js      jetstream.JetStream // publishes file chunks (files.Put)

	warned    sync.Map // key -> *atomic.Int64, see warnEvery
	draining  atomic.Bool
	resync    atomic.Bool        // a presence instance asked for every connection (followPresenceResync)
	resyncSub *nats.Subscription // to names.PresenceResync
	mu        sync.Mutex         // orders readers.Add before Shutdown's Wait
	closed    bool               // guarded by mu: Shutdown is waiting for readers
	readers   sync.WaitGroup     // one per live connection
	stop      chan struct{}      // closes the janitor
	janitor   sync.WaitGroup
	shutdown  sync.Once
}

// New returns an edge that uses nc for everything NATS.
func New(nc *nats.Conn, cfg Config) (*Server, error) {
	cfg.setDefaults()
	v, err := NewVerifier(cfg.Auth)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, nc: nc, auth: v, log: cfg.Logger.With("service", "edge", "edge", cfg.ID), metrics: m, stop: make(chan struct{})}
	if cfg.Auth.Issuer == "" && cfg.Auth.Audience == "" {
		s.log.Warn("no JWT issuer nor audience configured (SWITCHBOARD_JWT_ISSUER, SWITCHBOARD_JWT_AUDIENCE): " +
			"any token the keys verify is accepted, whoever it was minted for")
	}
	s.conns.init()
	if s.js, err = jetstream.New(nc); err != nil {
		return nil, err
	}
	s.limits = s.limitsJSON()
	s.writers = newWriters(cfg.Writers)
	s.hub = newHub(s)
	s.followResyncTriggers()
	if !cfg.NoPoller {
		if p, err := newPoller(); err == nil {
			s.poller = p
		}
	}
	s.limiter = newLimiter(s)
	s.admit = newAdmission(s)
	if err := s.followPresenceResync(); err != nil {
		return nil, err
	}
	s.mux = obs.HealthMux(s.Ready)
	s.mux.HandleFunc("GET /ws", s.accept)
	s.sio = newSocketIO(s)
	s.mux.HandleFunc("/socket.io/", s.acceptSocketIO)
	s.mux.HandleFunc("POST /files", s.upload)
	s.mux.HandleFunc("GET /files/{fileId}", s.download)
	serveApp(s.mux)
	s.janitor.Add(1)
	go s.sweep()
	return s, nil
}

// Handler serves /ws, /socket.io/, /files, the browser app (/), /healthz and
// /readyz: nothing else is on the public listener (no /metrics, whose
// connection gauge names the organizations).
func (s *Server) Handler() http.Handler { return s.mux }

// Ready reports whether the edge takes connections: not draining, and
// connected to NATS.
func (s *Server) Ready() error {
	if s.draining.Load() {
		return errors.New("draining")
	}
	if !s.nc.IsConnected() {
		return errors.New("nats not connected")
	}
	return nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-s.stop
		_ = srv.Close() // hijacked WebSockets are not its: Shutdown closes them
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes every socket with 1012 (restart: come
// back with sinceSeq) and waits for their readers to end, until ctx ends.
// It does not close nc: the caller drains it afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		s.draining.Store(true)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		_ = s.resyncSub.Unsubscribe()
		s.janitor.Wait()
		s.sio.shutdown()
		s.conns.each(func(c *conn) { c.close(CloseRestart, "server restarting", false) })
	})
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
		s.writers.close()
		s.hub.close()
		if s.poller != nil {
			s.poller.close()
		}
		return nil
	case <-ctx.Done():
		s.conns.each(func(c *conn) { _ = c.nc.Close() })
		s.writers.close()
		return ctx.Err()
	}
}

// track counts a new connection's reader, unless the edge is shutting
// down.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.readers.Add(1)
	return true
}

// sweep is the janitor: one goroutine for every connection's timers
// (pings, idle timeout, token expiry), so that an idle connection costs no
// timer and no goroutine of its own.
func (s *Server) sweep() {
	defer s.janitor.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for sweep := uint64(0); ; sweep++ {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			hb := s.newHeartbeats(now, sweep)
			s.conns.each(func(c *conn) { c.tick(now, hb) })
			hb.send(s)
			s.limiter.sweep(now.UnixNano())
			s.admit.sweep(now)
		}
	}
}

// connSet is the set of live connections, sharded to keep lock holds short.
type connSet struct {
	shards [32]struct {
		mu sync.Mutex
		m  map[*conn]struct{}
	}
}

func (cs *connSet) init() {
	for i := range cs.shards {
		cs.shards[i].m = map[*conn]struct{}{}
	}
}

func (cs *connSet) shard(c *conn) int { return int(c.seq % uint64(len(cs.shards))) }

func (cs *connSet) add(c *conn) {
	sh := &cs.shards[cs.shard(c)]
	sh.mu.Lock()
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (cs *connSet) remove(c *conn) {
	sh := &cs.shards[cs.shard(c)]
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

// each calls f for every connection; f must not block.
func (cs *connSet) each(f func(*conn)) {
	var batch []*conn
	for i := range cs.shards {
		sh := &cs.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for c := range sh.m {
			batch = append(batch, c)
		}
		sh.mu.Unlock()
		for _, c := range batch {
			f(c)
		}
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// warnEvery logs a warning at most once per every for key: for failures
// that would otherwise log once per command.
func (s *Server) warnEvery(key string, every time.Duration, msg string, args ...any) {
	now := time.Now().UnixNano()
	v, _ := s.warned.LoadOrStore(key, new(atomic.Int64))
	last := v.(*atomic.Int64)
	if prev := last.Load(); now-prev >= int64(every) && last.CompareAndSwap(prev, now) {
		s.log.Warn(msg, args...)
	}
}
