package standalone

import (
	"context"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// A backend service posts into a conversation with one NATS request on the
// documented subject, as the system or as a named user.
func TestInternalServicePostsOverNATS(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	alice.join(conv)
	backend := natstest.Conn(t, f.sys.NATS)

	post := func(p *chatv1.Principal, content, clientID string) (*chatv1.SendResponse, error) {
		var resp chatv1.SendResponse
		err := svc.Call(context.Background(), backend, names.Command(names.Messaging, p.Org, names.ActionSend),
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
	// And no one posts across orgs, system or not.
	if _, err := post(&chatv1.Principal{Org: "evil", User: "bot", System: true}, "x", "e-1"); !errs.Is(err, errs.CodeNotFound) {
		t.Fatalf("another org's system sender: %v", err)
	}
}
