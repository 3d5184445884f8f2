package jsonscan_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/jsonscan"
)

// The scanner's nesting limit is encoding/json's, to the level.
func TestScanNestingLimit(t *testing.T) {
	for _, depth := range []int{jsonscan.MaxDepth - 1, jsonscan.MaxDepth, jsonscan.MaxDepth + 1} {
		for _, in := range []string{
			strings.Repeat("[", depth) + strings.Repeat("]", depth),
			`{"data":` + strings.Repeat(`{"a":`, depth-1) + "1" + strings.Repeat("}", depth),
			strings.Repeat(`[{"a":`, depth/2) + "null" + strings.Repeat("}]", depth/2),
		} {
			kind := jsonscan.Scan([]byte(in), func(jsonscan.Member) {})
			if (kind != jsonscan.Invalid) != json.Valid([]byte(in)) {
				t.Errorf("depth %d, %.12s…: kind %d, json.Valid %v", depth, in, kind, json.Valid([]byte(in)))
			}
		}
	}
	if !json.Valid([]byte(strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth))) {
		t.Errorf("encoding/json's limit is not %d", jsonscan.MaxDepth)
	}
}

// FuzzScanIsValid holds Scan to json.Valid on any input; the members it
// hands over are slices of the input (their decoding against encoding/json
// is checked where they are read: services/edge's differential fuzz, and
// kit/natsx's ack parse).
func FuzzScanIsValid(f *testing.F) {
	for _, in := range []string{`{}`, `{"a":1,"a":[true,null,{"b":"\u00e9"}]}`, `{"a":01}`, `[1,2`, `"x"`, `null`, " {\"k\" : -1.5e+3 } ", "{\"\xff\":1}"} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		kind := jsonscan.Scan(in, func(m jsonscan.Member) {
			if len(m.Key) < 2 || m.Key[0] != '"' || len(m.Val) == 0 {
				t.Fatalf("Scan(%q): member %q: %q", in, m.Key, m.Val)
			}
		})
		if (kind != jsonscan.Invalid) != json.Valid(in) {
			t.Fatalf("Scan(%q): kind %d, json.Valid %v", in, kind, json.Valid(in))
		}
	})
}
