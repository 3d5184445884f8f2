package standalone

// Conformance to docs/protocol.md section 3, "Commands", end to end: the
// ping command. The other commands are tested by feature in the other
// files of this package (chat, history, receipts, presence, rate limits).

import (
	"testing"
	"time"
)

func TestPingCommand(t *testing.T) {
	f := start(t)
	c := f.dial("acme", "alice")
	if err := c.Send("", "ping", nil); err != nil {
		t.Fatal(err)
	}
	p, err := c.Next("pong", wait)
	if err != nil || p.ID != "" || len(p.Data) != 0 {
		t.Fatalf(`{"type":"ping"}: got %s %v, want {"type":"pong"}`, p, err)
	}
	for _, data := range []any{nil, map[string]any{}} {
		r, err := c.Request("p-1", "ping", data, wait)
		if err != nil || r.Type != "pong" || len(r.Data) != 0 {
			t.Fatalf("ping with id and data %v: %s %v", data, r, err)
		}
	}
	c.none("ack", 200*time.Millisecond)
}
