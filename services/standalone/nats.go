package standalone

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

// startNATS starts the embedded server with deploy/'s users: the admin and
// the services with new passwords, reachable in process only, and the
// backends over TCP only.
func (s *System) startNATS(cfg Config) error {
	s.passwords = map[string]string{}
	users := natsauth.Services(func(user string) string {
		s.passwords[user] = natsauth.NewPassword()
		return s.passwords[user]
	})
	for i := range users {
		users[i].ConnectionTypes = []string{natsauth.InProcess}
	}
	orgs := make([]string, 0, len(cfg.Backends))
	for org := range cfg.Backends {
		orgs = append(orgs, org)
	}
	slices.Sort(orgs)
	for _, org := range orgs {
		u := natsauth.BackendUser(org, cfg.Backends[org])
		u.ConnectionTypes = []string{natsauth.Standard}
		users = append(users, u)
	}
	accounts, err := natsauth.Config(users, "")
	if err != nil {
		return fmt.Errorf("embedded nats users: %w", err)
	}
	s.listening = cfg.NatsListen != "off"
	listen := cfg.NatsListen
	if !s.listening {
		listen = ""
	}
	s.NATS, err = natsembed.Start(natsembed.Config{Dir: cfg.DataDir, Listen: listen, NoListen: !s.listening, ConfigString: accounts})
	return err
}

// connect connects as user: in process to the embedded server, or to the
// external NATS with its credentials; replies come under the user's own
// inbox prefix either way.
func (s *System) connect(cfg Config, user string) (*nats.Conn, error) {
	cc := natsx.ConnConfig{Name: user, InboxPrefix: names.InboxPrefix(user), Logger: cfg.Logger}
	if s.NATS != nil {
		cc.InProcess, cc.User, cc.Password = s.NATS, user, s.passwords[user]
	} else {
		cc.URL, cc.Creds = cfg.NatsURL, cfg.NatsCreds
	}
	return natsx.Connect(cc)
}

// ErrExternalNATS is ConnectAs on a system without an embedded server.
var ErrExternalNATS = errors.New("standalone: no embedded nats server")

// ConnectAs connects to the embedded server in process as one of the
// service users (natsauth.Edge, Messaging, Presence, RateLimit, Admin), with
// its permissions and inbox prefix: another instance of a service, as a
// test or an embedding program starts one. The caller closes it.
func (s *System) ConnectAs(user string) (*nats.Conn, error) {
	if s.NATS == nil {
		return nil, ErrExternalNATS
	}
	if _, ok := s.passwords[user]; !ok {
		return nil, fmt.Errorf("standalone: no service user %q", user)
	}
	return s.connect(Config{}, user)
}

// Setup creates every service's streams and buckets for cfg, or updates
// them to it, on nc: a user that may manage JetStream (natsauth.Admin).
// Start does it first; `switchboard -setup` does it for a cluster.
func Setup(ctx context.Context, nc *nats.Conn, cfg Config) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := messaging.Setup(ctx, js, cfg.Messaging); err != nil {
		return fmt.Errorf("messaging setup: %w", err)
	}
	if err := presence.Setup(ctx, js, cfg.Presence); err != nil {
		return fmt.Errorf("presence setup: %w", err)
	}
	if err := ratelimit.Setup(ctx, js, rateLimitConfig(cfg)); err != nil {
		return fmt.Errorf("ratelimit setup: %w", err)
	}
	return nil
}

// rateLimitConfig is cfg.RateLimit with the edge's limits when it has none:
// the edge shows the limits the service enforces.
func rateLimitConfig(cfg Config) ratelimit.Config {
	rc := cfg.RateLimit
	if rc.Limits == nil {
		rc.Limits = cfg.Edge.Limits
	}
	return rc
}
