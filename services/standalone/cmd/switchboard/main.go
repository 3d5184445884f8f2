// Command switchboard runs the whole system in one process: an embedded
// nats-server with JetStream and every service. It is what `make run`
// starts, and fits a laptop, a test or a small deployment.
//
// With -setup it instead sets up the streams and buckets of every service
// on -nats-url, as a user that may manage JetStream, and exits: the step a
// cluster (deploy/cluster.sh) runs once before its services, whose users
// may not.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/kit/cli"
	"github.com/switchboard-chat/switchboard/kit/conf"
	"github.com/switchboard-chat/switchboard/kit/devtoken"
	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/kit/obs"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
	"github.com/switchboard-chat/switchboard/services/standalone"
)

func main() {
	fs := flag.NewFlagSet("switchboard", flag.ExitOnError)
	var common cli.Common
	common.RegisterShared(fs)
	natsURL := fs.String("nats-url", "", "external NATS servers; empty: an embedded server")
	dataDir := fs.String("data-dir", natsembed.DefaultDir, "JetStream store of the embedded server")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "client listener of the embedded server, for backends (\"off\": none)")
	backendsFile := fs.String("nats-backends-file", "", "backends' NATS users of the embedded server: one \"<org> <password>\" a line (plain or bcrypt)")
	setup := fs.Bool("setup", false, "set up the streams and buckets on -nats-url (a user that may manage JetStream) and exit")
	retention := fs.Duration("retention", messaging.DefaultRetention, "how long conversation events are kept")
	metricsListen := fs.String("metrics-listen", edge.DefaultMetricsListen, "Prometheus /metrics, /healthz and /readyz listener, every service's (empty or port 0: off; the WebSocket listener serves no metrics)")
	streamMax := fs.Int64("stream-max-bytes", messaging.DefaultStreamMaxBytes, "size limit of the events stream and of the message state bucket, in bytes (-1: none)")
	kvMax := fs.Int64("kv-max-bytes", messaging.DefaultBucketMaxBytes, "size limit of each other messaging bucket, in bytes (-1: none)")
	filesMax := fs.Int64("files-max-bytes", files.DefaultBucketMaxBytes, "size limit of the chat_files object store of uploads, in bytes (-1: none)")
	unattached := fs.Duration("file-unattached-ttl", files.DefaultUnattachedTTL, "uploads not attached to a message within this long are removed")
	presenceTTL := fs.Duration("presence-ttl", presence.DefaultTTL, "a connection without a heartbeat for this long is offline")
	presenceGrace := fs.Duration("presence-grace", presence.DefaultGrace, "how long a user without connections stays shown before offline")
	var ef edge.Flags
	ef.Register(fs)
	if err := conf.Parse(fs, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := obs.NewLogger(os.Stderr, common.LogLevel)
	services := standalone.Config{
		Messaging: messaging.Config{Replicas: common.Replicas, Retention: *retention, StreamMaxBytes: *streamMax, BucketMaxBytes: *kvMax,
			FilesMaxBytes: *filesMax, FileUnattachedTTL: *unattached},
		Presence:  presence.Config{Replicas: common.Replicas, TTL: *presenceTTL, Grace: *presenceGrace},
		RateLimit: ratelimit.Config{Replicas: common.Replicas},
	}
	if *setup {
		if err := setupOnly(*natsURL, common.NatsCreds, services); err != nil {
			log.Error("setup", "err", err)
			os.Exit(1)
		}
		log.Info("streams and buckets set up", "nats", redactURLs(*natsURL))
		return
	}
	backends, err := loadBackends(*backendsFile)
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(2)
	}

	dev := !ef.HasKey()
	if dev {
		ef.JWTSecret = devtoken.Secret()
		if backends["demo"] == "" {
			backends["demo"] = natsauth.NewPassword()
		}
	}
	ec, err := ef.Config()
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	sys, err := standalone.Start(ctx, standalone.Config{
		NatsURL: *natsURL, NatsCreds: common.NatsCreds, DataDir: *dataDir, NatsListen: *natsListen, Backends: backends,
		Listen:        ef.Listen,
		MetricsListen: metricsAddr(*metricsListen),
		Edge:          ec,
		Messaging:     services.Messaging,
		Presence:      services.Presence,
		RateLimit:     services.RateLimit,
		Logger:        log,
	})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	log.Info("switchboard ready", "ws", "ws://"+sys.Addr()+"/ws", "socketio", "http://"+sys.Addr()+"/socket.io/", "app", "http://"+sys.Addr()+"/", "nats", sys.NatsURL())
	if ps, err := obs.Serve(common.PprofListen, obs.PprofMux(), log); err != nil {
		log.Warn("pprof listener", "err", err)
	} else {
		defer func() { _ = ps.Shutdown(context.Background()) }()
	}
	if dev {
		printDevStart(ef.JWTSecret, sys.Addr(), backendURL(sys.NatsURL(), "demo", backends["demo"]))
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := sys.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
}

// metricsAddr is the metrics listener to start: none for "" or port 0, as
// for every other binary's SWITCHBOARD_METRICS_LISTEN.
func metricsAddr(listen string) string {
	if strings.HasSuffix(listen, ":0") {
		return ""
	}
	return listen
}

// printDevStart tells a developer how to connect, loudly.
func printDevStart(secret, addr, backend string) {
	alice := devtoken.Mint([]byte(secret), "demo", "alice", 24*time.Hour)
	bob := devtoken.Mint([]byte(secret), "demo", "bob", 24*time.Hour)
	if backend == "" {
		backend = "(none: the embedded NATS has no listener)"
	}
	fmt.Fprintf(os.Stderr, `
================================================================================
  DEVELOPMENT START - NOT FOR PRODUCTION
  No JWT key was configured (SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWT_PUBLIC_KEYS),
  so this run made up a random HS256 secret. Anyone with it can sign tokens.

  secret: %s

  Tokens valid for 24 hours, org "demo":
  alice:  %s
  bob:    %s

  The app:  http://%s/  (paste a token; one browser tab per user)
  Try:      npx wscat -c "ws://%s/ws?access_token=<token>"

  A backend of org "demo" posts over NATS as this user (inbox prefix %s,
  subjects chat.sys.messaging.demo.<action>; see the README):
  %s
================================================================================

`, secret, alice, bob, addr, addr, names.InboxPrefix(natsauth.Backend("demo")), backend)
}
