// Package presence is the authority on who is connected and their status.
//
// Every live connection is one key of the chat_presence bucket,
// <org>.<user>.<connection>, with a per-key TTL (Config.TTL). Edges
// publish the state of their connections on chat.cmd.presence.<org>.update:
// at once when one connects, changes status or closes, and every heartbeat
// interval for all of them in batches; each entry renews the key's TTL. A
// crashed edge stops renewing and its connections expire by themselves.
// <org>.<user> (two tokens) holds when the user was last seen.
//
// Each instance watches the whole bucket and keeps a view of every
// connection, from which it answers queries and derives each user's status:
// online if any connection is online, away if all are away, offline if
// none. Changes are published on chat.evt.presence.<org>.<user>, at most
// one per user per Interval, and offline only after Grace without a
// connection coming back, so that a quick reconnect does not flap. Several
// instances publish the same changes; edges drop the repeats.
package presence

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Statuses.
const (
	Online  = "online"
	Away    = "away"
	Offline = "offline"
)

// Config configures a Service; the zero value of each field is its default.
type Config struct {
	// TTL of a connection's key without renewal; whole seconds. Default
	// DefaultTTL.
	TTL time.Duration
	// Grace before a user without connections is published offline.
	// Default DefaultGrace.
	Grace time.Duration
	// Interval is the least time between two presence events of one user.
	// Default 1s.
	Interval time.Duration
	// Replicas of the bucket. Default 1.
	Replicas int
	// Workers bounds the commands handled at once. Default 256.
	Workers int
	// Registerer gets the metrics. Default: not exported.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of the Config fields that a flag shows too.
const (
	DefaultTTL   = 30 * time.Second
	DefaultGrace = 5 * time.Second
)

func (c *Config) setDefaults() {
	if c.TTL < time.Second {
		c.TTL = DefaultTTL
	}
	c.TTL = c.TTL.Round(time.Second)
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

// Service is one presence instance.
type Service struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream // behind kv: raw reads of markers
	log    *slog.Logger
	srv    *svc.Server

	view    *view
	metrics *metrics

	cancel context.CancelFunc
	wg     sync.WaitGroup // the watcher
}

// Setup creates the bucket of a Service with cfg, or updates it to it. It
// needs a NATS user that may manage JetStream (an admin); New only opens it
// (natsx.Open).
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg.setDefaults()
	_, err := natsx.KV(ctx, js, bucketConfig(cfg), natsx.Update)
	return err
}

func bucketConfig(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: names.BucketPresence, Description: "live connections (per-key TTL) and last-seen times",
		History: 1, LimitMarkerTTL: time.Second, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	}
}

// New opens the bucket (creating it when missing, see natsx.Open), loads
// the current connections and starts answering commands.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, nc: nc, js: js, log: cfg.Logger.With("service", names.Presence)}
	if s.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	if s.kv, err = natsx.KV(ctx, js, bucketConfig(cfg), natsx.Open); err != nil {
		return nil, err
	}
	if s.stream, err = js.Stream(ctx, names.KVStream(names.BucketPresence)); err != nil {
		return nil, err
	}
	s.view = newView(s)
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.watch(ctx, wctx); err != nil {
		cancel()
		return nil, err
	}
	s.srv, err = svc.New(nc, svc.Config{Name: names.Presence, Workers: cfg.Workers, Registerer: cfg.Registerer, Logger: s.log})
	if err != nil {
		s.Stop(ctx)
		return nil, err
	}
	for _, err := range []error{
		svc.Handle(s.srv, names.ActionUpdate, s.update),
		svc.Handle(s.srv, names.ActionQuery, s.query),
	} {
		if err != nil {
			s.Stop(ctx)
			return nil, fmt.Errorf("presence endpoints: %w", err)
		}
	}
	// Heartbeats sent while no instance ran were lost: ask every edge for
	// all its connections now (the view holds back the offline
	// announcements of entries that expire meanwhile, see view.hold).
	if err := nc.Publish(names.PresenceResync, nil); err != nil {
		s.log.Warn("ask edges to report their connections", "err", err)
	}
	return s, nil
}

// Stop stops taking commands, finishes those in flight and stops watching.
func (s *Service) Stop(ctx context.Context) error {
	var err error
	if s.srv != nil {
		err = s.srv.Stop(ctx)
	}
	s.cancel()
	s.wg.Wait()
	s.view.stop()
	return err
}

type metrics struct {
	writes    *prometheus.CounterVec // kind
	published *prometheus.CounterVec // status
	conns     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_presence_writes_total", Help: "chat_presence writes by kind (renew, create, gone, conflict).",
		}, []string{"kind"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_presence_events_total", Help: "Presence events published, by status.",
		}, []string{"status"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_presence_connections", Help: "Live connections in this instance's view.",
		}),
	}
	for _, c := range []prometheus.Collector{m.writes, m.published, m.conns} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
