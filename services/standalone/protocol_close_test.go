package standalone

// Conformance to docs/protocol.md section 5, "Close codes", end to end:
// 1002, 1003, 1007 and 1009 for frame defects, 1008 for ten invalid
// commands (and for text that is not JSON), 1012 on shutdown, 1013 for a
// client that cannot keep up. 1000 (the idle timeout) is tested with
// keep-alive in protocol_transport_test.go, 4001 and 4003 in
// protocol_token_expiry_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/services/edge"
)

// padJSON pads a command with spaces to n bytes.
func padJSON(cmd string, n int) []byte {
	return append([]byte(cmd), bytes.Repeat([]byte(" "), n-len(cmd))...)
}

func TestFrameDefectsClose(t *testing.T) {
	f := start(t)
	bystander := f.dial("acme", "bob")
	big := 64 << 10
	cases := []struct {
		name string
		send func(c *client) error
		code int
	}{
		{"binary frame", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpBinary, true, []byte(`{"type":"ping"}`)))
		}, 1003},
		{"message over 64 KiB", func(c *client) error {
			return c.SendText(padJSON(`{"id":"x","type":"ping"}`, big+1))
		}, 1009},
		{"fragmented message over 64 KiB", func(c *client) error {
			part := bytes.Repeat([]byte(" "), 30000)
			for i, op := range []ws.OpCode{ws.OpText, ws.OpContinuation, ws.OpContinuation} {
				if err := c.WriteFrame(maskedFrame(op, i == 2, part)); err != nil {
					return err
				}
			}
			return nil
		}, 1009},
		{"invalid UTF-8", func(c *client) error {
			return c.SendText([]byte("{\"id\":\"u\",\"type\":\"ping\",\"x\":\"\xff\xfe\"}"))
		}, 1007},
		{"invalid UTF-8 split across fragments", func(c *client) error {
			if err := c.WriteFrame(maskedFrame(ws.OpText, false, []byte("{\"id\":\"\xe2\x82"))); err != nil {
				return err
			}
			return c.WriteFrame(maskedFrame(ws.OpContinuation, true, []byte("\"}")))
		}, 1007},
		{"text that is not JSON", func(c *client) error { return c.SendText([]byte("hello")) }, 1008},
		{"truncated JSON", func(c *client) error { return c.SendText([]byte(`{"type":"ping"`)) }, 1008},
		{"unmasked client frame", func(c *client) error {
			return c.WriteFrame(ws.NewTextFrame([]byte(`{"type":"ping"}`)))
		}, 1002},
		{"continuation without a message", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpContinuation, true, []byte(`{}`)))
		}, 1002},
		{"fragmented ping", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpPing, false, []byte("p")))
		}, 1002},
		{"reserved bit set", func(c *client) error {
			fr := ws.NewTextFrame([]byte(`{"type":"ping"}`))
			fr.Header.Rsv = ws.Rsv(true, false, false)
			return c.WriteFrame(ws.MaskFrame(fr))
		}, 1002},
		{"reserved opcode", func(c *client) error {
			return c.WriteFrame(maskedFrame(ws.OpCode(0x3), true, []byte(`{}`)))
		}, 1002},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			victim := f.dial("acme", "alice")
			if err := tc.send(victim); err != nil {
				t.Fatalf("send: %v", err)
			}
			closedWith(t, victim.Client, tc.code)
			bystander.with(t).stillServes()
		})
	}
	t.Run("a message of exactly 64 KiB is accepted", func(t *testing.T) {
		f := f.with(t)
		c := f.dial("acme", "alice")
		if err := c.SendText(padJSON(`{"id":"exact","type":"ping"}`, big)); err != nil {
			t.Fatal(err)
		}
		r, err := c.Reply("exact", wait)
		if err != nil || r.Type != "pong" {
			t.Fatalf("reply to a 64 KiB ping: %s %v", r, err)
		}
	})
}

func TestTenInvalidCommandsClose1008(t *testing.T) {
	f := start(t)
	bystander := f.dial("acme", "bob")
	c := f.dial("acme", "alice")
	for i := 1; i <= 10; i++ {
		r := c.try("message:sing", map[string]any{"n": i})
		wantError(t, r, "validation-error", "validation_failed")
		if i < 10 {
			// Still open, and valid commands do not reset the count.
			if p, err := c.Request(fmt.Sprintf("ok-%d", i), "ping", nil, wait); err != nil || p.Type != "pong" {
				t.Fatalf("after %d invalid commands: %s %v", i, p, err)
			}
		}
	}
	closedWith(t, c.Client, 1008)
	bystander.stillServes()
	// Another connection of the same user has its own count.
	f.dial("acme", "alice").stillServes()
}

func TestShutdownCloses1012(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger()}
	cfg.Edge.Auth = edge.AuthConfig{Secret: secret}
	sys, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	shutdown := func() error {
		err := context.Canceled
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = sys.Shutdown(ctx)
		})
		return err
	}
	t.Cleanup(func() { _ = shutdown() })
	f := newFixture(t, sys, "ws://"+sys.Addr()+"/ws")
	alice, alice2, bob := f.dial("acme", "alice"), f.dial("acme", "alice"), f.dial("acme", "bob")
	conv := alice.create("bob")
	alice.join(conv)
	bob.join(conv)
	began := time.Now()
	if err := shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Shutdown took %v", took)
	}
	for _, c := range []*client{alice, alice2, bob} {
		closedWith(t, c.Client, 1012)
	}
	if c, err := wsclient.DialToken(context.Background(), f.url, token("acme", "alice")); err == nil {
		c.Kill()
		t.Fatal("a connection was accepted after Shutdown")
	}
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// metricSum sums a metric's samples on the /metrics of the metrics
// listener at addr.
func metricSum(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func TestSlowClientIsClosedAndOthersUnaffected(t *testing.T) {
	// Whatever waited on dave's stuck socket would wait for the write
	// timeout, so it is long here; the bounds of this test are a quarter
	// of it: far below what waiting on dave takes, far above what a
	// loaded machine adds.
	const writeTimeout = 20 * time.Second
	const bound = writeTimeout / 4
	f := start(t, func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.Edge.SendQueueFrames = 64
		c.Edge.WriteTimeout = writeTimeout
		set, err := limits.Parse(limits.Defaults(), "message:send=100000/1s")
		if err != nil {
			t.Fatal(err)
		}
		c.Edge.Limits = set
	})
	addr, metrics := f.sys.Addr(), f.sys.MetricsAddr()
	alice := f.dial("acme", "alice") // sends, never joins
	carol := f.dial("acme", "carol") // reads everything
	conv := alice.create("carol", "dave")
	carol.join(conv)

	// dave joins by hand, then never reads again.
	dave := dialWire(t, addr, token("acme", "dave"), 4096)
	dave.command("j", "conversation:join", map[string]any{"conversationId": conv})
	if r := dave.reply("j"); r.Type != "ack" {
		t.Fatalf("dave's join: %s", r)
	}

	// carol's reader records when each event arrives.
	type arrival struct {
		ev msgEvent
		at time.Time
	}
	arrivals := make(chan arrival, 1<<14)
	stopReading := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		for {
			e, err := carol.Next("message:new", 200*time.Millisecond)
			if err == wsclient.ErrTimeout {
				select {
				case <-stopReading:
					readerDone <- nil
					return
				default:
					continue
				}
			}
			if err != nil {
				readerDone <- err
				return
			}
			var m msgEvent
			_ = json.Unmarshal(e.Data, &m)
			arrivals <- arrival{m, time.Now()}
		}
	}()

	content := strings.Repeat("x", 3000)
	var acks []sendAck
	ackAt := map[uint64]time.Time{}
	overflowAt := -1
	const maxMessages = 4000
	for i := 0; i < maxMessages; i++ {
		a := decode[sendAck](t, alice.do("message:send", map[string]any{"conversationId": conv, "content": content, "clientMsgId": fmt.Sprintf("s-%d", i)}))
		ackAt[a.Seq] = time.Now()
		acks = append(acks, a)
		if overflowAt < 0 && i%25 == 24 && metricSum(t, metrics, "switchboard_edge_send_queue_overflows_total") >= 1 {
			overflowAt = i
		}
		if overflowAt >= 0 && i >= overflowAt+50 {
			break
		}
	}
	if overflowAt < 0 {
		t.Fatalf("no send queue overflow after %d messages of %d bytes to a client that does not read", len(acks), len(content))
	}
	t.Logf("overflow seen after %d messages; %d sent", overflowAt+1, len(acks))

	// dave's connection is gone soon, though he still reads nothing: a
	// stuck socket does not hold the server for a whole write timeout.
	for gone := time.Now().Add(bound); ; {
		n := metricSum(t, metrics, "switchboard_edge_connections", `org="acme"`)
		if n == 2 {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("%v acme connections %v after the overflow, want 2 (alice and carol)", n, bound)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// carol got every message, in order, promptly.
	var got []arrival
	deadline := time.After(wait)
	for len(got) < len(acks) {
		select {
		case a := <-arrivals:
			got = append(got, a)
		case <-deadline:
			code, reason, err := carol.CloseCode(0)
			t.Fatalf("carol got %d of %d messages (her socket: close %d %q %v; overflows %v)", len(got), len(acks),
				code, reason, err, metricSum(t, metrics, "switchboard_edge_send_queue_overflows_total"))
		}
	}
	close(stopReading)
	if err := <-readerDone; err != nil {
		t.Fatalf("carol's connection: %v", err)
	}

	// dave's socket ends; if its close frame got through, it says 1013.
	var frames []wireFrame
	var end error
	for end == nil {
		var fr wireFrame
		fr, end = dave.read(time.Now().Add(wait))
		if end == nil {
			frames = append(frames, fr)
		}
	}
	// A frame cut short by the server's write deadline also ends it: the
	// socket could not take the rest.
	if !isEOF(end) && !errors.Is(end, io.ErrUnexpectedEOF) {
		t.Fatalf("dave's socket did not end: %v after %d frames", end, len(frames))
	}
	msgs, closeCode := 0, 0
	for i, fr := range frames {
		switch {
		case textType(fr) == "message:new":
			msgs++
		case fr.op == ws.OpClose:
			closeCode = fr.closeCode()
			if i != len(frames)-1 {
				t.Fatalf("frames after the close frame")
			}
		}
	}
	t.Logf("dave read %d messages of %d, then close code %d (0: none arrived), then %v", msgs, len(acks), closeCode, end)
	if closeCode != 0 && closeCode != 1013 {
		t.Fatalf("dave's close code %d, want 1013", closeCode)
	}
	if msgs >= len(acks) {
		t.Fatalf("dave got every message: the test did not make him slow")
	}

	// Latency: from the sender's ack to carol's receipt. A fan-out that
	// waited on dave's socket would hold carol's copy of the first message
	// his buffers could not take (the first he did not get), and of every
	// one after it, until a write to him timed out: for writeTimeout. A
	// loaded machine delays a message by milliseconds, at worst by a second
	// or so, never by a quarter of writeTimeout. (A median over the stretch
	// dave never got is no better: it spans a fraction of a second, so one
	// stall of the machine moves it.)
	var lat, stuck []time.Duration
	worst, worstAt := time.Duration(0), 0
	for i, a := range got {
		if a.ev.Seq != acks[i].Seq || (i > 0 && a.ev.PrevSeq != acks[i-1].Seq) {
			t.Fatalf("carol's message %d: seq %d prevSeq %d, want seq %d after %d", i, a.ev.Seq, a.ev.PrevSeq, acks[i].Seq, acks[max(i-1, 0)].Seq)
		}
		d := a.at.Sub(ackAt[a.ev.Seq])
		if d > worst {
			worst, worstAt = d, i
		}
		lat = append(lat, d)
		if i >= msgs {
			stuck = append(stuck, d)
		}
	}
	sortDurations(lat)
	sortDurations(stuck)
	t.Logf("carol's delivery after the sender's ack: p50 %v, p99 %v, max %v (message %d); p50 %v from message %d on, which dave never got",
		lat[len(lat)/2], lat[len(lat)*99/100], worst, worstAt, stuck[len(stuck)/2], msgs)
	if worst > bound {
		t.Fatalf("carol waited %v for message %d (dave never got message %d on): held by the slow client", worst, worstAt, msgs)
	}
	if n := metricSum(t, metrics, "switchboard_edge_send_queue_overflows_total"); n != 1 {
		t.Fatalf("%v send queue overflows, want 1 (dave's only)", n)
	}
	if n := metricSum(t, metrics, "switchboard_edge_closes_total", `code="1013"`); n != 1 {
		t.Fatalf("closes with 1013: %v, want 1", n)
	}
	carol.stillServes()
}
