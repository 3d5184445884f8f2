package edge

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Socket.IO packet types (the digit after Engine.IO's message type 4).
const (
	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioAck          = '3'
	sioConnectError = '4'
	sioBinaryEvent  = '5'
	sioBinaryAck    = '6'
)

// maxAttachments bounds the binary frames a binary packet may announce;
// they are all dropped, but a count is not a way to read forever.
const maxAttachments = 1000

// sioPacket is one decoded Socket.IO packet:
// <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>].
type sioPacket struct {
	typ         byte
	attachments int
	nsp         string
	id          string            // ack id, decimal digits; "" for none
	data        []byte            // the JSON payload; nil when absent
	args        []json.RawMessage // an event's or ack's payload array
}

// parseSIO decodes a Socket.IO packet and checks its payload the way
// socket.io-parser does: a connect packet carries nothing or an object, a
// disconnect nothing, an event a non-empty array (its first element is the
// event name), an ack an array. A packet that breaks those
// rules is an error that closes the session (1008).
func parseSIO(b []byte) (sioPacket, error) {
	bad := func(why string) (sioPacket, error) { return sioPacket{}, closeWith(ClosePolicy, why) }
	if len(b) == 0 || b[0] < sioConnect || b[0] > sioBinaryAck {
		return bad("unknown Socket.IO packet type")
	}
	p := sioPacket{typ: b[0], nsp: "/"}
	rest := b[1:]
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		n := digits(rest)
		if n == 0 || n >= len(rest) || rest[n] != '-' {
			return bad("a binary packet must start with its attachment count")
		}
		p.attachments, _ = strconv.Atoi(string(rest[:min(n, 7)]))
		if n > 7 || p.attachments > maxAttachments {
			return bad("too many attachments")
		}
		rest = rest[n+1:]
	}
	if len(rest) > 0 && rest[0] == '/' {
		end := bytes.IndexByte(rest, ',')
		if end < 0 {
			end = len(rest)
		}
		p.nsp = string(rest[:end])
		rest = rest[min(end+1, len(rest)):]
	}
	if n := digits(rest); n > 0 {
		if n > maxCommandID {
			return bad("ack id too long")
		}
		p.id, rest = string(rest[:n]), rest[n:]
	}
	if len(rest) > 0 {
		p.data = rest
	}
	if err := p.checkPayload(); err != nil {
		return sioPacket{}, err
	}
	return p, nil
}

func (p *sioPacket) checkPayload() error {
	bad := func(why string) error { return closeWith(ClosePolicy, why) }
	if p.data != nil && !json.Valid(p.data) {
		return bad("Socket.IO payload is not JSON")
	}
	switch p.typ {
	case sioConnect:
		if p.data != nil && p.data[0] != '{' {
			return bad("a connect packet's payload must be an object")
		}
	case sioDisconnect:
		if p.data != nil {
			return bad("a disconnect packet has no payload")
		}
	case sioEvent, sioBinaryEvent:
		if json.Unmarshal(p.data, &p.args) != nil || len(p.args) == 0 {
			return bad("an event's payload must be a non-empty array")
		}
	case sioAck, sioBinaryAck:
		if p.id == "" || json.Unmarshal(p.data, &p.args) != nil {
			return bad("an ack must have an id and an array payload")
		}
	}
	return nil
}

// digits is the length of the run of ASCII digits at the start of b.
func digits(b []byte) int {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	return n
}

// sioInvalidNamespace refuses a connect packet for a namespace other than
// "/", as socket.io's server words it.
func sioInvalidNamespace(nsp string) []byte {
	return textFrame([]byte("44" + nsp + `,{"message":"Invalid namespace"}`))
}
