package messaging

import (
	"fmt"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// A cached unread count is used only while what it counts is unchanged: a
// repeated list is answered from the cache, and a new message, a deletion
// or a moved read marker gives the count anew.
func TestUnreadCacheFollowsChanges(t *testing.T) {
	nc := natstest.Conn(t, natstest.Server(t))
	s := start(t, nc)
	alice, bob := who("acme", "alice"), who("acme", "bob")
	conv := createConv(t, nc, alice, "bob")
	var sent []*chatv1.SendResponse
	for i := range 5 {
		sent = append(sent, sendMsg(t, nc, bob, conv, "m", fmt.Sprint(i)))
	}
	unread := func(want uint32) {
		t.Helper()
		var l chatv1.ListConversationsResponse
		if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice}, &l); err != nil {
			t.Fatal(err)
		}
		c := l.Conversations[0]
		if c.Unread != want {
			t.Fatalf("unread %d, want %d", c.Unread, want)
		}
		n, ok := s.unreads.get(unreadKey{org: "acme", conv: conv, user: "alice", read: c.Read, last: c.LastSeq})
		if !ok || n != want {
			t.Fatalf("cache holds %d (%v) for read %d, last %d; want %d", n, ok, c.Read, c.LastSeq, want)
		}
	}
	unread(5)
	// Poison the entry: a repeated list must answer from the cache (the
	// stored events say 5).
	var l chatv1.ListConversationsResponse
	if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice}, &l); err != nil {
		t.Fatal(err)
	}
	key := unreadKey{org: "acme", conv: conv, user: "alice", read: 0, last: l.Conversations[0].LastSeq}
	s.unreads.put(key, 42)
	if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice}, &l); err != nil || l.Conversations[0].Unread != 42 {
		t.Fatalf("repeated list: unread %d (%v), want the cached 42", l.Conversations[0].Unread, err)
	}
	s.unreads.put(key, 5)
	sendMsg(t, nc, bob, conv, "m", "new")
	unread(6)
	if err := call(t, nc, names.ActionDelete, &chatv1.DeleteRequest{Principal: bob, ConversationId: conv, MessageId: sent[4].MessageId}, &chatv1.DeleteResponse{}); err != nil {
		t.Fatal(err)
	}
	unread(5)
	if err := call(t, nc, names.ActionRead, &chatv1.MarkRequest{Principal: alice, ConversationId: conv, Seq: sent[1].Seq}, &chatv1.MarkResponse{}); err != nil {
		t.Fatal(err)
	}
	unread(3)
}
