package standalone

import (
	"fmt"
	"testing"
)

func TestJoinsPerConnectionAreCapped(t *testing.T) {
	f := start(t, func(c *Config) { c.Edge.MaxJoinsPerConnection = 3 })
	alice := f.dial("acme", "alice")
	convs := make([]string, 5)
	for i := range convs {
		convs[i] = alice.create("bob")
	}
	for _, conv := range convs[:3] {
		alice.join(conv)
	}
	r := alice.fails("conversation:join", map[string]any{"conversationId": convs[3]}, "error", "conflict")
	t.Logf("4th join: %s", r)
	alice.join(convs[1]) // joined already: does not count twice

	alice.do("conversation:leave", map[string]any{"conversationId": convs[0]})
	alice.join(convs[3])
	alice.fails("conversation:join", map[string]any{"conversationId": convs[4]}, "error", "conflict")

	// A membership change that takes the connection out of a room frees
	// its place: the client need not leave what it was removed from.
	alice.do("conversation:remove", map[string]any{"conversationId": convs[1], "userId": "alice"})
	alice.event("conversation:updated")
	alice.join(convs[4])

	// The cap is per connection.
	other := f.dial("acme", "alice")
	other.join(convs[2])
}

// TestJoinsPerConnectionDefaultCap joins 500 conversations on one
// connection, the default cap: the 501st is refused.
func TestJoinsPerConnectionDefaultCap(t *testing.T) {
	const n = 500
	f := start(t)
	alice := f.dial("acme", "alice")
	var creates, joins []command
	for i := range n + 1 {
		creates = append(creates, command{"conversation:create", map[string]any{"participants": []string{}, "title": fmt.Sprint(i)}})
	}
	convs := make([]string, 0, n+1)
	for _, data := range pipeline(t, alice, creates) {
		convs = append(convs, decode[createAck](t, data).ConversationID)
	}
	for _, conv := range convs[:n] {
		joins = append(joins, command{"conversation:join", map[string]any{"conversationId": conv}})
	}
	pipeline(t, alice, joins)
	alice.fails("conversation:join", map[string]any{"conversationId": convs[n]}, "error", "conflict")
	alice.join(convs[0])
	alice.do("conversation:leave", map[string]any{"conversationId": convs[0]})
	alice.join(convs[n])
}

type command struct {
	typ  string
	data any
}

// pipeline sends cmds on c a batch at a time and returns their acks' data
// in order, failing on any other reply.
func pipeline(t *testing.T, c *client, cmds []command) [][]byte {
	t.Helper()
	const batch = 50
	var out [][]byte
	for len(cmds) > 0 {
		k := min(batch, len(cmds))
		ids := make([]string, k)
		for i, cmd := range cmds[:k] {
			ids[i] = fmt.Sprintf("p-%d", c.f.ids.Add(1))
			if err := c.Send(ids[i], cmd.typ, cmd.data); err != nil {
				t.Fatal(err)
			}
		}
		for i, id := range ids {
			r, err := c.Reply(id, wait)
			if err != nil || r.Type != "ack" {
				t.Fatalf("%s: %v %s", cmds[i].typ, err, r)
			}
			out = append(out, r.Data)
		}
		cmds = cmds[k:]
	}
	return out
}
