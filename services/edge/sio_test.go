package edge

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// Every frame render.go makes becomes the packet docs/protocol.md section
// 6 names, through the fast path and the decoding one alike.
func TestSocketIOPackets(t *testing.T) {
	msgNew := eventFrame(&chatv1.Event{ConversationId: "c1", Seq: 5, PrevSeq: 3, Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{
		MessageId: "m1", SenderId: "bob", Content: `say "hi" \ there`, ClientMsgId: "x", CreatedAtMs: 1,
	}}})
	rate := errs.New(errs.CodeRateLimited, "message:send is limited to 10 per minute")
	rate.RetryAfter = 4200 * time.Millisecond
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"event", msgNew, `42["message:new",{"conversationId":"c1","messageId":"m1","seq":5,"prevSeq":3,"senderId":"bob","content":"say \"hi\" \\ there","clientMsgId":"x","createdAt":"1970-01-01T00:00:00.001Z"}]`},
		{"event without data", jsonFrame(eventJSON{Type: "pong"}), `42["pong"]`},
		{"ack", ackFrame("7", struct {
			Seq int `json:"seq"`
		}{42}), `437[{"seq":42}]`},
		{"empty ack", ackFrame("0", struct{}{}), `430[{}]`},
		{"pong reply", pongReply("12"), `4312[{}]`},
		{"validation error reply", errorReply("3", errs.Invalid(errs.Field{Field: "content", Reason: "is required"})),
			`433[{"error":{"type":"validation-error","code":"validation_failed","message":"invalid command","fields":[{"field":"content","reason":"is required"}]}}]`},
		{"rate limit reply", errorReply("4", rate), `434[{"error":{"type":"rate-limit-exceeded","code":"rate_limited","message":"message:send is limited to 10 per minute","retryAfterMs":4200}}]`},
		{"error without id", errorReply("", errs.Forbidden("no")), `42["error",{"code":"forbidden","message":"no"}]`},
		{"spaced (decoded)", textFrame([]byte(`{ "type": "typing", "data": {"a": 1} }`)), `42["typing",{"a": 1}]`},
		{"escaped type (decoded)", textFrame([]byte(`{"id":"9","type":"a\u0063k","data":{}}`)), `439[{}]`},
		{"a large event", eventFrame(&chatv1.Event{ConversationId: "c1", Body: &chatv1.Event_MessageEdited{MessageEdited: &chatv1.MessageEdited{
			MessageId: "m1", SenderId: "bob", Content: strings.Repeat("x", 70000),
		}}}), `42["message:edited",{"conversationId":"c1","messageId":"m1","seq":0,"prevSeq":0,"senderId":"bob","content":"` + strings.Repeat("x", 70000) + `","editedAt":"1970-01-01T00:00:00.000Z"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := &sioSession{x: newSocketIO(&Server{})}
			out := ss.outgoing(tc.frame)
			if got := string(framePayload(out)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(framePayload(out)[2+digits(framePayload(out)[2:]):]) {
				t.Fatalf("payload of %s is not JSON", out)
			}
		})
	}
}

func TestSocketIOFramesPassThrough(t *testing.T) {
	ss := &sioSession{x: newSocketIO(&Server{})}
	for _, f := range [][]byte{frame(ws.OpPong, []byte("p")), textFrame([]byte(`40{"sid":"x"}`)), closeFrame(1000, "")} {
		if got := ss.outgoing(f); string(got) != string(f) {
			t.Errorf("%q became %q", f, got)
		}
	}
	before := time.Now().UnixNano()
	if got := ss.outgoing(pingFrame); string(got) != string(sioPingFrame) || ss.pingAt.Load() < before {
		t.Errorf("the WebSocket ping became %q (ping at %d)", got, ss.pingAt.Load())
	}
	// An unanswered ping keeps its time; after a pong the next one counts.
	first := ss.pingAt.Load()
	ss.outgoing(pingFrame)
	if ss.pingAt.Load() != first {
		t.Errorf("a second ping moved the deadline of an unanswered one")
	}
	ss.ponged.Store(true)
	time.Sleep(time.Millisecond)
	ss.outgoing(pingFrame)
	if ss.pingAt.Load() == first || ss.ponged.Load() {
		t.Errorf("a ping after a pong did not start a new wait")
	}
	q := ss.notice(nil, CloseRestart, "server restarting")
	if len(q) != 2 || string(framePayload(q[0])) != `42["error",{"code":1012,"message":"server restarting"}]` || string(q[1]) != string(sioDisconnectFrame) {
		t.Errorf("notice of 1012: %q", q)
	}
	if q := ss.notice(nil, CloseNormal, "ping timeout"); len(q) != 0 {
		t.Errorf("notice of 1000: %q", q)
	}
	if q := ss.notice(nil, CloseAuthFailures, ""); len(q) != 0 {
		t.Errorf("notice of an echoed close: %q", q)
	}
}

func TestParseSocketIO(t *testing.T) {
	for in, want := range map[string]sioPacket{
		`0`:                              {typ: sioConnect, nsp: "/"},
		`0{"token":"t"}`:                 {typ: sioConnect, nsp: "/", data: []byte(`{"token":"t"}`)},
		`0/chat,{"token":"t"}`:           {typ: sioConnect, nsp: "/chat", data: []byte(`{"token":"t"}`)},
		`0/chat`:                         {typ: sioConnect, nsp: "/chat"},
		`2["ping"]`:                      {typ: sioEvent, nsp: "/", data: []byte(`["ping"]`)},
		`217["a",{}]`:                    {typ: sioEvent, nsp: "/", id: "17", data: []byte(`["a",{}]`)},
		`2/x,3["a"]`:                     {typ: sioEvent, nsp: "/x", id: "3", data: []byte(`["a"]`)},
		`51-["a",{"_placeholder":true}]`: {typ: sioBinaryEvent, nsp: "/", attachments: 1, data: []byte(`["a",{"_placeholder":true}]`)},
		`52-9["a"]`:                      {typ: sioBinaryEvent, nsp: "/", attachments: 2, id: "9", data: []byte(`["a"]`)},
		`35[]`:                           {typ: sioAck, nsp: "/", id: "5", data: []byte(`[]`)},
		`1`:                              {typ: sioDisconnect, nsp: "/"},
	} {
		got, err := parseSIO([]byte(in))
		if err != nil || got.typ != want.typ || got.nsp != want.nsp || got.id != want.id || got.attachments != want.attachments || string(got.data) != string(want.data) {
			t.Errorf("parseSIO(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{``, `7`, `x`, `2`, `2{}`, `2[]`, `2"a"`, `2a["x"]`, `21a["x"]`, `2["x"`, `0[1]`, `0"t"`, `1{}`,
		`5["a"]`, `5x-["a"]`, `51["a"]`, `51001-["a"]`, `3[]`, `31{}`, `2` + strings.Repeat("1", 65) + `["a"]`} {
		_, err := parseSIO([]byte(in))
		if ce, ok := err.(*closeError); !ok || ce.code != ClosePolicy {
			t.Errorf("parseSIO(%q): %v, want a 1008 close", in, err)
		}
	}
}

func FuzzParseSocketIO(f *testing.F) {
	for _, s := range []string{`0{"token":"t"}`, `217["a",{}]`, `52-9["a"]`, `2/x,3["a"]`, `35[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSIO(b)
		if err != nil {
			return
		}
		if (p.typ == sioEvent || p.typ == sioBinaryEvent) && len(p.args) == 0 {
			t.Fatalf("%q: an event without arguments passed", b)
		}
		if p.id != "" && digits([]byte(p.id)) != len(p.id) {
			t.Fatalf("%q: ack id %q", b, p.id)
		}
		if p.typ == sioEvent {
			_, _ = sioCommand(p) // must not panic
		}
	})
}

// An event fanned out to Socket.IO sockets is made into a packet once, not
// once per socket.
func TestSocketIOFanoutAllocsPerSocket(t *testing.T) {
	rig := newFanoutRigOf(t, fanoutSockets, true)
	for range 20 {
		rig.deliver(t)
	}
	if raceEnabled {
		t.Skip("the race detector allocates on its own: fan-out ran, allocations not counted")
	}
	perEvent := testing.AllocsPerRun(100, func() { rig.deliver(t) })
	perSocket := perEvent / fanoutSockets
	t.Logf("%.0f allocations per event to %d Socket.IO sockets: %.3f per socket", perEvent, fanoutSockets, perSocket)
	if perSocket >= 0.5 {
		t.Errorf("%.3f allocations per socket per event, want < 0.5 (%.0f per event)", perSocket, perEvent)
	}
}

// BenchmarkSocketIOFanout1000 is BenchmarkFanout1000 to Socket.IO sockets.
func BenchmarkSocketIOFanout1000(b *testing.B) {
	rig := newFanoutRigOf(b, fanoutSockets, true)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rig.deliver(b)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	deliveries := float64(b.N * fanoutSockets)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
}
