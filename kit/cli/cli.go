// Package cli is what every service binary's main shares: the common flags
// (bound to SWITCHBOARD_* variables), the logger, the NATS connection, the
// metrics listener and the signal handling.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/conf"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/obs"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Common holds the flags every service binary takes.
type Common struct {
	NatsURL       string
	NatsCreds     string
	NatsInbox     string
	MetricsListen string
	Replicas      int
	LogLevel      string
	PprofListen   string
}

// DefaultMetricsListen is the metrics listener of a service binary: off,
// as several may run on one host. The edge binary sets its own default.
const DefaultMetricsListen = "127.0.0.1:0"

// Register adds the common flags to fs. A MetricsListen already set is the
// binary's default for -metrics-listen (else DefaultMetricsListen).
func (c *Common) Register(fs *flag.FlagSet) {
	metrics := c.MetricsListen
	if metrics == "" {
		metrics = DefaultMetricsListen
	}
	fs.StringVar(&c.NatsURL, "nats-url", "", "NATS servers to use (comma-separated); required for a service binary")
	fs.StringVar(&c.MetricsListen, "metrics-listen", metrics, "Prometheus /metrics, /healthz and /readyz listener (port 0: off)")
	fs.StringVar(&c.NatsInbox, "nats-inbox-prefix", "", "inbox prefix of the NATS user (default _INBOX_<service>, which deploy/'s users may subscribe to)")
	c.RegisterShared(fs)
}

// RegisterShared adds the common flags that the standalone binary takes
// too: all but -nats-url (there it may be empty) and -metrics-listen
// (the standalone registers its own, with the edge's default).
func (c *Common) RegisterShared(fs *flag.FlagSet) {
	fs.StringVar(&c.NatsCreds, "nats-creds", "", "NATS credentials file")
	fs.IntVar(&c.Replicas, "replicas", 1, "replicas of JetStream streams and buckets, when this binary creates them (a user that may; else switchboard -setup does)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.PprofListen, "pprof-listen", "", "net/http/pprof listener for profiling (empty: off; keep it on loopback)")
}

// Env is what Main hands a service: a connection and somewhere to report.
type Env struct {
	Log      *slog.Logger
	NC       *nats.Conn
	Registry *prometheus.Registry
	Common   Common
}

// Main parses flags and env, connects to NATS, runs start, serves metrics,
// and on SIGINT or SIGTERM calls the returned stop and drains NATS.
func Main(name string, fs *flag.FlagSet, common *Common, start func(ctx context.Context, env Env) (stop func(context.Context) error, err error)) {
	if err := conf.Parse(fs, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := obs.NewLogger(os.Stderr, common.LogLevel).With("service", name)
	if err := run(name, common, log, start); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(name string, common *Common, log *slog.Logger, start func(context.Context, Env) (func(context.Context) error, error)) error {
	if common.NatsURL == "" {
		return errors.New("SWITCHBOARD_NATS_URL (-nats-url) is required; the standalone binary embeds NATS")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	inbox := common.NatsInbox
	if inbox == "" {
		inbox = names.InboxPrefix(name)
	}
	nc, err := natsx.Connect(natsx.ConnConfig{URL: common.NatsURL, Creds: common.NatsCreds, InboxPrefix: inbox, Name: name, Logger: log})
	if err != nil {
		return err
	}
	reg := obs.NewRegistry()
	stop, err := start(ctx, Env{Log: log, NC: nc, Registry: reg, Common: *common})
	if err != nil {
		nc.Close()
		return err
	}
	ready := func() error {
		if !nc.IsConnected() {
			return errors.New("nats not connected")
		}
		return nil
	}
	ms, err := obs.Serve(common.MetricsListen, obs.Mux(reg, ready), log)
	if err != nil {
		return err
	}
	ps, err := obs.Serve(common.PprofListen, obs.PprofMux(), log)
	if err != nil {
		return err
	}
	defer func() { _ = ps.Shutdown(context.Background()) }()
	log.Info("started")
	<-ctx.Done()
	log.Info("stopping")
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	if err := stop(sctx); err != nil {
		log.Warn("stop", "err", err)
	}
	_ = ms.Shutdown(sctx)
	return natsx.Drain(nc, 10*time.Second)
}
