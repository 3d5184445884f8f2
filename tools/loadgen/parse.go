package main

import (
	"bytes"
	"encoding/json"
)

// Cheap parsing of the server's frames. The edge renders every frame with
// encoding/json from structs whose field order is fixed: replies start
// {"id":"...","type":"..." and events {"type":"...". The hot path relies on
// that and finds the few fields it needs by their key; anything else falls
// back to encoding/json (and is counted, so a change of shape shows).

var (
	prefixReply   = []byte(`{"id":"`)
	prefixEvent   = []byte(`{"type":"`)
	sepType       = []byte(`","type":"`)
	keySeq        = []byte(`"seq":`)
	keyPrevSeq    = []byte(`"prevSeq":`)
	keyLastSeq    = []byte(`"lastSeq":`)
	keyCode       = []byte(`"code":"`)
	keyContentTS  = []byte(`"content":"t=`)
	keyDuplicateT = []byte(`"duplicate":true`)
	keyUnchanged  = []byte(`"changed":false`)
)

// envelope returns a frame's id (nil for an event) and type. slow reports
// that the fast path did not apply and encoding/json was used.
func envelope(p []byte) (id, typ []byte, slow bool) {
	switch {
	case bytes.HasPrefix(p, prefixReply):
		rest := p[len(prefixReply):]
		i := bytes.IndexByte(rest, '"')
		if i >= 0 && bytes.HasPrefix(rest[i:], sepType) {
			id = rest[:i]
			rest = rest[i+len(sepType):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				return id, rest[:j], false
			}
		}
	case bytes.HasPrefix(p, prefixEvent):
		rest := p[len(prefixEvent):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			return nil, rest[:j], false
		}
	}
	var env struct {
		ID   *string `json:"id"`
		Type string  `json:"type"`
	}
	if json.Unmarshal(p, &env) != nil {
		return nil, nil, true
	}
	if env.ID != nil {
		id = []byte(*env.ID)
	}
	return id, []byte(env.Type), true
}

// uintAfter parses the unsigned decimal right after the first key in p.
func uintAfter(p, key []byte) (uint64, bool) {
	i := bytes.Index(p, key)
	if i < 0 {
		return 0, false
	}
	return parseUint(p[i+len(key):])
}

// parseUint parses the leading decimal digits of p.
func parseUint(p []byte) (uint64, bool) {
	var v uint64
	n := 0
	for _, b := range p {
		if b < '0' || b > '9' || n == 20 {
			break
		}
		v = v*10 + uint64(b-'0')
		n++
	}
	return v, n > 0
}

// stringAfter returns the JSON string (unescaped part up to the next quote)
// right after key, which ends with the opening quote.
func stringAfter(p, key []byte) []byte {
	i := bytes.Index(p, key)
	if i < 0 {
		return nil
	}
	rest := p[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}

// sendTime is the send time (unix ns) embedded in the content of a
// message the load generator sent: "t=<ns>;...".
func sendTime(p []byte) (int64, bool) {
	v, ok := uintAfter(p, keyContentTS)
	return int64(v), ok
}
