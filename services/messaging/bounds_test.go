package messaging

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func TestJSONStringSizeBoundsEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "hi", strings.Repeat("<", 4096), `"quoted" \ back`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"<script>&amp;</script>", "é ü 漢字 🎉", "\u2028\u2029", "\xff\xfe invalid", "\b\f",
	} {
		b, _ := json.Marshal(s)
		got := jsonStringSize(s)
		if got < len(b) {
			t.Errorf("jsonStringSize(%q) = %d, encoding/json writes %d", s, got, len(b))
		}
		if got > len(b) && !strings.ContainsAny(s, "\b\f") {
			t.Errorf("jsonStringSize(%q) = %d, more than the %d encoding/json writes", s, got, len(b))
		}
	}
	if n := jsonStringSize(strings.Repeat("<", 4000)); n != 24002 {
		t.Fatalf("4,000 '<' take %d bytes of JSON, want 24,002", n)
	}
}

// smallServer is a nats-server whose max_payload is 256 KiB.
func smallServer(t *testing.T) *server.Server {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), ConfigString: "max_payload: 262144"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

func TestNewRefusesLimitsTheMaxPayloadCannotCarry(t *testing.T) {
	nc := natstest.Conn(t, smallServer(t))
	// 1,000 participants of 64-character ids: a join reply may need about
	// 290 KB, more than 256 KiB.
	if s, err := New(context.Background(), nc, Config{}); err == nil {
		_ = s.Stop(context.Background())
		t.Fatal("New took 1,000 participants on a max_payload of 256 KiB")
	}
	s, err := New(context.Background(), nc, Config{MaxParticipants: 500})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Stop(context.Background())
}

// On a server with a small max_payload, list, history and join end their
// pages at what NATS takes (read from the connection), and paging reaches
// everything.
func TestRepliesFitTheConnectionsMaxPayload(t *testing.T) {
	ns := smallServer(t)
	nc := natstest.Conn(t, ns)
	s, err := New(context.Background(), nc, Config{MaxParticipants: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	limit := int(nc.MaxPayload())
	alice := who("acme", "alice")

	// 40 conversations of 200 participants: 40 summaries of 100 ids of 64
	// characters are 270 KB.
	var others []string
	for i := range 199 {
		others = append(others, fmt.Sprintf("%063d", i))
	}
	want := map[string]bool{}
	for range 40 {
		want[createConv(t, nc, alice, others...)] = true
	}
	var listed int
	pages, cursor := 0, ""
	for {
		var l chatv1.ListConversationsResponse
		if err := call(t, nc, names.ActionList, &chatv1.ListConversationsRequest{Principal: alice, Limit: 200, Cursor: cursor}, &l); err != nil {
			t.Fatal(err)
		}
		pages++
		if n := proto.Size(&l); n > limit {
			t.Fatalf("a list reply of %d bytes", n)
		}
		for _, c := range l.Conversations {
			if !want[c.ConversationId] || len(c.Participants) != 100 || c.ParticipantCount != 200 || c.Participants[0] != "alice" {
				t.Fatalf("summary %s: %d ids, count %d", c.ConversationId, len(c.Participants), c.ParticipantCount)
			}
			listed++
		}
		if cursor = l.Cursor; cursor == "" {
			break
		}
	}
	t.Logf("list: 40 conversations in %d pages (max payload %d)", pages, limit)
	if listed != 40 || pages < 2 {
		t.Fatalf("listed %d conversations in %d pages", listed, pages)
	}

	// 150 messages of 4,096 bytes: 630 KB of history.
	conv := createConv(t, nc, alice)
	for i := range 150 {
		sendMsg(t, nc, alice, conv, strings.Repeat("a", 4096), fmt.Sprint(i))
	}
	var all []*chatv1.Event
	var before *uint64
	for pages = 0; ; pages++ {
		var h chatv1.HistoryResponse
		if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, BeforeSeq: before, Limit: 200}, &h); err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(&h); n > limit || len(h.Events) == 0 {
			t.Fatalf("a history reply of %d bytes, %d events", n, len(h.Events))
		}
		all = append(h.Events, all...)
		if !h.HasMore {
			break
		}
		before = &h.Events[0].Seq
	}
	t.Logf("history: 151 events in %d pages", pages+1)
	if len(all) != 151 || pages < 2 {
		t.Fatalf("history paged back %d events in %d pages", len(all), pages+1)
	}
	checkChain(t, all)

	var zero uint64
	var j chatv1.JoinResponse
	if err := call(t, nc, names.ActionJoin, &chatv1.JoinRequest{Principal: alice, ConversationId: conv, SinceSeq: &zero}, &j); err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(&j); n > limit || !j.Truncated || len(j.Missed) == 0 {
		t.Fatalf("join: %d bytes, %d missed, truncated %v", n, len(j.Missed), j.Truncated)
	}
	t.Logf("join: %d missed, %d bytes", len(j.Missed), proto.Size(&j))
	forward := j.Missed
	for after := forward[len(forward)-1].Seq; ; {
		var h chatv1.HistoryResponse
		if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, AfterSeq: &after, Limit: 200}, &h); err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(&h); n > limit {
			t.Fatalf("a history reply of %d bytes", n)
		}
		forward = append(forward, h.Events...)
		if !h.HasMore {
			break
		}
		after = h.Events[len(h.Events)-1].Seq
	}
	if len(forward) != 151 {
		t.Fatalf("join and history afterSeq reached %d events", len(forward))
	}
	checkChain(t, forward)
}

// A history page bounded on both sides ends at beforeSeq, and says so,
// even when the budget ends it too.
func TestHistoryBetweenBoundsEndsAtBeforeSeq(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	start(t, nc)
	alice := who("acme", "alice")
	conv := createConv(t, nc, alice)
	var acks []*chatv1.SendResponse
	for i := range 40 {
		acks = append(acks, sendMsg(t, nc, alice, conv, strings.Repeat("<", 4096), fmt.Sprint(i)))
	}
	// 24 KB each in JSON: 21 fit a page of 512 KiB.
	var h chatv1.HistoryResponse
	after, before := acks[0].Seq, acks[30].Seq
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, AfterSeq: &after, BeforeSeq: &before, Limit: 200}, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 21 || !h.HasMore || h.Events[0].Seq != acks[1].Seq {
		t.Fatalf("first page: %d events, hasMore %v", len(h.Events), h.HasMore)
	}
	after = h.Events[20].Seq
	if err := call(t, nc, names.ActionHistory, &chatv1.HistoryRequest{Principal: alice, ConversationId: conv, AfterSeq: &after, BeforeSeq: &before, Limit: 200}, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 8 || h.HasMore || h.Events[7].Seq != acks[29].Seq {
		t.Fatalf("second page: %d events, hasMore %v", len(h.Events), h.HasMore)
	}
}

// The stream and every bucket have a size limit: the defaults, or what is
// configured (-1: none). Setup applies a changed one (New only opens what
// exists).
func TestStreamAndBucketsHaveSizeLimits(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	check := func(cfg Config, stream, bucket int64) {
		t.Helper()
		if err := Setup(context.Background(), js, cfg); err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Stop(context.Background()) }()
		want := map[string]int64{
			names.StreamEvents: stream, names.KVStream(names.BucketMessages): stream,
			names.KVStream(names.BucketConversations): bucket, names.KVStream(names.BucketMemberships): bucket,
			names.KVStream(names.BucketReceipts): bucket, names.KVStream(names.BucketTyping): bucket,
			names.KVStream(names.BucketReactions): bucket,
		}
		for name, max := range want {
			st, err := js.Stream(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			c := st.CachedInfo().Config
			if c.MaxBytes != max {
				t.Errorf("%s: MaxBytes %d, want %d", name, c.MaxBytes, max)
			}
			if name != names.StreamEvents && (c.MaxMsgSize <= 0 || c.MaxMsgSize > 1<<20) {
				t.Errorf("%s: MaxMsgSize %d", name, c.MaxMsgSize)
			}
		}
	}
	check(Config{}, DefaultStreamMaxBytes, DefaultBucketMaxBytes)
	check(Config{StreamMaxBytes: 64 << 20, BucketMaxBytes: 8 << 20}, 64<<20, 8<<20)
	check(Config{StreamMaxBytes: -1, BucketMaxBytes: -1}, -1, -1)
}

// A bucket that is full refuses what would grow it, and says why.
func TestFullBucketRefusesNewConversations(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	s, err := New(context.Background(), nc, Config{BucketMaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	alice := who("acme", "alice")
	var others []string
	for i := range 100 {
		others = append(others, fmt.Sprintf("%063d", i))
	}
	created := 0
	for range 20 {
		var resp chatv1.CreateConversationResponse
		if err := svc.Call(context.Background(), nc, names.Command(names.Messaging, "acme", names.ActionCreate),
			&chatv1.CreateConversationRequest{Principal: alice, Participants: others}, &resp); err != nil {
			break
		}
		created++
	}
	// Each create stores a record of 6.6 KB and 101 memberships of about
	// 170 bytes: 64 KiB buckets take a few.
	if created == 0 || created >= 10 {
		t.Fatalf("created %d conversations of 101 participants in buckets of 64 KiB", created)
	}
	t.Logf("buckets of 64 KiB took %d conversations of 101 participants", created)
}
