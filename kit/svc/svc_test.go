package svc

import (
	"testing"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func TestCheckPrincipal(t *testing.T) {
	cmd := names.Command(names.Messaging, "acme", names.ActionSend)
	sys := names.SystemCommand(names.Messaging, "acme", names.ActionSend)
	user := &chatv1.Principal{Org: "acme", User: "alice"}
	org := &chatv1.Principal{Org: "acme", User: "bot", System: true}
	for _, c := range []struct {
		subject string
		p       *chatv1.Principal
		code    string // "" for accepted
	}{
		{cmd, user, ""},
		{sys, user, ""},
		{sys, org, ""},
		{cmd, org, errs.CodeForbidden}, // the organization only on chat.sys
		{names.SystemCommand(names.Messaging, "evil", names.ActionSend), org, errs.CodeForbidden},
		{cmd, &chatv1.Principal{Org: "evil", User: "alice"}, errs.CodeForbidden},
		{cmd, &chatv1.Principal{Org: "acme", User: "a.b"}, errs.CodeUnauthenticated},
		{cmd, nil, errs.CodeUnauthenticated},
	} {
		err := checkPrincipal(c.subject, c.p)
		if c.code == "" && err != nil || c.code != "" && !errs.Is(err, c.code) {
			t.Errorf("%s %v: %v, want %q", c.subject, c.p, err, c.code)
		}
	}
}
