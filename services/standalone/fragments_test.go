package standalone

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// fragmentStream is text of payload split into fragments of one byte each,
// masked, as one byte stream ready to write.
func fragmentStream(payload []byte) []byte {
	var buf bytes.Buffer
	for i := range payload {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		if err := ws.WriteFrame(&buf, maskedFrame(op, i == len(payload)-1, payload[i:i+1])); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// A 65,000-byte ping in 65,000 one-byte fragments (455 KB on the wire) is
// closed with 1008 at its 65th fragment, without the edge allocating much
// on its way, and another user's ping is answered meanwhile.
func TestManyFragmentsClose1008(t *testing.T) {
	f := start(t)
	bob := f.dial("acme", "bob")
	mallory := dialWire(t, f.sys.Addr(), token("acme", "mallory"), 0)
	mallory.until(wait, "session", func(fr wireFrame) bool { return textType(fr) == "session" })
	stream := fragmentStream(padJSON(`{"id":"big","type":"ping"}`, 65000))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	began := time.Now()
	go func() {
		_ = mallory.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, _ = mallory.nc.Write(stream) // fails once the edge closed: that is the point
	}()
	if p, err := bob.Request("bob-ping", "ping", nil, wait); err != nil || p.Type != "pong" {
		t.Fatalf("bob's ping during the fragments: %s %v", p, err)
	}
	end, _ := mallory.until(30*time.Second, "the close or the pong", func(fr wireFrame) bool {
		return fr.op == ws.OpClose || textType(fr) == "pong"
	})
	took := time.Since(began)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("65,000 fragments (%d bytes on the wire): answered after %v with %q (opcode %v); the process allocated %.1f MB meanwhile",
		len(stream), took, end.payload, end.op, float64(alloc)/1e6)
	if end.op != ws.OpClose || end.closeCode() != 1008 {
		t.Fatalf("the edge answered the 65,000-fragment message with %q (opcode %v), want a close with 1008", end.payload, end.op)
	}
	if alloc > 64<<20 {
		t.Fatalf("the process allocated %d bytes while the edge read the fragments", alloc)
	}
	bob.stillServes()
}
