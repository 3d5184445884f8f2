package messaging

import (
	"io"
	"log/slog"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/kit/testkit/svcfuzz"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// FuzzCommands sends arbitrary protobuf bytes to every messaging action
// through the kit/svc runner: each is answered, never with internal. The
// seeds name a conversation that exists, so that mutations reach past
// the lookups.
func FuzzCommands(f *testing.F) {
	nc := natstest.Conn(f, natstest.Server(f))
	s, err := New(f.Context(), nc, Config{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Stop(f.Context()) })
	alice := who(svcfuzz.Org, "alice")
	var created chatv1.CreateConversationResponse
	if err := svc.Call(f.Context(), nc, names.Command(names.Messaging, svcfuzz.Org, names.ActionCreate),
		&chatv1.CreateConversationRequest{Principal: alice, Participants: []string{"bob"}, Title: "t"}, &created); err != nil {
		f.Fatal(err)
	}
	conv := created.ConversationId
	var sent chatv1.SendResponse
	if err := svc.Call(f.Context(), nc, names.Command(names.Messaging, svcfuzz.Org, names.ActionSend),
		&chatv1.SendRequest{Principal: alice, ConversationId: conv, Content: "hi", ClientMsgId: "c1"}, &sent); err != nil {
		f.Fatal(err)
	}
	seq, limit := sent.Seq, uint32(10)
	svcfuzz.Fuzz(f, nc, names.Messaging, []svcfuzz.Action{
		svcfuzz.A(names.ActionCreate, &chatv1.CreateConversationRequest{Principal: alice, Participants: []string{"bob", "carol"}, Title: "x"}, &chatv1.CreateConversationResponse{}),
		svcfuzz.A(names.ActionAdd, &chatv1.AddParticipantsRequest{Principal: alice, ConversationId: conv, UserIds: []string{"dave"}}, &chatv1.ParticipantsResponse{}),
		svcfuzz.A(names.ActionRemove, &chatv1.RemoveParticipantRequest{Principal: alice, ConversationId: conv, UserId: "dave"}, &chatv1.ParticipantsResponse{}),
		svcfuzz.A(names.ActionList, &chatv1.ListConversationsRequest{Principal: alice, Limit: limit}, &chatv1.ListConversationsResponse{}),
		svcfuzz.A(names.ActionJoin, &chatv1.JoinRequest{Principal: alice, ConversationId: conv, SinceSeq: &seq}, &chatv1.JoinResponse{}),
		svcfuzz.A(names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, BeforeSeq: &seq, Limit: limit}, &chatv1.HistoryResponse{}),
		svcfuzz.A(names.ActionSend, &chatv1.SendRequest{Principal: alice, ConversationId: conv, Content: "yo", ClientMsgId: "c2"}, &chatv1.SendResponse{}),
		svcfuzz.A(names.ActionEdit, &chatv1.EditRequest{Principal: alice, ConversationId: conv, MessageId: sent.MessageId, Content: "ed"}, &chatv1.EditResponse{}),
		svcfuzz.A(names.ActionDelete, &chatv1.DeleteRequest{Principal: alice, ConversationId: conv, MessageId: sent.MessageId}, &chatv1.DeleteResponse{}),
		svcfuzz.A(names.ActionTyping, &chatv1.TypingRequest{Principal: alice, ConversationId: conv, IsTyping: true}, &chatv1.TypingResponse{}),
		svcfuzz.A(names.ActionDelivered, &chatv1.MarkRequest{Principal: alice, ConversationId: conv, Seq: seq}, &chatv1.MarkResponse{}),
		svcfuzz.A(names.ActionRead, &chatv1.MarkRequest{Principal: alice, ConversationId: conv, Seq: seq}, &chatv1.MarkResponse{}),
		svcfuzz.A(names.ActionReact, &chatv1.ReactRequest{Principal: alice, ConversationId: conv, MessageId: sent.MessageId, Emoji: "👍", On: true}, &chatv1.ReactResponse{}),
		svcfuzz.A(names.ActionReactions, &chatv1.ReactionsRequest{Principal: alice, ConversationId: conv, MessageIds: []string{sent.MessageId}}, &chatv1.ReactionsResponse{}),
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
