package edge

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/kit/errs"
)

// dataDecoders is, per command type, the struct its handler decodes data
// into and whether data is required, as the handler calls decodeData.
var dataDecoders = map[string]struct {
	new      func() any
	required bool
}{
	"conversation:create":  {func() any { return &createData{} }, true},
	"conversation:add":     {func() any { return &addData{} }, true},
	"conversation:remove":  {func() any { return &removeData{} }, true},
	"conversation:list":    {func() any { return &listData{} }, false},
	"conversation:join":    {func() any { return &joinData{} }, true},
	"conversation:leave":   {func() any { return &convData{} }, true},
	"conversation:history": {func() any { return &historyData{} }, true},
	"message:send":         {func() any { return &sendData{} }, true},
	"message:edit":         {func() any { return &editData{} }, true},
	"message:delete":       {func() any { return &deleteData{} }, true},
	"message:react":        {func() any { return &reactData{} }, true},
	"message:reactions":    {func() any { return &reactionsData{} }, true},
	"message:typing":       {func() any { return &typingData{} }, true},
	"message:delivered":    {func() any { return &markData{} }, true},
	"message:read":         {func() any { return &markData{} }, true},
	"presence:set":         {func() any { return &setPresenceData{} }, true},
	"presence:query":       {func() any { return &queryPresenceData{} }, true},
	"auth:refresh":         {func() any { return &refreshData{} }, true},
	"ping":                 {func() any { return &struct{}{} }, false},
}

// A command added to the table without its data decoder here would not be
// fuzzed.
func TestDataDecodersCoverCommands(t *testing.T) {
	for _, typ := range commandTypes() {
		if _, ok := dataDecoders[typ]; !ok {
			t.Errorf("command %q has no entry in dataDecoders: FuzzDecodeCommand does not reach its data", typ)
		}
	}
	for typ := range dataDecoders {
		if commands[typ] == nil {
			t.Errorf("dataDecoders has %q, which is not a command", typ)
		}
	}
}

func TestDecodeCommand(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		id     string
		fields []string // field errors expected, in order; nil for success
	}{
		{"send", `{"id":"c-17","type":"message:send","data":{"conversationId":"general","content":"hi","clientMsgId":"9b1f0c"}}`, "c-17", nil},
		{"no id", `{"type":"ping"}`, "", nil},
		{"null id", `{"id":null,"type":"ping"}`, "", nil},
		{"empty id", `{"id":"","type":"ping"}`, "", []string{"id"}},
		{"numeric id", `{"id":7,"type":"ping"}`, "", []string{"id"}},
		{"id of 64 runes", `{"id":"` + strings.Repeat("é", 64) + `","type":"ping"}`, strings.Repeat("é", 64), nil},
		{"id of 65 characters", `{"id":"` + strings.Repeat("x", 65) + `","type":"ping"}`, "", []string{"id"}},
		{"unknown type keeps the id", `{"id":"a","type":"nope"}`, "a", []string{"type"}},
		{"missing type", `{"id":"a"}`, "a", []string{"type"}},
		{"null type", `{"type":null}`, "", []string{"type"}},
		{"numeric type", `{"type":1}`, "", []string{"type"}},
		{"bad id and type", `{"id":[],"type":{}}`, "", []string{"id", "type"}},
		{"unknown field", `{"type":"ping","extra":1}`, "", []string{"extra"}},
		{"unknown field keeps the id", `{"id":"a","type":"ping","extra":1}`, "a", []string{"extra"}},
		{"names are case-sensitive", `{"Type":"ping"}`, "", []string{"Type"}},
		{"array", `[]`, "", []string{""}},
		{"string", `"ping"`, "", []string{""}},
		{"null", `null`, "", []string{"type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := decodeCommand([]byte(tc.in))
			if cmd.ID != tc.id {
				t.Errorf("id %q, want %q", cmd.ID, tc.id)
			}
			if got := fieldNames(t, err); !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("field errors %q (%v), want %q", got, err, tc.fields)
			}
		})
	}
	for _, in := range []string{``, `{`, `{"type":"ping"} {}`, "{\"type\":\"\xff\"", `{"type":"ping",}`} {
		if _, err := decodeCommand([]byte(in)); err != errNotJSON {
			t.Errorf("decodeCommand(%q): %v, want errNotJSON", in, err)
		}
	}
}

func TestDecodeData(t *testing.T) {
	tests := []struct {
		name   string
		typ    string
		data   string
		fields []string
	}{
		{"create", "conversation:create", `{"participants":["bob"],"title":"t"}`, nil},
		{"missing data", "conversation:create", ``, []string{"data"}},
		{"null data", "message:send", `null`, []string{"data"}},
		{"optional data", "conversation:list", ``, nil},
		{"list limit", "conversation:list", `{"limit":20,"cursor":"x"}`, nil},
		{"fractional limit", "conversation:list", `{"limit":2.5}`, []string{"limit"}},
		{"negative sinceSeq", "conversation:join", `{"conversationId":"c","sinceSeq":-1}`, []string{"sinceSeq"}},
		{"huge afterSeq", "conversation:history", `{"conversationId":"c","afterSeq":1e30}`, []string{"afterSeq"}},
		{"list of numbers", "conversation:add", `{"conversationId":"c","userIds":[1]}`, []string{"userIds"}},
		{"unknown field", "message:edit", `{"conversationId":"c","messageId":"m","content":"x","sender":"eve"}`, []string{"sender"}},
		{"data not an object", "message:delete", `"m1"`, []string{"data"}},
		{"ping with data", "ping", `{"x":1}`, []string{"x"}},
		{"typing as a string", "message:typing", `{"conversationId":"c","isTyping":"yes"}`, []string{"isTyping"}},
		{"read seq as a string", "message:read", `{"conversationId":"c","seq":"42"}`, []string{"seq"}},
		{"react", "message:react", `{"conversationId":"c","messageId":"m","emoji":"👍","on":true}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := dataDecoders[tc.typ]
			err := decodeData(json.RawMessage(tc.data), d.new(), d.required)
			if got := fieldNames(t, err); !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("field errors %q (%v), want %q", got, err, tc.fields)
			}
		})
	}
}

// fieldNames checks that err is nil or a validation error naming at
// least one field, and returns the field names.
func fieldNames(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T (%v), want an *errs.Error", err, err)
	}
	if e.Code != errs.CodeValidation || len(e.Fields) == 0 {
		t.Fatalf("error %+v, want %s with at least one field", e, errs.CodeValidation)
	}
	names := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		if f.Reason == "" {
			t.Fatalf("field %q without a reason", f.Field)
		}
		names[i] = f.Field
	}
	return names
}

// FuzzDecodeCommand feeds arbitrary frames to decodeCommand and, for a
// valid command, its data to the decoder of its handler.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":"c-17","type":"message:send","data":{"conversationId":"general","content":"hi","clientMsgId":"9b1f0c"}}`,
		`{"id":"c-1","type":"conversation:create","data":{"participants":["bob","carol"],"title":"Team"}}`,
		`{"type":"conversation:create","data":{"participants":[]}}`,
		`{"type":"conversation:add","data":{"conversationId":"c1","userIds":["dave"]}}`,
		`{"type":"conversation:remove","data":{"conversationId":"c1","userId":"dave"}}`,
		`{"type":"conversation:list","data":{"limit":50,"cursor":"abc"}}`,
		`{"type":"conversation:list"}`,
		`{"type":"conversation:join","data":{"conversationId":"c1","sinceSeq":40}}`,
		`{"type":"conversation:leave","data":{"conversationId":"c1"}}`,
		`{"type":"conversation:history","data":{"conversationId":"c1","beforeSeq":9,"afterSeq":1,"limit":200}}`,
		`{"type":"message:edit","data":{"conversationId":"c1","messageId":"m1","content":"é\u2028"}}`,
		`{"type":"message:delete","data":{"conversationId":"c1","messageId":"m1"}}`,
		`{"type":"message:typing","data":{"conversationId":"c1","isTyping":true}}`,
		`{"type":"message:delivered","data":{"conversationId":"c1","seq":42}}`,
		`{"id":"r","type":"message:read","data":{"conversationId":"c1","seq":"42"}}`,
		`{"type":"presence:set","data":{"status":"away"}}`,
		`{"type":"presence:query","data":{"userIds":["bob","carol"]}}`,
		`{"type":"auth:refresh","data":{"token":"eyJ.x.y"}}`,
		`{"type":"ping","data":null}`,
		`{"type":"ping","data":{"x":1}}`,
		`{"id":7,"type":["ping"],"data":"x"}`,
		`{"type":"conversation:history","data":{"conversationId":"c1","limit":1e400}}`,
		`{"type":"conversation:join","data":{"conversationId":"c1","sinceSeq":-1}}`,
		`{"type":"message:send","data":{"conversationId":"c1","content":"\ud800","clientMsgId":"x"}}`,
		`{"TYPE":"ping","Data":{}}`,
		`[1,2]`,
		`null`,
		`{"type":"ping"} x`,
		"{\"type\":\"\xff\"}",
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, err := decodeCommand(in)
		if !json.Valid(in) {
			if err != errNotJSON {
				t.Fatalf("not JSON, got %v", err)
			}
			return
		}
		if errors.Is(err, errNotJSON) {
			t.Fatal("valid JSON refused as not JSON")
		}
		if cmd.ID != "" && utf8.RuneCountInString(cmd.ID) > maxCommandID {
			t.Fatalf("id of %d characters kept", utf8.RuneCountInString(cmd.ID))
		}
		if err != nil {
			fieldNames(t, err)
			return
		}
		if _, err := json.Marshal(cmd); err != nil {
			t.Fatalf("command does not marshal: %v", err)
		}
		d, ok := dataDecoders[cmd.Type]
		if !ok {
			t.Fatalf("decoded an unknown command type %q", cmd.Type)
		}
		v := d.new()
		err = decodeData(cmd.Data, v, d.required)
		if err != nil {
			fieldNames(t, err)
			return
		}
		// What was accepted marshals, and reads back the same.
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s data %+v does not marshal: %v", cmd.Type, v, err)
		}
		// Names match exactly: every key given is one the struct writes.
		checkKeys(t, in, []byte(`{"id":0,"type":0,"data":0}`))
		if !isNull(cmd.Data) && len(cmd.Data) > 0 {
			checkKeys(t, cmd.Data, out)
		}
		back := d.new()
		if err := strictDecode(out, back, "data"); err != nil {
			t.Fatalf("%s data %s does not decode back: %v", cmd.Type, out, err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Fatalf("%s data changed on a round trip: %+v, then %+v", cmd.Type, v, back)
		}
	})
}

// checkKeys fails unless every key of the JSON object in is a key of the
// JSON object known.
func checkKeys(t *testing.T, in, known []byte) {
	t.Helper()
	var got, names map[string]json.RawMessage
	if err := json.Unmarshal(in, &got); err != nil {
		t.Fatalf("accepted %s, which is not an object: %v", in, err)
	}
	if err := json.Unmarshal(known, &names); err != nil {
		t.Fatal(err)
	}
	for k := range got {
		if _, ok := names[k]; !ok {
			t.Fatalf("accepted key %q in %s", k, in)
		}
	}
}

// commandTypes lists the command types in order.
func commandTypes() []string {
	out := make([]string, 0, len(commands))
	for t := range commands {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
