package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// roomRig is a real edge Server and sockets of its own: server-side
// loopback connections in a room, whose client sides the test reads.
type roomRig struct {
	t *testing.T
	s *Server
}

func newRoomRig(t *testing.T) *roomRig {
	t.Helper()
	s, err := New(natstest.Conn(t, natstest.Server(t)), Config{
		Auth:   AuthConfig{Secret: testSecret},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &roomRig{t: t, s: s}
}

// socket is one connection of user: the server side as a conn, and the
// client side to read.
type socket struct {
	c      *conn
	client net.Conn
}

func (rig *roomRig) socket(user string) *socket {
	rig.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rig.t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		rig.t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		rig.t.Fatal(err)
	}
	rig.t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	c := &conn{s: rig.s, nc: server, seq: connSeq.Add(1), id: "conn-" + user, org: "acme", user: user,
		rooms: map[string]*room{}, done: make(chan struct{})}
	return &socket{c: c, client: client}
}

// next reads the socket's next frame and returns its type and seq.
func (s *socket) next(t *testing.T) (string, uint64) {
	t.Helper()
	_ = s.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(s.client)
	if err != nil {
		t.Fatalf("%s: %v", s.c.user, err)
	}
	var v struct {
		Type string `json:"type"`
		Data struct {
			Seq uint64 `json:"seq"`
		} `json:"data"`
	}
	if err := json.Unmarshal(f.Payload, &v); err != nil {
		t.Fatalf("%s: %q: %v", s.c.user, f.Payload, err)
	}
	return v.Type, v.Data.Seq
}

// nothing asserts that no frame arrives within d.
func (s *socket) nothing(t *testing.T, d time.Duration) {
	t.Helper()
	_ = s.client.SetReadDeadline(time.Now().Add(d))
	if f, err := ws.ReadFrame(s.client); err == nil {
		t.Fatalf("%s got %q", s.c.user, f.Payload)
	}
}

func (s *socket) want(t *testing.T, typ string, seq uint64) {
	t.Helper()
	if gotType, gotSeq := s.next(t); gotType != typ || gotSeq != seq {
		t.Fatalf("%s got %s seq %d, want %s seq %d", s.c.user, gotType, gotSeq, typ, seq)
	}
}

func membershipEvent(seq, prev uint64, participants ...string) *chatv1.Event {
	return &chatv1.Event{ConversationId: "general", Seq: seq, PrevSeq: prev,
		Body: &chatv1.Event_ConversationUpdated{ConversationUpdated: &chatv1.ConversationUpdated{Participants: participants}}}
}

func messageEvent(seq, prev uint64) *chatv1.Event {
	return &chatv1.Event{ConversationId: "general", Seq: seq, PrevSeq: prev,
		Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{MessageId: fmt.Sprint(seq), SenderId: "alice", Content: "hi"}}}
}

// join puts s in the room as a join does, up to the messaging request.
func (rig *roomRig) join(s *socket) *room {
	rig.t.Helper()
	r, err := rig.s.hub.acquire(s.c, "general")
	if err != nil {
		rig.t.Fatal(err)
	}
	return r
}

// A removal delivered while a join is on its way, newer than the join's
// reply: the socket gets its ack, the removal, and leaves the room.
func TestRoomJoinAnsweredThenRemoved(t *testing.T) {
	rig := newRoomRig(t)
	alice, bob := rig.socket("alice"), rig.socket("bob")
	r := rig.join(alice)
	r.ready(alice.c, 10, []string{"alice", "bob"}, nil)
	rig.join(bob)
	r.receive(membershipEvent(11, 10, "alice"))
	alice.want(t, "conversation:updated", 11)
	if !r.has(bob.c) {
		t.Fatal("bob, whose join is on its way, was taken out before its reply")
	}
	if !r.ready(bob.c, 10, []string{"alice", "bob"}, ackFrame("j", struct{}{})) {
		t.Fatal("ready did not report bob's removal")
	}
	bob.want(t, "ack", 0)
	bob.want(t, "conversation:updated", 11)
	if r.has(bob.c) {
		t.Fatal("bob is still in the room")
	}
	r.receive(messageEvent(12, 11))
	alice.want(t, "message:new", 12)
	bob.nothing(t, 200*time.Millisecond)
}

// A join whose reply is newer than a removal (bob was added back) keeps
// the socket in: the removal is older than where it starts.
func TestRoomRemovalOlderThanJoinKeepsMember(t *testing.T) {
	rig := newRoomRig(t)
	alice, bob := rig.socket("alice"), rig.socket("bob")
	r := rig.join(alice)
	r.ready(alice.c, 10, []string{"alice", "bob"}, nil)
	rig.join(bob)
	r.receive(membershipEvent(11, 10, "alice"))
	r.receive(membershipEvent(12, 11, "alice", "bob"))
	if r.ready(bob.c, 12, []string{"alice", "bob"}, ackFrame("j", struct{}{})) {
		t.Fatal("bob, a participant after seq 12, was removed")
	}
	bob.want(t, "ack", 0)
	r.receive(messageEvent(13, 12))
	bob.want(t, "message:new", 13)

	// The same once ready: a removal the room delivers late, older than
	// carol's join's reply, leaves her in.
	carol := rig.socket("carol")
	rig.join(carol)
	r.ready(carol.c, 20, []string{"alice", "bob", "carol"}, nil)
	r.receive(membershipEvent(15, 14, "alice", "bob")) // ahead of 14: held
	r.receive(messageEvent(14, 13))
	if !r.has(carol.c) {
		t.Fatal("carol was taken out by a removal older than her join")
	}
	carol.nothing(t, 200*time.Millisecond)
}
