package natsx

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
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
// writes in an ack, each with a value of its type (strings of printable
// ASCII without escapes, integers without sign, fraction or exponent);
// ok is false for anything else, which encoding/json then decides on.
// Whatever it accepts is valid JSON that encoding/json decodes into the
// same PubAck: keys match exactly (encoding/json's case-insensitive match
// is left to it), a repeated key's last value wins as there, and "batch"
// and "count", which jetstream.PubAck lacks, are skipped as there.
func scanPubAck(data []byte) (ack jetstream.PubAck, ok bool) {
	s := ackScanner{b: data}
	if !s.next('{') {
		return ack, false
	}
	if s.next('}') {
		return ack, s.end()
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') || !s.field(&ack, key) {
			return ack, false
		}
		if s.next('}') {
			return ack, s.end()
		}
		if !s.next(',') {
			return ack, false
		}
	}
}

// ackScanner is a position in an ack being scanned. Every method that
// succeeds moves past what it read, so a scan ends within len(b) steps.
type ackScanner struct {
	b []byte
	i int
}

// field reads the value of key into ack.
func (s *ackScanner) field(ack *jetstream.PubAck, key []byte) bool {
	var ok bool
	switch string(key) {
	case "stream":
		ack.Stream, ok = s.text()
	case "domain":
		ack.Domain, ok = s.text()
	case "val":
		ack.Value, ok = s.text()
	case "seq":
		ack.Sequence, ok = s.uint()
	case "duplicate":
		ack.Duplicate, ok = s.bool()
	case "batch":
		_, ok = s.str()
	case "count":
		_, ok = s.uint()
	}
	return ok
}

// space skips JSON whitespace.
func (s *ackScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c, after whitespace, if it comes next.
func (s *ackScanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports that only whitespace is left.
func (s *ackScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// str reads a string of printable ASCII without escapes and returns its
// contents (in b).
func (s *ackScanner) str() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// text is str as a string.
func (s *ackScanner) text() (string, bool) {
	b, ok := s.str()
	return string(b), ok
}

// uint reads 0 or an integer without a leading zero that fits a uint64.
// What follows it is the caller's to check: a fraction or an exponent
// is not a comma or a brace.
func (s *ackScanner) uint() (uint64, bool) {
	s.space()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
		return 0, true
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == start {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.b[start:s.i]), 10, 64)
	return n, err == nil
}

// bool reads true or false.
func (s *ackScanner) bool() (bool, bool) {
	s.space()
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}
