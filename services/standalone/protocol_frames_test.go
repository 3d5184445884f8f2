package standalone

// Conformance to docs/protocol.md section 2, "Frames", end to end: the
// validation-error of a malformed command and the fields it names, and
// commands without an id (no ack; errors and pongs are still sent).

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
)

// hasField reports whether d names field (any field when field is "*").
func hasField(d errData, field ...string) bool {
	for _, f := range d.Fields {
		if f.Reason != "" && (field[0] == "*" || slices.Contains(field, f.Field)) {
			return true
		}
	}
	return false
}

func TestInvalidCommands(t *testing.T) {
	f := start(t)
	long := strings.Repeat("c", 65)
	cases := []struct {
		name  string
		frame string
		id    string   // the id the reply must carry, "" for none
		field []string // one of these must be named; "*" any
	}{
		{"unknown type", `{"id":"v1","type":"message:sing","data":{}}`, "v1", []string{"type"}},
		{"missing type", `{"id":"v2","data":{}}`, "v2", []string{"type"}},
		{"null type", `{"id":"v3","type":null}`, "v3", []string{"type"}},
		{"type not a string", `{"id":"v4","type":7}`, "v4", []string{"type"}},
		{"unknown top-level field", `{"id":"v5","type":"ping","extra":true}`, "v5", []string{"extra"}},
		{"top-level field in another case", `{"id":"v6","Type":"ping"}`, "v6", []string{"Type", "type"}},
		{"unknown data field", `{"id":"v7","type":"conversation:join","data":{"conversationId":"general","colour":"red"}}`, "v7", []string{"colour"}},
		{"data field in another case", `{"id":"v8","type":"conversation:join","data":{"ConversationId":"general"}}`, "v8", []string{"ConversationId", "conversationId"}},
		{"unknown field in ping data", `{"id":"v9","type":"ping","data":{"x":1}}`, "v9", []string{"x"}},
		{"ill-typed conversationId", `{"id":"v10","type":"conversation:join","data":{"conversationId":5}}`, "v10", []string{"conversationId"}},
		{"ill-typed content", `{"id":"v11","type":"message:send","data":{"conversationId":"general","content":true,"clientMsgId":"m1"}}`, "v11", []string{"content"}},
		{"ill-typed participants", `{"id":"v12","type":"conversation:create","data":{"participants":"bob"}}`, "v12", []string{"participants"}},
		{"ill-typed sinceSeq", `{"id":"v13","type":"conversation:join","data":{"conversationId":"general","sinceSeq":"ten"}}`, "v13", []string{"sinceSeq"}},
		{"negative sinceSeq", `{"id":"v14","type":"conversation:join","data":{"conversationId":"general","sinceSeq":-1}}`, "v14", []string{"sinceSeq"}},
		{"data not an object", `{"id":"v15","type":"conversation:join","data":"general"}`, "v15", []string{"data"}},
		{"missing data", `{"id":"v16","type":"conversation:join"}`, "v16", []string{"data", "conversationId"}},
		{"missing conversationId", `{"id":"v17","type":"conversation:join","data":{}}`, "v17", []string{"conversationId"}},
		{"missing clientMsgId", `{"id":"v18","type":"message:send","data":{"conversationId":"general","content":"hi"}}`, "v18", []string{"clientMsgId"}},
		{"missing content", `{"id":"v19","type":"message:send","data":{"conversationId":"general","clientMsgId":"m1"}}`, "v19", []string{"content"}},
		{"missing token", `{"id":"v20","type":"auth:refresh","data":{}}`, "v20", []string{"token"}},
		{"id not a string", `{"id":5,"type":"ping"}`, "", []string{"id"}},
		{"id of 65 characters", `{"id":"` + long + `","type":"ping"}`, "", []string{"id"}},
		{"conversationId a.b", `{"id":"v21","type":"conversation:join","data":{"conversationId":"a.b"}}`, "v21", []string{"conversationId"}},
		{"conversationId a*", `{"id":"v22","type":"conversation:join","data":{"conversationId":"a*"}}`, "v22", []string{"conversationId"}},
		{"conversationId with a space", `{"id":"v23","type":"message:send","data":{"conversationId":"a b","content":"hi","clientMsgId":"m1"}}`, "v23", []string{"conversationId"}},
		{"conversationId of 65 characters", `{"id":"v24","type":"conversation:history","data":{"conversationId":"` + long + `"}}`, "v24", []string{"conversationId"}},
		{"empty conversationId", `{"id":"v25","type":"conversation:join","data":{"conversationId":""}}`, "v25", []string{"conversationId"}},
		{"a user id outside the pattern", `{"id":"v26","type":"conversation:add","data":{"conversationId":"general","userIds":["bob","x.y"]}}`, "v26", []string{"userIds"}},
		{"a JSON array", `["ping"]`, "", []string{"*"}},
		{"a JSON number", `42`, "", []string{"*"}},
		{"no id, unknown type", `{"type":"message:sing"}`, "", []string{"type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			c := f.dial("acme", "carol")
			if err := c.SendText([]byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			var r wsclient.Frame
			var err error
			if tc.id != "" {
				r, err = c.Reply(tc.id, wait)
			} else {
				r, err = c.Wait(wait, func(fr wsclient.Frame) bool {
					return fr.ID != "" || strings.HasSuffix(fr.Type, "error") || fr.Type == "pong"
				})
			}
			if err != nil {
				t.Fatalf("no reply: %v (queued: %v)", err, c.Pending())
			}
			if r.ID != tc.id {
				t.Fatalf("reply %s carries id %q, want %q", r, r.ID, tc.id)
			}
			d := wantError(t, r, "validation-error", "validation_failed")
			if !hasField(d, tc.field...) {
				t.Fatalf("fields %+v: want an entry naming %q with a reason", d.Fields, tc.field)
			}
			c.stillServes()
		})
	}
}

func TestCommandsWithoutID(t *testing.T) {
	f := start(t)
	bob := f.dial("acme", "bob")
	private := bob.create("carol")
	c := f.dial("acme", "alice")
	for _, raw := range []string{
		`{"type":"conversation:list"}`,                                                           // ok: no ack
		`{"type":"conversation:list","data":{"limit":0}}`,                                        // validation-error
		`{"type":"conversation:join","data":{"conversationId":"` + private + `"}}`,               // forbidden
		`{"type":"conversation:leave","data":{"conversationId":"general"}}`,                      // ok: no ack
		`{"type":"conversation:create","data":{"participants":["bob"],"title":"no ack please"}}`, // ok: no ack
		`{"type":"ping"}`,             // pong
		`{"id":"last","type":"ping"}`, // pong with id
	} {
		if err := c.SendText([]byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.Reply("last", wait); err != nil || r.Type != "pong" {
		t.Fatalf("ping with id: %s %v", r, err)
	}
	// Commands run in order: every reply to the frames above is queued by
	// now, and the create without id ran.
	c.none("ack", 300*time.Millisecond)
	var types []string
	for _, fr := range c.Pending() {
		if fr.ID != "" {
			t.Errorf("unexpected reply with an id: %s", fr)
		}
		types = append(types, fr.Type)
	}
	want := []string{"validation-error", "error", "pong"}
	for _, typ := range want {
		if !slices.Contains(types, typ) {
			t.Errorf("no %s among the frames %v", typ, types)
		}
	}
	if slices.Contains(types, "ack") {
		t.Errorf("an ack for a command without id: %v", types)
	}
	e, err := c.Next("error", 0)
	if err == nil {
		wantError(t, e, "error", "forbidden")
	}
	v, err := c.Next("validation-error", 0)
	if err == nil {
		if d := wantError(t, v, "validation-error", "validation_failed"); !hasField(d, "limit") {
			t.Errorf("validation-error without the field limit: %s", v)
		}
	}
	p, err := c.Next("pong", 0)
	if err == nil && (p.ID != "" || len(p.Data) != 0) {
		t.Errorf("pong to a ping without id: %s, want {\"type\":\"pong\"}", p)
	}
	list := decode[struct {
		Conversations []struct {
			Title string `json:"title"`
		} `json:"conversations"`
	}](t, c.do("conversation:list", map[string]any{}))
	if !slices.ContainsFunc(list.Conversations, func(s struct {
		Title string `json:"title"`
	}) bool {
		return s.Title == "no ack please"
	}) {
		t.Errorf("the conversation:create without id did not run: %+v", list.Conversations)
	}
}
