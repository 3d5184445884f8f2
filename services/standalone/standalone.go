// Package standalone runs all of Switchboard in one process: an embedded
// nats-server with JetStream (unless an external NATS is given) and every
// service on it, each with its own NATS connection as if it ran alone.
//
// The embedded server has the users and permissions of deploy/
// (kit/natsauth) with passwords made up at each start: every service
// connects in process as its own user (which may connect no other way), an
// admin connection sets the streams and buckets up, and the TCP listener
// takes only the backends' users, one per organization.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/obs"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

// Config configures a System; the zero value of each field is its default.
type Config struct {
	// NatsURL, when set, is an external NATS to use instead of the
	// embedded server; NatsCreds are then every service's credentials,
	// and must allow setting JetStream up too (and each service's inbox
	// prefix, names.InboxPrefix).
	NatsURL   string
	NatsCreds string
	// DataDir is the embedded server's JetStream store. Default
	// natsembed.DefaultDir.
	DataDir string
	// NatsListen is the embedded server's client listener, for backends
	// (see Backends). Default "127.0.0.1:-1" (random port); "off": none.
	NatsListen string
	// Backends are the organizations whose backends may connect to the
	// listener, each as its own user (natsauth.Backend(org)), which may
	// act in that organization only: org -> password (plain or bcrypt).
	Backends map[string]string
	// Listen is the edge's listener. Default edge.DefaultListen.
	Listen string
	// Listener, when set, is used instead of Listen.
	Listener net.Listener
	// MetricsListen is the listener of /metrics (every part's, one
	// registry), /healthz and /readyz; the edge's public listener serves
	// no metrics. Default "": none (port 0 is a random port).
	MetricsListen string

	Edge      edge.Config
	Messaging messaging.Config
	Presence  presence.Config
	// RateLimit's Limits default to Edge.Limits: the edge shows the limits
	// the service enforces.
	RateLimit ratelimit.Config

	// Registry gets every service's metrics, served on MetricsListen.
	// Default: a fresh one.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// System is a running standalone Switchboard.
type System struct {
	NATS      *server.Server // nil with an external NATS
	Edge      *edge.Server
	Messaging *messaging.Service
	Presence  *presence.Service
	RateLimit *ratelimit.Limiter

	ln        net.Listener
	metrics   *http.Server // nil without MetricsListen
	mln       net.Listener
	conns     []*nats.Conn
	serve     chan error
	passwords map[string]string // of the embedded server's service users
	listening bool              // the embedded server has a listener
}

// Start starts the system and returns once every part is ready.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = obs.NewRegistry()
	}
	if cfg.Listen == "" {
		cfg.Listen = edge.DefaultListen
	}
	sys := &System{serve: make(chan error, 1)}
	defer func() {
		if err != nil {
			sys.close()
		}
	}()
	if cfg.NatsURL == "" {
		if err := sys.startNATS(cfg); err != nil {
			return nil, err
		}
		cfg.Logger.Info("embedded nats started", "url", sys.NatsURL(), "store", sys.NATS.StoreDir())
	}
	connect := func(user string) (*nats.Conn, error) {
		nc, err := sys.connect(cfg, user)
		if err == nil {
			sys.conns = append(sys.conns, nc)
		}
		return nc, err
	}
	admin, err := sys.connect(cfg, natsauth.Admin)
	if err != nil {
		return nil, err
	}
	err = Setup(ctx, admin, cfg)
	admin.Close()
	if err != nil {
		return nil, err
	}

	mc := cfg.Messaging
	mc.Registerer, mc.Logger = cfg.Registry, cfg.Logger
	nc, err := connect(natsauth.Messaging)
	if err != nil {
		return nil, err
	}
	if sys.Messaging, err = messaging.New(ctx, nc, mc); err != nil {
		return nil, fmt.Errorf("messaging: %w", err)
	}

	pc := cfg.Presence
	pc.Registerer, pc.Logger = cfg.Registry, cfg.Logger
	if nc, err = connect(natsauth.Presence); err != nil {
		return nil, err
	}
	if sys.Presence, err = presence.New(ctx, nc, pc); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}

	rc := rateLimitConfig(cfg)
	rc.Registerer, rc.Logger = cfg.Registry, cfg.Logger
	if nc, err = connect(natsauth.RateLimit); err != nil {
		return nil, err
	}
	if sys.RateLimit, err = ratelimit.New(ctx, nc, rc); err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}

	ec := cfg.Edge
	ec.Registerer, ec.Logger = cfg.Registry, cfg.Logger
	if nc, err = connect(natsauth.Edge); err != nil {
		return nil, err
	}
	if sys.Edge, err = edge.New(nc, ec); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	sys.ln = cfg.Listener
	if sys.ln == nil {
		if sys.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, err
		}
	}
	if err := sys.serveMetrics(cfg); err != nil {
		return nil, err
	}
	go func() { sys.serve <- sys.Edge.Serve(sys.ln) }()
	return sys, nil
}

// serveMetrics starts the metrics listener, when there is one.
func (s *System) serveMetrics(cfg Config) error {
	if cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	s.mln = ln
	s.metrics = &http.Server{Handler: obs.Mux(cfg.Registry, s.Edge.Ready), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("metrics listener", "err", err)
		}
	}()
	cfg.Logger.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the edge's listening address.
func (s *System) Addr() string { return s.ln.Addr().String() }

// MetricsAddr is the metrics listener's address ("" without one).
func (s *System) MetricsAddr() string {
	if s.mln == nil {
		return ""
	}
	return s.mln.Addr().String()
}

// NatsURL is the URL of the embedded server's listener ("" with an
// external NATS or without a listener).
func (s *System) NatsURL() string {
	if s.NATS == nil || !s.listening {
		return ""
	}
	return s.NATS.ClientURL()
}

// Shutdown stops in order: the edge (sockets closed with 1012), then the
// services (in-flight commands finish), then NATS connections are drained
// and the embedded server stops.
func (s *System) Shutdown(ctx context.Context) error {
	var errList []error
	if s.Edge != nil {
		errList = append(errList, s.Edge.Shutdown(ctx))
	}
	if s.Messaging != nil {
		errList = append(errList, s.Messaging.Stop(ctx))
	}
	if s.Presence != nil {
		errList = append(errList, s.Presence.Stop(ctx))
	}
	if s.RateLimit != nil {
		errList = append(errList, s.RateLimit.Stop(ctx))
	}
	s.close()
	return errors.Join(errList...)
}

func (s *System) close() {
	for _, nc := range s.conns {
		_ = natsx.Drain(nc, 5*time.Second)
	}
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.metrics != nil {
		_ = s.metrics.Close()
	}
	if s.NATS != nil {
		s.NATS.Shutdown()
		s.NATS.WaitForShutdown()
	}
}
