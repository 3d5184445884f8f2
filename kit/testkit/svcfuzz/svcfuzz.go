// Package svcfuzz is for tests only: it fuzzes a command service through
// its kit/svc runner, with arbitrary protobuf bytes as the request of each
// action. Every request must be answered, with a reply of the action's
// response type whose error, if any, is not internal: undecodable and
// invalid requests are the client's fault, never a defect.
package svcfuzz

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Org is the organization of every fuzzed command's subject.
const Org = "acme"

// Action is one endpoint: its name and a request and a response of its
// types. Req, with its principal replaced, is the seed.
type Action struct {
	Name string
	Req  svc.Request
	Resp svc.Response
}

// Fuzz runs the fuzz target of service's actions on nc. An input is an
// action (by index), the request's bytes, and whether to give the request,
// when it decodes, a valid principal of Org (most inputs would otherwise
// stop at the principal check).
func Fuzz(f *testing.F, nc *nats.Conn, service string, actions []Action) {
	for i, a := range actions {
		data, err := proto.Marshal(a.Req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), data, true)
		f.Add(uint8(i), data, false)
	}
	f.Add(uint8(0), []byte{0xff, 0x01}, false)
	f.Fuzz(func(t *testing.T, which uint8, data []byte, withPrincipal bool) {
		a := actions[int(which)%len(actions)]
		if withPrincipal {
			data = principalled(a.Req, data)
		}
		msg, err := nc.Request(names.Command(service, Org, a.Name), data, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: no reply: %v", a.Name, err)
		}
		resp := a.Resp.ProtoReflect().New().Interface().(svc.Response)
		if err := proto.Unmarshal(msg.Data, resp); err != nil {
			t.Fatalf("%s: reply is not a %T: %v", a.Name, resp, err)
		}
		if e := resp.GetError(); e.GetCode() == errs.CodeInternal {
			t.Fatalf("%s: internal error for %x", a.Name, data)
		}
	})
}

// principalled returns data decoded as a request of proto's type with a
// valid principal, or data as is when it does not decode.
func principalled(prototype svc.Request, data []byte) []byte {
	req := prototype.ProtoReflect().New()
	if proto.Unmarshal(data, req.Interface()) != nil {
		return data
	}
	fd := req.Descriptor().Fields().ByName("principal")
	if fd == nil {
		return data
	}
	req.Set(fd, protoreflect.ValueOfMessage((&chatv1.Principal{Org: Org, User: "alice"}).ProtoReflect()))
	out, err := proto.Marshal(req.Interface())
	if err != nil {
		return data
	}
	return out
}

// A is an Action.
func A(name string, req svc.Request, resp svc.Response) Action {
	return Action{Name: name, Req: req, Resp: resp}
}
