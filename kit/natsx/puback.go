package natsx

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/jsonscan"
)

// parsePubAck reads a stream's answer to a publish exactly as
// jetstream.PublishMsg does: the ack, "nats: " wrapping the
// *jetstream.APIError of an error reply, or jetstream.ErrInvalidJSAck.
// The server writes its acks from a template ({"stream":S,"seq":N}, with
// "domain" after the stream in a domain, and ,"duplicate": true, "val" or
// "batch" and "count" before the brace; nats-server's JSPubAckResponse):
// scanPubAck reads those without encoding/json, which takes everything
// else (an error, an escape, a key it does not know).
func parsePubAck(data []byte) (jetstream.PubAck, error) {
	ack, ok := scanPubAck(data)
	if !ok {
		return decodePubAck(data)
	}
	if ack.Stream == "" {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	return ack, nil
}

// pubAckResponse is the shape nats.go decodes an ack into (its
// pubAckResponse, apiResponse embedded): the same fields, so that
// encoding/json accepts and refuses the same input.
type pubAckResponse struct {
	apiResponse
	*jetstream.PubAck
}

type apiResponse struct {
	Type  string              `json:"type"`
	Error *jetstream.APIError `json:"error,omitempty"`
}

// decodePubAck is nats.go's own reading of an ack (publishMsg).
func decodePubAck(data []byte) (jetstream.PubAck, error) {
	var r pubAckResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return jetstream.PubAck{}, fmt.Errorf("nats: %w", r.Error)
	}
	if r.PubAck == nil || r.PubAck.Stream == "" {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	return *r.PubAck, nil
}

// scanPubAck reads data if it is a flat JSON object of the keys the server
// writes in an ack, each with a value of its type (strings without
// escapes, integers without sign, fraction or exponent, true or false); ok
// is false for anything else, which encoding/json then decides on. What it
// accepts, encoding/json decodes into the same PubAck: the text is valid
// JSON (jsonscan checks it as json.Valid does), keys match exactly
// (encoding/json's case-insensitive match is left to it), a repeated
// key's last value wins as there, and "batch" and "count", which
// jetstream.PubAck lacks, are skipped as there.
func scanPubAck(data []byte) (ack jetstream.PubAck, ok bool) {
	ok = true
	kind := jsonscan.Scan(data, func(m jsonscan.Member) {
		if ok {
			ok = m.Form == jsonscan.KeyASCII && ackField(&ack, string(m.Text()), m.Val)
		}
	})
	return ack, ok && kind == jsonscan.Object
}

// ackField reads val, the value of key in an ack, into ack.
func ackField(ack *jetstream.PubAck, key string, val []byte) bool {
	var ok bool
	switch key {
	case "stream":
		ack.Stream, ok = ackText(val)
	case "domain":
		ack.Domain, ok = ackText(val)
	case "val":
		ack.Value, ok = ackText(val)
	case "seq":
		ack.Sequence, ok = ackUint(val)
	case "duplicate":
		ack.Duplicate, ok = string(val) == "true", string(val) == "true" || string(val) == "false"
	case "batch":
		_, ok = jsonscan.PlainString(val)
	case "count":
		_, ok = ackUint(val)
	}
	return ok
}

// ackText is val when it is a string without escapes.
func ackText(val []byte) (string, bool) {
	s, ok := jsonscan.PlainString(val)
	return string(s), ok
}

// ackUint is val when it is a number of digits alone that fits a uint64
// (the scan refused a leading zero).
func ackUint(val []byte) (uint64, bool) {
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(val), 10, 64)
	return n, err == nil
}
