package standalone

import (
	"testing"
	"time"
)

// The edge watches idle sockets with epoll on Linux; elsewhere, and with
// NoPoller, each connection has a reader goroutine. Both paths chat, keep
// a connection that answers pings past the idle timeout, and close on a
// bad frame.
func TestBothReaderPaths(t *testing.T) {
	for _, noPoller := range []bool{false, true} {
		name := map[bool]string{false: "polled", true: "reader goroutines"}[noPoller]
		t.Run(name, func(t *testing.T) {
			f := start(t, func(c *Config) {
				c.Edge.NoPoller = noPoller
				c.Edge.IdleTimeout = 1500 * time.Millisecond
				c.Edge.SweepInterval = 100 * time.Millisecond
			})
			alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
			conv := alice.create("bob")
			alice.join(conv)
			bob.join(conv)
			for i := range 20 {
				m := alice.send(conv, "x")
				if e := decode[msgEvent](t, bob.event("message:new").Data); e.Seq != m.Seq {
					t.Fatalf("message %d: bob got seq %d, want %d", i, e.Seq, m.Seq)
				}
			}
			bob.do("conversation:list", nil)
			if err := bob.SendText([]byte("not json")); err != nil {
				t.Fatal(err)
			}
			if code, _, err := bob.CloseCode(wait); err != nil || code != 1008 {
				t.Fatalf("not JSON: close %d (%v)", code, err)
			}
			// alice sends nothing past the idle timeout but answers the
			// server's pings: she stays, and her next command works.
			time.Sleep(2500 * time.Millisecond)
			if alice.Pings() == 0 {
				t.Fatal("no server ping")
			}
			alice.do("conversation:list", nil)
		})
	}
}
