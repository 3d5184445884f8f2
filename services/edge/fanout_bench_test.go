package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// fanoutSockets is how many sockets joined the room of the fan-out tests.
const fanoutSockets = 1000

// fanoutRig is one room at a real edge Server whose members are server-side
// loopback TCP connections; the client side of each is drained by a
// goroutine that counts the bytes it receives.
type fanoutRig struct {
	room     *room
	ev       *chatv1.Event // reused: the room keeps no reference to a delivered event
	frameLen int           // every event's frame has this length (fixed-width seqs)
	timer    *time.Timer

	got  atomic.Int64  // bytes received by all clients
	want atomic.Int64  // bytes they should have received once the event is delivered
	done chan struct{} // signalled when got reaches want

	clients []*fanoutClient
	drains  sync.WaitGroup
}

type fanoutClient struct {
	nc    net.Conn
	first []byte // the first frameLen bytes received, to check the frame
}

// fanoutBase is the seq the room starts from: with 13 digits every seq of
// a run has the same width, so every frame has the same length.
const fanoutBase = 1_000_000_000_000

func newFanoutRig(tb testing.TB, sockets int) *fanoutRig {
	tb.Helper()
	return newFanoutRigOf(tb, sockets, false)
}

// newFanoutRigOf is newFanoutRig whose sockets are Socket.IO sessions when
// socketIO is set.
func newFanoutRigOf(tb testing.TB, sockets int, socketIO bool) *fanoutRig {
	tb.Helper()
	nc := natstest.Conn(tb, natstest.Server(tb))
	s, err := New(nc, Config{
		Auth:   AuthConfig{Secret: testSecret},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})

	rig := &fanoutRig{
		ev: &chatv1.Event{ConversationId: "general", Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{
			MessageId: "01JD0000000000000000000000", SenderId: "alice", ClientMsgId: "9b1f0c",
			Content:     strings.Repeat("hello, world ", 8),
			CreatedAtMs: time.Date(2026, 11, 26, 10, 0, 0, 123e6, time.UTC).UnixMilli(),
		}}},
		timer: time.NewTimer(time.Hour),
		done:  make(chan struct{}, 1),
	}
	rig.timer.Stop()
	rig.ev.Seq, rig.ev.PrevSeq = fanoutBase+1, fanoutBase
	want := eventFrame(rig.ev) // the first event's
	if socketIO {
		want = textFrame(sioPacketOf(framePayload(want)))
	}
	rig.frameLen = len(want)
	rig.ev.Seq = fanoutBase // deliver steps to fanoutBase+1

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	var servers []net.Conn
	tb.Cleanup(func() {
		for _, c := range servers {
			_ = c.Close()
		}
		for _, c := range rig.clients {
			_ = c.nc.Close()
		}
		rig.drains.Wait()
	})
	for i := range sockets {
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatalf("dial %d: %v", i, err)
		}
		cl := &fanoutClient{nc: cc, first: make([]byte, 0, rig.frameLen)}
		rig.clients = append(rig.clients, cl)
		rig.drains.Add(1)
		go rig.drain(cl)
		sc, err := ln.Accept()
		if err != nil {
			tb.Fatalf("accept %d: %v", i, err)
		}
		servers = append(servers, sc)
		// The fields that send, flush and the room use.
		c := &conn{s: s, nc: sc, seq: connSeq.Add(1), id: fmt.Sprintf("conn%d", i), org: "acme", user: fmt.Sprintf("user%d", i),
			rooms: map[string]*room{}, done: make(chan struct{})}
		if socketIO {
			c.sio = &sioSession{x: s.sio}
		}
		r, err := s.hub.acquire(c, "general")
		if err != nil {
			tb.Fatal(err)
		}
		r.ready(c, fanoutBase, nil, nil)
		rig.room = r
	}
	if n := rig.room.size(); n != sockets {
		tb.Fatalf("room has %d members, want %d", n, sockets)
	}

	// The first event checks what every client receives.
	rig.deliver(tb)
	for i, cl := range rig.clients {
		if !bytes.Equal(cl.first, want) {
			tb.Fatalf("client %d received %q, want %q", i, cl.first, want)
		}
	}
	return rig
}

// drain reads a client socket until it is closed.
func (rig *fanoutRig) drain(cl *fanoutClient) {
	defer rig.drains.Done()
	buf := make([]byte, 4<<10)
	for {
		n, err := cl.nc.Read(buf)
		if k := min(n, cap(cl.first)-len(cl.first)); k > 0 {
			cl.first = append(cl.first, buf[:k]...)
		}
		if n > 0 && rig.got.Add(int64(n)) == rig.want.Load() {
			rig.done <- struct{}{}
		}
		if err != nil {
			return
		}
	}
}

// deliver hands the room the next durable event (seq = last + 1, prevSeq =
// last, so the sequencer delivers it at once) and waits until every client
// received its frame.
func (rig *fanoutRig) deliver(tb testing.TB) {
	rig.ev.PrevSeq = rig.ev.Seq
	rig.ev.Seq++
	rig.want.Add(int64(rig.frameLen * len(rig.clients)))
	rig.room.receive(rig.ev)
	rig.timer.Reset(10 * time.Second)
	select {
	case <-rig.done:
		rig.timer.Stop()
	case <-rig.timer.C:
		tb.Fatalf("event %d: clients received %d of %d bytes within 10s", rig.ev.Seq, rig.got.Load(), rig.want.Load())
	}
}

// BenchmarkFanout1000 delivers one event to 1,000 sockets of one room:
// rendered once, queued on every socket, written to loopback TCP and read
// by every client.
func BenchmarkFanout1000(b *testing.B) {
	rig := newFanoutRig(b, fanoutSockets)
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

// TestFanoutAllocsPerSocket fails when delivering an event allocates per
// socket: the frame is rendered once and the same bytes are queued on every
// socket, so allocations are per event, a few dozen for 1,000 sockets.
func TestFanoutAllocsPerSocket(t *testing.T) {
	rig := newFanoutRig(t, fanoutSockets)
	// Warm up: every socket's queue and spare slices exist (the first two
	// frames of a socket allocate them), and the scheduler has writer
	// goroutines to reuse.
	for range 20 {
		rig.deliver(t)
	}
	if raceEnabled {
		t.Skip("the race detector allocates on its own: fan-out ran, allocations not counted")
	}
	perEvent := testing.AllocsPerRun(100, func() { rig.deliver(t) })
	perSocket := perEvent / fanoutSockets
	t.Logf("%.0f allocations per event to %d sockets: %.3f per socket", perEvent, fanoutSockets, perSocket)
	// 0.5 leaves room for per-event allocations (rendering, metrics) while
	// one allocation per socket (1.0 or more) fails.
	if perSocket >= 0.5 {
		t.Errorf("%.3f allocations per socket per event, want < 0.5 (%.0f per event)", perSocket, perEvent)
	}
}
