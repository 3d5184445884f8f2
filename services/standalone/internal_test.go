package standalone

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// A backend service posts into a conversation with one NATS request on the
// documented subject, as the system or as a named user, with its org's
// credential (the README's example).
func TestInternalServicePostsOverNATS(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	alice.join(conv)
	backend := f.backend()

	post := func(p *chatv1.Principal, content, clientID string) (*chatv1.SendResponse, error) {
		var resp chatv1.SendResponse
		err := svc.Call(context.Background(), backend, names.SystemCommand(names.Messaging, "acme", names.ActionSend),
			&chatv1.SendRequest{Principal: p, ConversationId: conv, Content: content, ClientMsgId: clientID}, &resp)
		return &resp, err
	}

	sys, err := post(&chatv1.Principal{Org: "acme", User: "billing-bot", System: true}, "invoice ready", "inv-1")
	if err != nil {
		t.Fatal(err)
	}
	e := decode[msgEvent](t, alice.event("message:new").Data)
	if e.SenderID != "billing-bot" || e.Content != "invoice ready" || e.Seq != sys.Seq {
		t.Fatalf("alice got %+v from the system sender", e)
	}

	if _, err := post(&chatv1.Principal{Org: "acme", User: "bob"}, "from bob's backend", "b-1"); err != nil {
		t.Fatal(err)
	}
	if e := decode[msgEvent](t, alice.event("message:new").Data); e.SenderID != "bob" {
		t.Fatalf("named-user post arrived as %+v", e)
	}
	// A named user is held to the same rules as on a socket.
	if _, err := post(&chatv1.Principal{Org: "acme", User: "carol"}, "x", "c-1"); !errs.Is(err, errs.CodeForbidden) {
		t.Fatalf("a non-participant named user posted: %v", err)
	}
	// And no one posts across orgs, system or not: not with another org's
	// principal on its own subject...
	if _, err := post(&chatv1.Principal{Org: "evil", User: "bot", System: true}, "x", "e-1"); !errs.Is(err, errs.CodeForbidden) {
		t.Fatalf("another org's system principal: %v", err)
	}
}

// A backend that sends a command over NATS reads the same field errors for
// the same fault as a client on a socket, where the edge finds most faults
// before messaging sees them.
func TestSocketAndBackendGiveOneReason(t *testing.T) {
	f := start(t)
	backend := f.backend()
	alice := &chatv1.Principal{Org: "acme", User: "alice"}
	cases := []struct {
		name   string
		typ    string
		data   map[string]any
		action string
		req    proto.Message
		resp   svc.Response
	}{
		{"empty conversationId", "message:send", map[string]any{"conversationId": "", "content": "hi", "clientMsgId": "m1"},
			names.ActionSend, &chatv1.SendRequest{Principal: alice, Content: "hi", ClientMsgId: "m1"}, &chatv1.SendResponse{}},
		{"conversationId outside the pattern", "message:send", map[string]any{"conversationId": "a.b", "content": "hi", "clientMsgId": "m1"},
			names.ActionSend, &chatv1.SendRequest{Principal: alice, ConversationId: "a.b", Content: "hi", ClientMsgId: "m1"}, &chatv1.SendResponse{}},
		{"empty content", "message:send", map[string]any{"conversationId": "general", "content": "", "clientMsgId": "m1"},
			names.ActionSend, &chatv1.SendRequest{Principal: alice, ConversationId: "general", ClientMsgId: "m1"}, &chatv1.SendResponse{}},
		{"empty clientMsgId", "message:send", map[string]any{"conversationId": "general", "content": "hi", "clientMsgId": ""},
			names.ActionSend, &chatv1.SendRequest{Principal: alice, ConversationId: "general", Content: "hi"}, &chatv1.SendResponse{}},
		{"empty messageId", "message:edit", map[string]any{"conversationId": "general", "messageId": "", "content": "hi"},
			names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: "general", Content: "hi"}, &chatv1.EditResponse{}},
		{"no user to add", "conversation:add", map[string]any{"conversationId": "general", "userIds": []string{}},
			names.ActionAdd, &chatv1.AddParticipantsRequest{Principal: alice, ConversationId: "general"}, &chatv1.ParticipantsResponse{}},
		{"a user id outside the pattern", "conversation:add", map[string]any{"conversationId": "general", "userIds": []string{"bob", "x.y"}},
			names.ActionAdd, &chatv1.AddParticipantsRequest{Principal: alice, ConversationId: "general", UserIds: []string{"bob", "x.y"}}, &chatv1.ParticipantsResponse{}},
		{"page too long", "conversation:history", map[string]any{"conversationId": "general", "limit": 201},
			names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: "general", Limit: 201}, &chatv1.HistoryResponse{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := wantError(t, f.dial("acme", "alice").try(tc.typ, tc.data), "validation-error", errs.CodeValidation)
			var socket []errs.Field
			for _, fe := range d.Fields {
				socket = append(socket, errs.Field{Field: fe.Field, Reason: fe.Reason})
			}
			err := svc.Call(context.Background(), backend, names.SystemCommand(names.Messaging, alice.Org, tc.action), tc.req, tc.resp)
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != errs.CodeValidation {
				t.Fatalf("backend: %v, want %s", err, errs.CodeValidation)
			}
			if len(socket) == 0 || !slices.Equal(socket, e.Fields) {
				t.Fatalf("socket fields %q, backend fields %q: want the same, not empty", socket, e.Fields)
			}
		})
	}
}

// A backend's credential acts in its own organization only, and only on
// chat.sys subjects; the organization itself (system) is refused on the
// edges' chat.cmd subjects, whoever sends it.
func TestBackendConfinedToItsOrg(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create()
	send := func(nc *nats.Conn, subject string, p *chatv1.Principal) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return svc.Call(ctx, nc, subject, &chatv1.SendRequest{Principal: p, ConversationId: conv, Content: "x", ClientMsgId: "x"}, &chatv1.SendResponse{})
	}
	violations := make(chan error, 10)
	user := natsauth.Backend("acme")
	backend, err := nats.Connect(f.sys.NatsURL(), nats.UserInfo(user, backendPassword), nats.CustomInboxPrefix(names.InboxPrefix(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	acmeSystem := &chatv1.Principal{Org: "acme", User: "bot", System: true}
	refused := func(what, subject string, p *chatv1.Principal) {
		t.Helper()
		if err := send(backend, subject, p); !errs.Is(err, errs.CodeUnavailable) {
			t.Errorf("%s: %v, want no answer", what, err)
		}
		select {
		case err := <-violations:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%s: no permissions violation", what)
		}
	}
	refused("another org", names.SystemCommand(names.Messaging, "evil", names.ActionSend), &chatv1.Principal{Org: "evil", User: "bot", System: true})
	refused("an edge's subject", names.Command(names.Messaging, "acme", names.ActionSend), acmeSystem)

	// The edge's user may publish chat.cmd, but not as the organization.
	edgeNC := f.natsAs(natsauth.Edge)
	if err := send(edgeNC, names.Command(names.Messaging, "acme", names.ActionSend), acmeSystem); !errs.Is(err, errs.CodeForbidden) {
		t.Fatalf("a system principal on chat.cmd: %v, want forbidden", err)
	}
	if err := send(backend, names.SystemCommand(names.Messaging, "acme", names.ActionSend), acmeSystem); err != nil {
		t.Fatalf("the same on chat.sys: %v", err)
	}
}

// The embedded server's listener takes no anonymous client (which could
// read every org's events and drive JetStream), and no service user: those
// connect in process only, so their passwords are no use over TCP.
func TestEmbeddedNATSRefusesAnonymousAndServiceUsers(t *testing.T) {
	f := start(t)
	refused := func(what string, opts ...nats.Option) {
		t.Helper()
		nc, err := nats.Connect(f.sys.NatsURL(), append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Fatalf("%s connected over TCP", what)
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Fatalf("%s: %v", what, err)
		}
	}
	refused("an anonymous client")
	refused("a wrong password", nats.UserInfo(natsauth.Backend("acme"), "guess"))
	for _, user := range []string{natsauth.Admin, natsauth.Edge, natsauth.Messaging} {
		refused(user, nats.UserInfo(user, f.sys.passwords[user]))
	}
	// In process, the same user and password connect.
	f.natsAs(natsauth.Edge)
}

// With NatsListen "off" the embedded server has no listener at all.
func TestEmbeddedNATSWithoutListener(t *testing.T) {
	f := start(t, func(c *Config) { c.NatsListen = "off" })
	if url := f.sys.NatsURL(); url != "" {
		t.Fatalf("NatsURL %q without a listener", url)
	}
	alice := f.dial("acme", "alice")
	conv := alice.create()
	alice.join(conv)
	alice.send(conv, "in process only")
}
