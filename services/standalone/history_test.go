package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
	"github.com/switchboard-chat/switchboard/services/messaging"
)

func TestAnotherOrgCannotLearnOfAConversation(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	mallory := f.dial("evil", "alice") // the same user id in another org
	conv := alice.create("bob")
	alice.join(conv)
	m := alice.send(conv, "secret")
	// Another org sees exactly what it sees for a conversation that does
	// not exist.
	for name, conv := range map[string]string{"real": conv, "made up": "no-such-conversation"} {
		t.Run(name, func(t *testing.T) {
			mallory := mallory.with(t)
			mallory.fails("conversation:join", map[string]any{"conversationId": conv}, "error", "not_found")
			mallory.fails("conversation:history", map[string]any{"conversationId": conv}, "error", "not_found")
			mallory.fails("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "1"}, "error", "not_found")
			mallory.fails("message:edit", map[string]any{"conversationId": conv, "messageId": m.MessageID, "content": "x"}, "error", "not_found")
			mallory.fails("message:delete", map[string]any{"conversationId": conv, "messageId": m.MessageID}, "error", "not_found")
			mallory.fails("conversation:add", map[string]any{"conversationId": conv, "userIds": []string{"alice"}}, "error", "not_found")
			mallory.fails("conversation:remove", map[string]any{"conversationId": conv, "userId": "alice"}, "error", "not_found")
		})
	}
	list := decode[struct {
		Conversations []struct{} `json:"conversations"`
	}](t, mallory.do("conversation:list", nil))
	if len(list.Conversations) != 0 {
		t.Fatalf("another org lists %d conversations", len(list.Conversations))
	}
	mallory.none("message:new", 200*time.Millisecond)
	mallory.none("conversation:updated", 10*time.Millisecond)
}

func TestRejoinWithSinceSeqGetsExactlyTheMissed(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	alice.join(conv)
	bob.join(conv)
	held := bob.send(conv, "before")
	bob.event("message:new")
	bob.Kill()

	var missed []sendAck
	for i := range 4 {
		missed = append(missed, alice.send(conv, fmt.Sprintf("while away %d", i)))
	}
	alice.do("message:edit", map[string]any{"conversationId": conv, "messageId": missed[0].MessageID, "content": "edited"})

	bob = f.dial("acme", "bob")
	ack := decode[joinAckJSON](t, bob.do("conversation:join", map[string]any{"conversationId": conv, "sinceSeq": held.Seq}))
	if len(ack.Missed) != 5 || ack.Truncated {
		t.Fatalf("missed %d events (truncated %v), want 5: %v", len(ack.Missed), ack.Truncated, ack.Missed)
	}
	prev := held.Seq
	for i, e := range ack.Missed {
		m := decode[msgEvent](t, e.Data)
		if m.PrevSeq != prev || m.Seq <= prev {
			t.Fatalf("missed[%d] seq %d prevSeq %d after %d", i, m.Seq, m.PrevSeq, prev)
		}
		if i < 4 && (e.Type != "message:new" || m.MessageID != missed[i].MessageID) {
			t.Fatalf("missed[%d] = %s, want message %s", i, e, missed[i].MessageID)
		}
		prev = m.Seq
	}
	if ack.Missed[4].Type != "message:edited" || ack.LastSeq != prev {
		t.Fatalf("last missed %s, lastSeq %d (want %d)", ack.Missed[4], ack.LastSeq, prev)
	}
	// Live events continue right after.
	next := alice.send(conv, "back")
	if e := decode[msgEvent](t, bob.event("message:new").Data); e.Seq != next.Seq || e.PrevSeq != prev {
		t.Fatalf("live after rejoin: %+v", e)
	}
}

func TestJoinTruncatesAt500Missed(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	conv := alice.create()
	first := alice.send(conv, "0")
	for i := 1; i < 502; i++ {
		alice.send(conv, fmt.Sprint(i))
	}
	ack := decode[joinAckJSON](t, alice.do("conversation:join", map[string]any{"conversationId": conv, "sinceSeq": first.Seq - 1}))
	if len(ack.Missed) != 500 || !ack.Truncated {
		t.Fatalf("missed %d truncated %v, want 500 and true", len(ack.Missed), ack.Truncated)
	}
	if m := decode[msgEvent](t, ack.Missed[0].Data); m.Seq != first.Seq {
		t.Fatalf("missed starts at %d, want %d", m.Seq, first.Seq)
	}
	// The rest pages with history afterSeq.
	last := decode[msgEvent](t, ack.Missed[499].Data)
	h := decode[struct {
		Events  []wsclient.Frame `json:"events"`
		HasMore bool             `json:"hasMore"`
	}](t, alice.do("conversation:history", map[string]any{"conversationId": conv, "afterSeq": last.Seq, "limit": 200}))
	if len(h.Events) != 2 || h.HasMore {
		t.Fatalf("history after the missed page: %d events, hasMore %v", len(h.Events), h.HasMore)
	}
}

func TestHistorySurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: testLogger()}
	cfg.Edge.Auth = edge.AuthConfig{Secret: secret}
	f := startWith(t, cfg)
	alice := f.dial("acme", "alice")
	conv := alice.create("bob")
	var sent []sendAck
	for i := range 3 {
		sent = append(sent, decode[sendAck](t, alice.do("message:send", map[string]any{"conversationId": conv, "content": fmt.Sprint(i), "clientMsgId": fmt.Sprintf("r-%d", i)})))
	}
	if err := f.sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	f2 := startWith(t, cfg)
	bob := f2.dial("acme", "bob")
	ack := decode[joinAckJSON](t, bob.do("conversation:join", map[string]any{"conversationId": conv, "sinceSeq": 0}))
	var got []string
	for _, e := range ack.Missed {
		if e.Type == "message:new" {
			got = append(got, decode[msgEvent](t, e.Data).MessageID)
		}
	}
	if len(got) != 3 || got[0] != sent[0].MessageID || got[2] != sent[2].MessageID || ack.LastSeq != sent[2].Seq {
		t.Fatalf("after restart: messages %v lastSeq %d, want %v..%v lastSeq %d", got, ack.LastSeq, sent[0].MessageID, sent[2].MessageID, sent[2].Seq)
	}
	// The dedupe window survives too: a resend from before the restart is
	// answered with its first ack and creates nothing; a new one is new.
	alice2 := f2.dial("acme", "alice")
	again := decode[sendAck](t, alice2.do("message:send", map[string]any{"conversationId": conv, "content": "1", "clientMsgId": "r-1"}))
	if !again.Duplicate || again.MessageID != sent[1].MessageID || again.Seq != sent[1].Seq {
		t.Fatalf("a resend after the restart: %+v, want a duplicate of %+v", again, sent[1])
	}
	fresh := decode[sendAck](t, bob.do("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "b-1"}))
	if fresh.Duplicate {
		t.Fatal("a new clientMsgId was a duplicate")
	}
}

// Two messaging instances append to one conversation at once: the stream
// keeps one chain, and a joined client sees it live in seq order with no
// gap and no fork.
func TestTwoMessagingInstancesOneChainLive(t *testing.T) {
	f := start(t)
	nc := f.natsAs(natsauth.Messaging)
	second, err := messaging.New(context.Background(), nc, messaging.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background()) })

	watcher := f.dial("acme", "watcher")
	conv := watcher.create("alice", "bob")
	watcher.join(conv)
	const senders, each = 6, 25
	var wg sync.WaitGroup
	for i := range senders {
		c := f.dial("acme", []string{"alice", "bob"}[i%2])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				r, err := c.Request(fmt.Sprintf("s%d-%d", i, j), "message:send",
					map[string]any{"conversationId": conv, "content": "x", "clientMsgId": fmt.Sprintf("s%d-%d", i, j)}, wait)
				if err != nil || r.Type != "ack" {
					t.Errorf("send: %v %s", err, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	var prev uint64
	for i := range senders * each {
		e := decode[msgEvent](t, watcher.event("message:new").Data)
		if i > 0 && e.PrevSeq != prev {
			t.Fatalf("live event %d: seq %d prevSeq %d, last delivered %d", i, e.Seq, e.PrevSeq, prev)
		}
		prev = e.Seq
	}
	watcher.none("message:new", 200*time.Millisecond)
	// Both instances took part.
	if sends := sendsByInstance(t, f.natsAs(natsauth.Admin)); len(sends) != 2 || sends[0] == 0 || sends[1] == 0 {
		t.Fatalf("sends handled per messaging instance: %v", sends)
	}
	b, err := natsx.GetBatch(context.Background(), nc, "CHAT_EVENTS", "chat.store.acme."+conv, 1, 1000)
	if err != nil || len(b.Msgs) != 1+senders*each {
		t.Fatalf("stream holds %d events (%v), want %d", len(b.Msgs), err, 1+senders*each)
	}
}

// sendsByInstance asks every messaging instance for its micro stats and
// returns how many sends each handled.
func sendsByInstance(t *testing.T, nc *nats.Conn) []int {
	t.Helper()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.STATS.messaging", inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []int
	for {
		m, err := sub.NextMsg(300 * time.Millisecond)
		if err != nil {
			return out
		}
		var st micro.Stats
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		for _, e := range st.Endpoints {
			if e.Name == "send" {
				out = append(out, e.NumRequests)
			}
		}
	}
}
