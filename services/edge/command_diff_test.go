package edge

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/switchboard-chat/switchboard/kit/jsonscan"
)

// trickyFrames are inputs where a decoder of its own could part from
// encoding/json: repeated keys, escaped keys, case, nesting, numbers,
// null, white space, invalid UTF-8, escapes, truncation.
var trickyFrames = []string{
	`{"id":"c-17","type":"message:send","data":{"conversationId":"general","content":"hi","clientMsgId":"9b1f0c"}}`,
	`{"id":"a","id":"b","type":"ping","type":"message:send","data":1,"data":{"conversationId":"c"}}`,
	`{"\u0069d":"x","typ\u0065":"pi\u006eg"}`,
	`{"id":"x","type":"ping","\u0069d":7}`,
	`{"ID":"x","Type":"ping","DATA":{}}`,
	`{"zz":1,"aa":2,"zz":3,"\u007a\u007a":4,"id":"k"}`,
	`{"\xff":1,"\xfe":2,"\ufffd":3,"type":"ping"}`,
	"{\"id\":\"\xff\",\"type\":\"ping\"}",
	"{\"id\":\"a\xc3\",\"type\":\"message:send\",\"data\":{\"conversationId\":\"\xe2\x82\"}}",
	`{"id":"\ud800","type":"ping"}`,
	`{"id":"\u00e9\u00e9","type":"ping","data":null}`,
	` { "id" : "s" , "type" : "ping" , "data" : { } } ` + "\n\t\r",
	`{"type":"message:send","data":{"conversationId":"a","conversationId":"b"}}`,
	`{"type":"message:send","data":{"conversationId":"a","ConversationID":"b"}}`,
	`{"type":"message:send","data":{"conversationId":"a","conversationId":5}}`,
	`{"type":"message:send","data":{"conversationId":"a","conversationId":null}}`,
	`{"type":"message:send","data":{"conversationId":5,"conversationId":"a"}}`,
	`{"type":"message:send","data":{"conversationId":null,"conversationId":"a"}}`,
	`{"type":"message:send","data":{"Conversationid":"b","conversationId":"a"}}`,
	`{"type":"message:send","data":{"conversationId":"\u0000x"}}`,
	`{"type":"message:send","data":{"conversationId":"g\u00e9n\"\\"}}`,
	`{"type":"message:send","data":{"conver\u017fationId":"x"}}`,
	`{"type":"message:send","data":{"conversationId":"a","converſationId":"x"}}`,
	`{"type":"message:send","data":{"conversationid":"x","content":"y"}}`,
	`{"type":"message:send","data":{"a":{"b":[1,{"c":null}],"d":[]},"conversationId":"c"}}`,
	`{"type":"conversation:history","data":{"conversationId":"c","limit":-0.5e+10,"afterSeq":1E400}}`,
	`{"type":"conversation:list","data":{"limit":01}}`,
	`{"type":"conversation:list","data":{"limit":1.}}`,
	`{"type":"conversation:list","data":{"limit":-}}`,
	`{"type":"message:react","data":{"on":true,"emoji":false,"messageId":nul}}`,
	`{"type":"message:send","data":[{"conversationId":"c"}]}`,
	`{"type":"message:send","data":"conversationId"}`,
	`{"type":["ping"],"id":{"a":1}}`,
	`{"type":"ping",}`, `{"type":"ping"`, `{"type":"ping"}}`, `{"type" "ping"}`, `{"type":}`, `{,}`, `{"a":1,,"b":2}`,
	`{"type":"ping"} {}`, `{"type":"pi`, "{\"type\":\"p\ti\"}", `{"type":"p\qi"}`, `{"type":"\u12"}`, `{"type":"\u12g4"}`,
	`{}`, `null`, ` null `, `nul`, `[]`, `[1,2`, `"ping"`, `7`, `-`, `true`, `falsey`, ``, ` `, `{"a":[1 2]}`, `{"a":{"b" 1}}`,
	`{"a":[[[[[]]]]],"b":{"c":{"d":{}}}}`, `{"a":"\/\b\f\n\r\t\"\\"}`,
	`{"content":"a","content":"b","conversationId":"c"}`, `{"content":"a\n","title":"t"}`, `{"Content":"x"}`,
	`{"content":"é","clientMsgId":"x","conversationId":"c","replyTo":"m","attachments":["f"]}`,
	"{\"type\":\"\x1f\"}", "{\"type\":\"\x7f\",\"\x00\":1}", `{"content":null,"title":"t"}`, `{"content":7}`, `{"title":"\u0074"}`,
}

// checkAgainstReference fails unless decodeCommand, laneOf and
// strictDecode answer in as the encoding/json decoders they replace do
// (command_ref_test.go), errors and decoded values alike.
func checkAgainstReference(t *testing.T, in []byte) {
	t.Helper()
	if kind := jsonscan.Scan(in, func(jsonscan.Member) {}); (kind != jsonscan.Invalid) != json.Valid(in) {
		t.Fatalf("jsonscan.Scan(%q): kind %d, json.Valid %v", in, kind, json.Valid(in))
	}
	cmd, err := decodeCommand(in)
	want, wantErr := decodeCommandRef(in)
	if !reflect.DeepEqual(err, wantErr) {
		t.Fatalf("decodeCommand(%q): error %#v, reference %#v", in, err, wantErr)
	}
	if cmd.ID != want.ID || cmd.Type != want.Type || (cmd.Data == nil) != (want.Data == nil) || !bytes.Equal(cmd.Data, want.Data) {
		t.Fatalf("decodeCommand(%q): %+v, reference %+v", in, cmd, want)
	}
	if cap(cmd.Data) != len(cmd.Data) {
		t.Fatalf("decodeCommand(%q): data %q has room after it in the frame", in, cmd.Data)
	}
	checkLane(t, command{Type: "message:send", Data: in})
	checkStrict(t, in)
	if cmd.Data != nil {
		checkLane(t, cmd)
		checkStrict(t, cmd.Data)
	}
}

func checkLane(t *testing.T, cmd command) {
	t.Helper()
	if got, want := laneOf(cmd), laneOfRef(cmd); got != want {
		t.Fatalf("laneOf(%s %q) = %q, reference %q", cmd.Type, cmd.Data, got, want)
	}
}

// strictTypes are data structs strictDecode is checked with: strings,
// lists, pointers to numbers and booleans, no field at all, and structs
// setPlainStrings must leave to encoding/json (a tag option, an untagged
// field, a name given twice, which encoding/json then ignores).
var strictTypes = []func() any{
	func() any {
		return &struct {
			ConversationID string `json:"conversationId,omitempty"`
			Content        string
		}{}
	},
	func() any { return reflect.New(twiceNamed).Interface() },
	func() any { return &sendData{} },
	func() any { return &createData{} },
	func() any { return &historyData{} },
	func() any { return &listData{} },
	func() any { return &reactData{} },
	func() any { return &struct{}{} },
}

// twiceNamed is a struct with two fields named "content" (made at run
// time: go vet refuses it in source).
var twiceNamed = reflect.StructOf([]reflect.StructField{
	{Name: "A", Type: reflect.TypeFor[string](), Tag: `json:"content"`},
	{Name: "B", Type: reflect.TypeFor[string](), Tag: `json:"content"`},
	{Name: "C", Type: reflect.TypeFor[string](), Tag: `json:"conversationId"`},
})

func checkStrict(t *testing.T, data []byte) {
	t.Helper()
	for _, newData := range strictTypes {
		v, ref := newData(), newData()
		err, wantErr := strictDecode(data, v, "data"), strictDecodeRef(data, ref, "data")
		if !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("strictDecode(%q, %T): error %#v, reference %#v", data, v, err, wantErr)
		}
		if !reflect.DeepEqual(v, ref) {
			t.Fatalf("strictDecode(%q, %T): %+v, reference %+v", data, v, v, ref)
		}
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, in := range trickyFrames {
		checkAgainstReference(t, []byte(in))
	}
}

// FuzzDecodeMatchesReference holds the one-scan decoding to the
// encoding/json decoding it replaced, on any input.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, in := range trickyFrames {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkAgainstReference(t, in) })
}

// BenchmarkDecodeSend is the read path of a typical message:send frame:
// the envelope, the lane, the data decoded and checked; ref is the
// encoding/json decoding kit/jsonscan replaced. cpu-ns/op is the process's
// CPU time (garbage collection included), steadier than ns/op on a busy
// machine.
func BenchmarkDecodeSend(b *testing.B) {
	frame := []byte(`{"id":"c-17","type":"message:send","data":{"conversationId":"general","content":"hello there, how is it going?","clientMsgId":"9b1f0c2e-77aa-4c1e-9f3a-0d5be1f3a2c4"}}`)
	b.Run("ref", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuNanos())
		for b.Loop() {
			cmd, err := decodeCommandRef(frame)
			if err != nil || laneOfRef(cmd) != "general" {
				b.Fatal(err)
			}
			if _, err := decodeValidRef[sendData](cmd.Data, true); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuNanos())
		for b.Loop() {
			cmd, err := decodeCommand(frame)
			if err != nil || laneOf(cmd) != "general" {
				b.Fatal(err)
			}
			if _, err := decodeValid[sendData](cmd.Data, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportCPU reports the CPU time since cpu0 per operation.
func reportCPU(b *testing.B, cpu0 int64) {
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}
