// Command switchboard runs the whole system in one process: an embedded
// nats-server with JetStream and every service. It is what `make run`
// starts, and fits a laptop, a test or a small deployment.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/kit/conf"
	"github.com/switchboard-chat/switchboard/kit/devtoken"
	"github.com/switchboard-chat/switchboard/kit/obs"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
	"github.com/switchboard-chat/switchboard/services/standalone"
)

func main() {
	fs := flag.NewFlagSet("switchboard", flag.ExitOnError)
	natsURL := fs.String("nats-url", "", "external NATS servers; empty: an embedded server")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file")
	dataDir := fs.String("data-dir", "./data", "JetStream store of the embedded server")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "client listener of the embedded server, for internal services")
	replicas := fs.Int("replicas", 1, "replicas of JetStream streams and buckets")
	retention := fs.Duration("retention", 7*24*time.Hour, "how long conversation events are kept")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pprofListen := fs.String("pprof-listen", "", "net/http/pprof listener for profiling (empty: off; keep it on loopback)")
	presenceTTL := fs.Duration("presence-ttl", 30*time.Second, "a connection without a heartbeat for this long is offline")
	presenceGrace := fs.Duration("presence-grace", 5*time.Second, "how long a user without connections stays shown before offline")
	var ef edge.Flags
	ef.Register(fs)
	if err := conf.Parse(fs, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := obs.NewLogger(os.Stderr, *logLevel)

	dev := !ef.HasKey()
	if dev {
		ef.JWTSecret = devtoken.Secret()
	}
	ec, err := ef.Config()
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	sys, err := standalone.Start(ctx, standalone.Config{
		NatsURL: *natsURL, NatsCreds: *natsCreds, DataDir: *dataDir, NatsListen: *natsListen,
		Listen:    ef.Listen,
		Edge:      ec,
		Messaging: messaging.Config{Replicas: *replicas, Retention: *retention},
		Presence:  presence.Config{Replicas: *replicas, TTL: *presenceTTL, Grace: *presenceGrace},
		RateLimit: ratelimit.Config{Replicas: *replicas},
		Logger:    log,
	})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	log.Info("switchboard ready", "ws", "ws://"+sys.Addr()+"/ws", "nats", sys.NatsURL())
	if ps, err := obs.Serve(*pprofListen, obs.PprofMux(), log); err != nil {
		log.Warn("pprof listener", "err", err)
	} else {
		defer func() { _ = ps.Shutdown(context.Background()) }()
	}
	if dev {
		printDevStart(ef.JWTSecret, sys.Addr())
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := sys.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
}

// printDevStart tells a developer how to connect, loudly.
func printDevStart(secret, addr string) {
	alice := devtoken.Mint([]byte(secret), "demo", "alice", 24*time.Hour)
	bob := devtoken.Mint([]byte(secret), "demo", "bob", 24*time.Hour)
	fmt.Fprintf(os.Stderr, `
================================================================================
  DEVELOPMENT START - NOT FOR PRODUCTION
  No JWT key was configured (SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWT_PUBLIC_KEYS),
  so this run made up a random HS256 secret. Anyone with it can sign tokens.

  secret: %s

  Tokens valid for 24 hours, org "demo":
  alice:  %s
  bob:    %s

  Try:  npx wscat -c "ws://%s/ws?access_token=<token>"
================================================================================

`, secret, alice, bob, addr)
}
