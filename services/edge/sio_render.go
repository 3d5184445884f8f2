package edge

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Frames of a Socket.IO session. Everything the edge sends is rendered
// once as the JSON protocol's frame (render.go); a Socket.IO socket gets
// the packet made from it:
//
//	{"type":"T","data":D}          -> 42["T",D]           (events; errors without an ack id)
//	{"id":"7","type":"ack","data":D} -> 437[D]
//	{"id":"7","type":"E","data":D} -> 437[{"error":{"type":"E",...D}}]  (E: an error type)
//	WebSocket ping                 -> 2 (Engine.IO ping)
//	close frame with code C        -> 42["error",{"code":C,"message":...}], 41, then the close frame
//
// An event's packet is made once per event, not once per socket: the same
// frame bytes go to every socket of a room, and the packet is cached by
// their address (sioCache).

var (
	sioPingFrame       = textFrame([]byte("2"))
	sioPongFrame       = textFrame([]byte("3"))
	sioDisconnectFrame = textFrame([]byte("41"))

	jsonEventPrefix = []byte(`{"type":`)
	jsonReplyPrefix = []byte(`{"id":`)
)

// Replies are made per socket; events are cached (sioCache) by the frame's
// address, as every socket of a room gets the same frame.

// outgoing is what the session's socket gets for frame f.
func (ss *sioSession) outgoing(f []byte) []byte {
	if len(f) < 2 {
		return f
	}
	switch ws.OpCode(f[0] & 0x0f) {
	case ws.OpPing: // the janitor's keep-alive
		ss.pinged(time.Now().UnixNano())
		return sioPingFrame
	case ws.OpText:
	default:
		return f // pongs to the client's pings
	}
	p := framePayload(f)
	switch {
	case bytes.HasPrefix(p, jsonEventPrefix):
		slot, out := ss.x.cache.lookup(f)
		if out == nil {
			out = textFrame(sioPacketOf(p))
			ss.x.cache.store(slot, f, out)
		}
		return out
	case len(p) > 0 && p[0] == '{': // a reply
		return textFrame(sioPacketOf(p))
	}
	return f // a packet already (the connect reply)
}

// notice appends what precedes the close frame of code: an error event
// with the code and a disconnect packet, so that the client knows why
// (socket.io-client does not reconnect by itself after 41). A close with
// 1000 (the client left, or stopped answering) and the echo of a client's
// close (no reason) end the transport alone: a client still there
// reconnects by itself.
func (ss *sioSession) notice(q [][]byte, code ws.StatusCode, reason string) [][]byte {
	if code == CloseNormal || reason == "" {
		return q
	}
	b, err := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{int(code), reason})
	if err != nil {
		panic(err)
	}
	ev := append(append([]byte(`42["error",`), b...), ']')
	return append(q, textFrame(ev), sioDisconnectFrame)
}

// framePayload is the payload of an unmasked server frame.
func framePayload(f []byte) []byte {
	switch f[1] & 0x7f {
	case 126:
		return f[4:]
	case 127:
		return f[10:]
	}
	return f[2:]
}

// sioPacketOf turns a JSON frame's payload into its Socket.IO packet.
func sioPacketOf(p []byte) []byte {
	id, typ, data := splitJSONFrame(p)
	out := make([]byte, 0, len(p)+24)
	if id == nil {
		out = append(append(out, `42[`...), typ...)
		if data != nil {
			out = append(append(out, ','), data...)
		}
		return append(out, ']')
	}
	out = append(append(append(out, "43"...), id...), '[')
	switch string(typ) {
	case `"ack"`, `"pong"`:
		if data == nil {
			data = []byte("{}")
		}
		out = append(out, data...)
	default: // an error: {"error": {"type": ..., ...data}}
		out = append(append(out, `{"error":{"type":`...), typ...)
		if len(data) >= 2 {
			if inner := bytes.TrimSpace(data[1 : len(data)-1]); len(inner) > 0 {
				out = append(append(out, ','), inner...)
			}
		}
		out = append(out, "}}"...)
	}
	return append(out, ']')
}

// splitJSONFrame splits a frame rendered by render.go: the id's digits
// (nil for an event), the type as a JSON string, and the data (nil when
// absent). Render writes the fields in that order without spaces, so the
// parts are cut out of the bytes; anything else is decoded.
func splitJSONFrame(p []byte) (id, typ, data []byte) {
	rest, ok := p, true
	cut := func(prefix string) {
		if ok = ok && bytes.HasPrefix(rest, []byte(prefix)); ok {
			rest = rest[len(prefix):]
		}
	}
	quoted := func() []byte {
		end := bytes.IndexByte(rest[min(1, len(rest)):], '"') + 1
		if ok = ok && len(rest) > 0 && rest[0] == '"' && end > 0 && bytes.IndexByte(rest[:end], '\\') < 0; !ok {
			return nil
		}
		s := rest[:end+1]
		rest = rest[end+1:]
		return s
	}
	if bytes.HasPrefix(p, jsonReplyPrefix) {
		cut(`{"id":`)
		if q := quoted(); ok {
			id = q[1 : len(q)-1]
		}
		cut(`,"type":`)
	} else {
		cut(`{"type":`)
	}
	typ = quoted()
	switch {
	case !ok:
	case len(rest) == 1 && rest[0] == '}':
		return id, typ, nil
	case bytes.HasPrefix(rest, []byte(`,"data":`)) && rest[len(rest)-1] == '}':
		return id, typ, rest[len(`,"data":`) : len(rest)-1]
	}
	return splitSlow(p)
}

func splitSlow(p []byte) (id, typ, data []byte) {
	var f struct {
		ID   *string         `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(p, &f); err != nil {
		panic("edge: a frame that is not JSON: " + err.Error()) // only render.go's frames get here
	}
	typ, _ = json.Marshal(f.Type)
	if f.ID != nil {
		id = []byte(*f.ID)
	}
	if len(f.Data) > 0 {
		data = f.Data
	}
	return id, typ, data
}

// sioCacheSlots is the number of event packets kept: enough for the events
// that are being fanned out at once.
const sioCacheSlots = 1024

// sioCache maps the address of an event's frame to its packet. The same
// frame is queued on every socket of a room, so the first Socket.IO socket
// makes the packet and the others reuse it. An entry holds its frame, so
// the address cannot be reused for another frame while the entry is there,
// and frames are never written after they are rendered.
type sioCache struct {
	seed  maphash.Seed
	slots [sioCacheSlots]atomic.Pointer[sioCached]
}

type sioCached struct {
	src *byte // the frame's first byte
	n   int   // its length
	out []byte
}

func (sc *sioCache) init() { sc.seed = maphash.MakeSeed() }

// lookup returns f's slot and its packet, nil when it is not there.
func (sc *sioCache) lookup(f []byte) (*atomic.Pointer[sioCached], []byte) {
	slot := &sc.slots[maphash.Comparable(sc.seed, &f[0])%sioCacheSlots]
	if e := slot.Load(); e != nil && e.src == &f[0] && e.n == len(f) {
		return slot, e.out
	}
	return slot, nil
}

func (sc *sioCache) store(slot *atomic.Pointer[sioCached], f, out []byte) {
	slot.Store(&sioCached{src: &f[0], n: len(f), out: out})
}
