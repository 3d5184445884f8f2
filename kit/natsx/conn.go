// Package natsx holds what every service does with NATS: connect, set up
// JetStream state, and read streams through the direct get API in batches.
// It does not link nats-server: an embedded server (kit/natsembed) is
// reached through nats.InProcessConnProvider.
package natsx

import (
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
}

// Connect connects with reconnects forever: a service never gives up on its
// NATS, it waits for it.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
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
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
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
