package edge

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
)

func TestPeriodName(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "minute", 10 * time.Second: "10 seconds", time.Second: "second",
		time.Hour: "hour", 90 * time.Second: "90 seconds", 1500 * time.Millisecond: "1500 milliseconds",
	} {
		if got := periodName(d); got != want {
			t.Errorf("periodName(%v) = %q, want %q", d, got, want)
		}
	}
}

// refusalRig is one connection of a real edge whose send queue drains into
// a loopback socket, with its message:send bucket known to be empty.
func refusalRig(tb testing.TB) *conn {
	tb.Helper()
	nc := natstest.Conn(tb, natstest.Server(tb))
	s, err := New(nc, Config{Auth: AuthConfig{Secret: testSecret}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, client) }()
	tb.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	c := &conn{s: s, nc: server, id: "c1", org: "acme", user: "mallory", rooms: map[string]*room{}, buckets: map[string]*localBucket{}, done: make(chan struct{})}
	c.expires.Store(time.Now().Add(time.Hour).UnixNano())
	s.limiter.deny("acme.mallory.message:send", time.Now().Add(time.Hour).UnixNano())
	return c
}

var floodFrame = []byte(`{"id":"f1","type":"message:send","data":{"conversationId":"general","content":"spam","clientMsgId":"f1"}}`)

// A frame of a user whose bucket is known to be empty is refused at the
// edge: no NATS request, a rate-limit-exceeded reply.
func TestLocallyRefusedFrame(t *testing.T) {
	c := refusalRig(t)
	err := c.checkRate("message:send")
	if e := errs.As(err); e.Code != errs.CodeRateLimited || e.RetryAfter < 59*time.Minute {
		t.Fatalf("checkRate = %v", err)
	}
	var m dto.Metric
	if err := c.s.metrics.rateChecks.WithLabelValues("local_denied").Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("local denials counted: %v (%v)", m.GetCounter().GetValue(), err)
	}
	// Another bucket is not affected (it asks the service, here absent:
	// the per-connection fallback admits it).
	if err := c.checkRate("conversation:list"); err != nil {
		t.Fatalf("another bucket refused: %v", err)
	}
}

// A connection that sends only refused commands is closed with 1008 at
// the InvalidFrameLimit-th refusal, each refusal answered first.
func TestRefusedCommandsClose1008(t *testing.T) {
	c := refusalRig(t)
	limit := c.s.cfg.InvalidFrameLimit
	for i := 1; i < limit; i++ {
		if err := c.handle(floodFrame); err != nil {
			t.Fatalf("refusal %d of %d closed the connection: %v", i, limit, err)
		}
	}
	var ce *closeError
	if err := c.handle(floodFrame); !errors.As(err, &ce) || ce.code != ClosePolicy {
		t.Fatalf("refusal %d: %v, want a close with 1008", limit, err)
	}
	var m dto.Metric
	if err := c.s.metrics.commands.WithLabelValues("message:send", errs.CodeRateLimited).Write(&m); err != nil || m.GetCounter().GetValue() != float64(limit) {
		t.Fatalf("%v refusals answered, want %d (%v)", m.GetCounter().GetValue(), limit, err)
	}
}

// BenchmarkLocallyRefusedFrame is the whole cost of a flood frame at the
// edge: decode, the local denial, the rendered reply queued on the socket,
// the refusal counted toward the close.
func BenchmarkLocallyRefusedFrame(b *testing.B) {
	c := refusalRig(b)
	b.ReportAllocs()
	for b.Loop() {
		c.invalid.times = c.invalid.times[:0] // never reach the close
		if err := c.handle(floodFrame); err != nil {
			b.Fatal(err)
		}
		if len(c.invalid.times) != 1 {
			b.Fatal("the refusal was not counted toward the close")
		}
	}
}
