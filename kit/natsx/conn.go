// Package natsx holds what every service does with NATS: connect, set up
// JetStream state, and read streams through the direct get API in batches.
// It does not link nats-server: an embedded server (kit/natsembed) is
// reached through nats.InProcessConnProvider.
package natsx

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnConfig says how a service reaches NATS.
type ConnConfig struct {
	// URL lists the servers, comma-separated. Ignored when InProcess is set.
	URL string
	// Creds is a credentials file; empty for none.
	Creds string
	// User and Password authenticate (as does user:password@ in URL).
	User, Password string
	// InboxPrefix replaces _INBOX for replies: a NATS user may subscribe to
	// its own inbox prefix only (names.InboxPrefix). Default _INBOX.
	InboxPrefix string
	// InProcess, when set, is an embedded server (a *server.Server from
	// kit/natsembed) to connect to in-process, without a socket.
	InProcess nats.InProcessConnProvider
	// Name is the connection name servers show (the service name).
	Name string
	// Logger gets reconnects and asynchronous errors. Default slog.Default().
	Logger *slog.Logger
	// ConnectWait is how long the first connection is tried, with a log
	// line each time, before Connect gives up (services started before
	// their NATS wait for it). Default DefaultConnectWait; negative: one
	// try.
	ConnectWait time.Duration
}

// DefaultConnectWait is ConnConfig.ConnectWait's default.
const DefaultConnectWait = time.Minute

// Connect connects, trying the first connection for up to
// cfg.ConnectWait, and then reconnects forever: a service never gives up
// on its NATS once it had it. A refused credential is final at once.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	wait := cfg.ConnectWait
	if wait == 0 {
		wait = DefaultConnectWait
	}
	deadline := time.Now().Add(wait)
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := connectOnce(cfg, log)
		if err == nil {
			if attempt > 1 {
				log.Info("nats connected", "server", nc.ConnectedUrlRedacted(), "attempts", attempt)
			}
			return nc, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || wait < 0 || time.Now().Add(pause).After(deadline) {
			return nil, fmt.Errorf("connect to nats: %w", err)
		}
		log.Warn("waiting for nats", "attempt", attempt, "err", err, "next_in", pause, "gives_up_in", time.Until(deadline).Round(time.Second))
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Second)
	}
}

func connectOnce(cfg ConnConfig, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.PingInterval(20 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats async error", "err", err, "subject", subject)
		}),
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	if cfg.InProcess != nil {
		// The URL only fills the server pool; no socket is dialed.
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	return nats.Connect(cfg.URL, opts...)
}

// Drain drains nc (subscriptions finish what they hold, publishes are
// flushed) and waits until it is closed, or closes it after timeout.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	if nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return fmt.Errorf("nats drain timed out after %v", timeout)
	}
}
