package presence

import (
	"io"
	"log/slog"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/kit/testkit/svcfuzz"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// FuzzCommands sends arbitrary protobuf bytes to the presence actions
// through the kit/svc runner: each is answered, never with internal.
func FuzzCommands(f *testing.F) {
	nc := natstest.Conn(f, natstest.Server(f))
	s, err := New(f.Context(), nc, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Stop(f.Context()) })
	edge := &chatv1.Principal{Org: svcfuzz.Org, User: "edge1"}
	svcfuzz.Fuzz(f, nc, names.Presence, []svcfuzz.Action{
		svcfuzz.A(names.ActionUpdate, &chatv1.PresenceUpdate{Principal: edge, Edge: "edge1", Connections: []*chatv1.ConnectionState{
			{User: "alice", Connection: "c1", Status: Online, LastActiveMs: 1},
			{User: "bob", Connection: "c2", Status: Away},
			{User: "carol", Connection: "c3", Gone: true},
		}}, &chatv1.PresenceUpdateResponse{}),
		svcfuzz.A(names.ActionQuery, &chatv1.PresenceQuery{Principal: edge, UserIds: []string{"alice", "bob", "zed"}}, &chatv1.PresenceQueryResponse{}),
	})
}
