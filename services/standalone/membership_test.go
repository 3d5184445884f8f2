package standalone

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/obs"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
)

type updatedJSON struct {
	ConversationID string   `json:"conversationId"`
	Participants   []string `json:"participants"`
	Seq            uint64   `json:"seq"`
	PrevSeq        uint64   `json:"prevSeq"`
}

// historyFetches is how many history requests an edge made to messaging.
func historyFetches(t *testing.T, reg prometheus.Gatherer) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_edge_nats_request_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabelValue(m, "messaging") && hasLabelValue(m, "history") {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// A create of 1,000 participants tells each of them with a small message:
// every connection of a participant (on two edges, one user with two) gets
// the conversation:updated that history holds, byte for byte; each edge
// fetches it once; and the create costs NATS well under a megabyte.
func TestCreateOf1000TellsEveryoneCheaply(t *testing.T) {
	reg := obs.NewRegistry()
	f := start(t, func(c *Config) { c.Registry = reg })
	reg2 := prometheus.NewRegistry()
	f2 := serveEdge(t, f, f.natsAs(natsauth.Edge), edge.Config{Limits: generous(), Registerer: reg2})
	// 999 others of 58 characters: the create frame is just under 64 KiB.
	others := padIDs(7, 999)
	for i := range others {
		others[i] = others[i][:58]
	}
	alice := f.dial("acme", "alice")
	told := []*client{alice, f.dial("acme", others[0]), f.dial("acme", others[0]), f.dial("acme", others[1]), f2.dial("acme", others[2]), f2.dial("acme", others[3])}

	counter := f.natsAs(natsauth.Admin) // an observer of every user subject
	var userMsgs, userBytes atomic.Int64
	sub, err := counter.Subscribe("chat.evt.user.acme.>", func(m *nats.Msg) {
		userMsgs.Add(1)
		userBytes.Add(int64(len(m.Subject) + len(m.Data)))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := counter.Flush(); err != nil {
		t.Fatal(err)
	}
	before1, before2 := historyFetches(t, reg), historyFetches(t, reg2)
	v0, _ := f.sys.NATS.Varz(nil)

	conv := alice.create(others...)
	frames := make([]wsclient.Frame, 0, len(told))
	for _, c := range told {
		frames = append(frames, c.event("conversation:updated"))
	}
	for deadline := time.Now().Add(wait); userMsgs.Load() < 1000 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	v1, _ := f.sys.NATS.Varz(nil)
	fetched1, fetched2 := historyFetches(t, reg)-before1, historyFetches(t, reg2)-before2
	t.Logf("create of 1,000: NATS in %d msgs %d bytes, out %d msgs %d bytes; user subjects %d msgs %d bytes; history fetches %d and %d",
		v1.InMsgs-v0.InMsgs, v1.InBytes-v0.InBytes, v1.OutMsgs-v0.OutMsgs, v1.OutBytes-v0.OutBytes, userMsgs.Load(), userBytes.Load(), fetched1, fetched2)
	if userMsgs.Load() != 1000 || userBytes.Load() > 1000*256 {
		t.Fatalf("user subjects carried %d messages, %d bytes: want 1,000 small ones", userMsgs.Load(), userBytes.Load())
	}
	if in := v1.InBytes - v0.InBytes; in > 1<<20 {
		t.Fatalf("the create put %d bytes into NATS", in)
	}
	if fetched1 != 1 || fetched2 != 1 {
		t.Fatalf("the edges fetched the event %d and %d times, want once each", fetched1, fetched2)
	}

	h := decode[historyPage](t, alice.do("conversation:history", map[string]any{"conversationId": conv, "afterSeq": 0, "limit": 1}))
	if len(h.Events) != 1 {
		t.Fatalf("history holds %d events", len(h.Events))
	}
	for i, fr := range frames {
		if string(fr.Data) != string(h.Events[0].Data) {
			t.Fatalf("%s got %.200s, history holds %.200s", told[i].name, fr.Data, h.Events[0].Data)
		}
	}
	up := decode[updatedJSON](t, frames[0].Data)
	if up.ConversationID != conv || len(up.Participants) != 1000 || up.PrevSeq != 0 || up.Participants[0] != "alice" {
		t.Fatalf("conversation:updated %s: %d participants, prevSeq %d", up.ConversationID, len(up.Participants), up.PrevSeq)
	}
	for _, c := range told {
		c.none("conversation:updated", 100*time.Millisecond)
	}
}

// Adds and removals of one user reach the user's connections in order,
// joined or not, each once: the joined one from the conversation, the
// other from the user's subject.
func TestAddAndRemoveReachTheUserInOrder(t *testing.T) {
	f := start(t)
	alice := f.dial("acme", "alice")
	carol, carol2 := f.dial("acme", "carol"), f.dial("acme", "carol")
	conv := alice.create("bob")
	add := map[string]any{"conversationId": conv, "userIds": []string{"carol"}}
	remove := map[string]any{"conversationId": conv, "userId": "carol"}
	const rounds = 5
	for range rounds {
		alice.do("conversation:add", add)
		alice.do("conversation:remove", remove)
	}
	for _, c := range []*client{carol, carol2} {
		var prev uint64
		for i := range 2 * rounds {
			e := decode[updatedJSON](t, c.event("conversation:updated").Data)
			in := slices.Contains(e.Participants, "carol")
			if e.ConversationID != conv || in != (i%2 == 0) || e.Seq <= prev || (prev != 0 && e.PrevSeq != prev) {
				t.Fatalf("%s event %d: %+v after seq %d", c.name, i, e, prev)
			}
			prev = e.Seq
		}
	}

	// Added again, carol joins on one connection; her removal reaches both
	// connections once.
	alice.do("conversation:add", add)
	for _, c := range []*client{carol, carol2} {
		c.event("conversation:updated")
	}
	carol.join(conv)
	alice.do("conversation:remove", remove)
	for _, c := range []*client{carol, carol2} {
		if e := decode[updatedJSON](t, c.event("conversation:updated").Data); slices.Contains(e.Participants, "carol") {
			t.Fatalf("%s: the removal still lists carol: %+v", c.name, e)
		}
		c.none("conversation:updated", 200*time.Millisecond)
	}
}
