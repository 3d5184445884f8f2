package ratelimit

import (
	"io"
	"log/slog"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/kit/testkit/svcfuzz"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// FuzzCommands sends arbitrary protobuf bytes to the rate-limit check
// through the kit/svc runner: each is answered, never with internal.
func FuzzCommands(f *testing.F) {
	nc := natstest.Conn(f, natstest.Server(f))
	start(f, nc, Config{Limits: limits.Defaults(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	p := &chatv1.Principal{Org: svcfuzz.Org, User: "alice"}
	svcfuzz.Fuzz(f, nc, names.RateLimit, []svcfuzz.Action{
		svcfuzz.A(names.ActionCheck, &chatv1.RateLimitCheck{Principal: p, Command: "message:send"}, &chatv1.RateLimitResult{}),
	})
}
