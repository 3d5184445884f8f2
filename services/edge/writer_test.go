package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
)

// writerRig is an edge Server and loopback sockets made into conns.
type writerRig struct {
	s  *Server
	ln net.Listener
}

func newWriterRig(t *testing.T, cfg Config) *writerRig {
	t.Helper()
	cfg.Auth = AuthConfig{Secret: testSecret}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(natstest.Conn(t, natstest.Server(t)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &writerRig{s: s, ln: ln}
}

// conn returns a conn on the server side of a new socket, registered with
// the janitor, and the client side.
func (r *writerRig) conn(t *testing.T, name string) (*conn, net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := r.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	c := &conn{s: r.s, nc: server, seq: connSeq.Add(1), id: name, org: "acme", user: name,
		rooms: map[string]*room{}, buckets: map[string]*localBucket{}, done: make(chan struct{})}
	now := time.Now()
	c.lastRead.Store(now.UnixNano())
	c.lastActive.Store(now.UnixNano())
	c.lastPing = now.UnixNano()
	c.expires.Store(now.Add(time.Hour).UnixNano())
	r.s.conns.add(c)
	return c, client
}

// A writer writes a connection's whole queue with one system call.
func TestWriterWritesTheQueueAtOnce(t *testing.T) {
	r := newWriterRig(t, Config{})
	c, client := r.conn(t, "c1")
	var batch [][]byte
	var want []byte
	for i := range 100 {
		f := textFrame(fmt.Appendf(nil, `{"type":"n","data":%d}`, i))
		batch = append(batch, f)
		want = append(want, f...)
	}
	w := &writer{p: r.s.writers, buf: make([]byte, 0, writerBuffer), m: r.s.metrics}
	w.fn = w.rawWrite
	before := testutil.ToFloat64(r.s.metrics.writes)
	rest, err := w.write(c.writeState().raw, batch)
	if err != nil || rest != nil {
		t.Fatalf("write: rest %d frames, %v", len(rest), err)
	}
	if n := testutil.ToFloat64(r.s.metrics.writes) - before; n != 1 {
		t.Fatalf("%v system calls for 100 queued frames, want 1", n)
	}
	got := make([]byte, len(want))
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client read %v: frames differ", err)
	}
}

// A socket that takes nothing: the writer hands back exactly what it could
// not write, without waiting.
func TestWriterReturnsWhatTheSocketDidNotTake(t *testing.T) {
	r := newWriterRig(t, Config{})
	c, _ := r.conn(t, "c1")
	big := bytes.Repeat([]byte("x"), 100<<10)
	var batch [][]byte
	total := 0
	for range 400 { // 40 MB: more than loopback socket buffers hold
		f := textFrame(big)
		batch = append(batch, f)
		total += len(f)
	}
	w := &writer{p: r.s.writers, buf: make([]byte, 0, writerBuffer), m: r.s.metrics}
	w.fn = w.rawWrite
	start := time.Now()
	rest, err := w.write(c.writeState().raw, batch)
	if err != nil || rest == nil {
		t.Fatalf("write to a socket nobody reads: rest %v, err %v", rest != nil, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("write waited %v", d)
	}
	left := 0
	for _, f := range rest {
		left += len(f)
	}
	first := len(batch) - len(rest)
	if !bytes.HasSuffix(textFrame(big), rest[0]) || left >= total || first < 0 {
		t.Fatalf("rest: %d bytes in %d frames of %d; not a tail of the batch", left, len(rest), len(batch))
	}
	t.Logf("the socket took %d of %d bytes", total-left, total)
}

// A write stuck on a socket nobody reads ends within WriteTimeout (and a
// sweep) by the janitor, while the writers go on serving other sockets.
func TestStuckWriteIsClosedByTheJanitor(t *testing.T) {
	r := newWriterRig(t, Config{WriteTimeout: 300 * time.Millisecond, SweepInterval: 50 * time.Millisecond,
		SendQueueFrames: 1 << 16, SendQueueBytes: 64 << 20, IdleTimeout: time.Hour})
	stuck, _ := r.conn(t, "stuck")
	other, client := r.conn(t, "other")
	big := textFrame(bytes.Repeat([]byte("x"), 100<<10))
	for i := range 400 {
		if !stuck.send(big) {
			t.Fatalf("frame %d refused", i)
		}
	}
	f := textFrame([]byte(`{"type":"hello"}`))
	other.send(f)
	got := make([]byte, len(f))
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, f) {
		t.Fatalf("the other socket got %q, %v", got, err)
	}
	select {
	case <-stuck.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the stuck socket is open 10s later (WriteTimeout 300ms)")
	}
	if n := testutil.ToFloat64(r.s.metrics.blocked); n < 1 {
		t.Fatalf("%v blocked writes, want at least 1", n)
	}
	if stuck.send(f) {
		t.Fatalf("a closed connection took a frame")
	}
}
