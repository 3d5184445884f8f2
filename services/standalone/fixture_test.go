package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/devtoken"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/edge"
)

// wait is how long a test waits for any one frame.
const wait = 5 * time.Second

var secret = []byte("test-secret-0123456789abcdef0123456789")

// backendPassword is the password of org acme's backend user in start's
// systems.
const backendPassword = "acme-backend-test-password"

// fixture is a running system as one test sees it: its helpers, and those
// of the clients it dials, fail t and clean up when t ends. A subtest takes
// its own view with f.with(t), else its failures are reported on (and
// stop) the parent test.
type fixture struct {
	t *testing.T
	*endpoint
}

// endpoint is what every view of one fixture shares.
type endpoint struct {
	sys *System // nil for an edge of serveEdge without a system
	url string
	ids atomic.Int64 // numbers command ids and clientMsgIds
}

func newFixture(t *testing.T, sys *System, url string) *fixture {
	return &fixture{t: t, endpoint: &endpoint{sys: sys, url: url}}
}

// with is f as test t sees it.
func (f *fixture) with(t *testing.T) *fixture { return &fixture{t: t, endpoint: f.endpoint} }

// start runs a standalone system on a temp dir and a random port.
func start(t *testing.T, mods ...func(*Config)) *fixture {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger(),
		Backends: map[string]string{"acme": backendPassword}}
	cfg.Edge.Auth = edge.AuthConfig{Secret: secret}
	// Tests of other features send and dial in bursts; the tests of limits
	// set theirs.
	cfg.Edge.Limits = generous()
	cfg.Edge.MaxConnectionsPerUser = 1000
	cfg.Edge.MaxUpgradesPerIP = 10000
	for _, m := range mods {
		m(&cfg)
	}
	return startWith(t, cfg)
}

func startWith(t *testing.T, cfg Config) *fixture {
	t.Helper()
	sys, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, sys, "ws://"+sys.Addr()+"/ws")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Shutdown(ctx)
	})
	return f
}

// natsAs connects to the system's embedded server in process as one of
// its service users (natsauth.Edge, ...), closed by t.Cleanup.
func (f *fixture) natsAs(user string) *nats.Conn {
	f.t.Helper()
	nc, err := f.sys.ConnectAs(user)
	if err != nil {
		f.t.Fatalf("connect as %s: %v", user, err)
	}
	f.t.Cleanup(nc.Close)
	return nc
}

// backend connects to the system's NATS listener as acme's backend user,
// the way the README shows, closed by t.Cleanup.
func (f *fixture) backend() *nats.Conn {
	f.t.Helper()
	user := natsauth.Backend("acme")
	nc, err := nats.Connect(f.sys.NatsURL(), nats.UserInfo(user, backendPassword), nats.CustomInboxPrefix(names.InboxPrefix(user)))
	if err != nil {
		f.t.Fatalf("connect as %s: %v", user, err)
	}
	f.t.Cleanup(nc.Close)
	return nc
}

func testLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOGS") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

func token(org, user string) string { return devtoken.Mint(secret, org, user, time.Hour) }

// dial connects user of org and takes the session event.
func (f *fixture) dial(org, user string) *client {
	f.t.Helper()
	c, err := wsclient.DialToken(context.Background(), f.url, token(org, user))
	if err != nil {
		f.t.Fatalf("dial %s/%s: %v", org, user, err)
	}
	f.t.Cleanup(c.Kill)
	if _, err := c.Next("session", wait); err != nil {
		f.t.Fatalf("session event: %v", err)
	}
	return &client{Client: c, f: f, name: org + "/" + user}
}

// client wraps a connection with assertions; they fail the test of its
// fixture. A subtest that uses a client of its parent takes its own view
// with c.with(t).
type client struct {
	*wsclient.Client
	f    *fixture
	name string
}

// with is c as test t sees it: the same connection, failures on t.
func (c *client) with(t *testing.T) *client {
	return &client{Client: c.Client, f: c.f.with(t), name: c.name}
}

// do runs a command and returns the ack's data, failing on anything else.
func (c *client) do(typ string, data any) json.RawMessage {
	c.f.t.Helper()
	r := c.try(typ, data)
	if r.Type != "ack" {
		c.f.t.Fatalf("%s %s: got %s", c.name, typ, r)
	}
	return r.Data
}

// try runs a command and returns its reply, whatever it is.
func (c *client) try(typ string, data any) wsclient.Frame {
	c.f.t.Helper()
	id := fmt.Sprintf("c-%d", c.f.ids.Add(1))
	r, err := c.Request(id, typ, data, wait)
	if err != nil {
		c.f.t.Fatalf("%s %s: %v", c.name, typ, err)
	}
	return r
}

// fails runs a command that must fail with frame type typ and code.
func (c *client) fails(typ string, data any, replyType, code string) wsclient.Frame {
	c.f.t.Helper()
	r := c.try(typ, data)
	var d struct {
		Code string `json:"code"`
	}
	_ = r.Decode(&d)
	if r.Type != replyType || d.Code != code {
		c.f.t.Fatalf("%s %s: got %s, want %s/%s", c.name, typ, r, replyType, code)
	}
	return r
}

// event waits for the next event of type typ.
func (c *client) event(typ string) wsclient.Frame {
	c.f.t.Helper()
	e, err := c.Next(typ, wait)
	if err != nil {
		c.f.t.Fatalf("%s waiting for %s: %v (queued: %v)", c.name, typ, err, c.Pending())
	}
	return e
}

// none asserts that no frame of type typ arrives within d.
func (c *client) none(typ string, d time.Duration) {
	c.f.t.Helper()
	if e, err := c.Next(typ, d); err == nil {
		c.f.t.Fatalf("%s got an unexpected %s: %s", c.name, typ, e)
	}
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

type createAck struct {
	ConversationID string   `json:"conversationId"`
	Participants   []string `json:"participants"`
}

type sendAck struct {
	MessageID string `json:"messageId"`
	Seq       uint64 `json:"seq"`
	CreatedAt string `json:"createdAt"`
	Duplicate bool   `json:"duplicate"`
}

type msgEvent struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	SenderID       string `json:"senderId"`
	Content        string `json:"content"`
	ClientMsgID    string `json:"clientMsgId"`
}

type joinAckJSON struct {
	Conversation struct {
		ConversationID string   `json:"conversationId"`
		Participants   []string `json:"participants"`
		CreatedBy      string   `json:"createdBy"`
	} `json:"conversation"`
	LastSeq   uint64            `json:"lastSeq"`
	Missed    []wsclient.Frame  `json:"missed"`
	Truncated bool              `json:"truncated"`
	Receipts  []json.RawMessage `json:"receipts"`
	Presence  []json.RawMessage `json:"presence"`
	Typing    []string          `json:"typing"`
}

func (c *client) create(others ...string) string {
	c.f.t.Helper()
	if others == nil {
		others = []string{}
	}
	return decode[createAck](c.f.t, c.do("conversation:create", map[string]any{"participants": others, "title": "room"})).ConversationID
}

func (c *client) join(conv string) joinAckJSON {
	c.f.t.Helper()
	return decode[joinAckJSON](c.f.t, c.do("conversation:join", map[string]any{"conversationId": conv}))
}

func (c *client) send(conv, content string) sendAck {
	c.f.t.Helper()
	return decode[sendAck](c.f.t, c.do("message:send", map[string]any{"conversationId": conv, "content": content, "clientMsgId": fmt.Sprintf("m-%d", c.f.ids.Add(1))}))
}

// generous are limits that tests which send in bursts do not reach.
func generous() limits.Set {
	s, err := limits.Parse(limits.Defaults(), "message:send=100000/1s,message:typing=100000/1s,message:react=100000/1s,conversation:create=100000/1s,conversation:add=100000/1s,default=100000/1s")
	if err != nil {
		panic(err)
	}
	return s
}

// serveEdge starts another edge on nc, as another process would, and
// returns a fixture whose dial goes to it (f may be nil: no system).
func serveEdge(t *testing.T, f *fixture, nc *nats.Conn, cfg edge.Config) *fixture {
	t.Helper()
	cfg.Auth = edge.AuthConfig{Secret: secret}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	e, err := edge.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.Serve(ln)
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	var sys *System
	if f != nil {
		sys = f.sys
	}
	return newFixture(t, sys, "ws://"+ln.Addr().String()+"/ws")
}
