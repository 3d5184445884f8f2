package edge

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// The data of message:react, message:reactions and send's replyTo check
// themselves once decoded (decodeValid, as withData runs them).
func TestReactionDataValidates(t *testing.T) {
	tests := []struct {
		name   string
		check  func(json.RawMessage) error
		data   string
		fields []string
	}{
		{"react", validReact, `{"conversationId":"c","messageId":"m","emoji":"👍","on":true}`, nil},
		{"react without on", validReact, `{"conversationId":"c","messageId":"m","emoji":"👍"}`, []string{"on"}},
		{"react without emoji", validReact, `{"conversationId":"c","messageId":"m/1","on":false}`, []string{"messageId", "emoji"}},
		{"reactions", validReactions, `{"conversationId":"c","messageIds":["a","b"]}`, nil},
		{"reactions of none", validReactions, `{"conversationId":"c","messageIds":[]}`, []string{"messageIds"}},
		{"reactions of a bad id", validReactions, `{"conversationId":"c","messageIds":["a","b c"]}`, []string{"messageIds"}},
		{"reactions of 101", validReactions, `{"conversationId":"c","messageIds":[` + strings.Repeat(`"m",`, 100) + `"m"]}`, []string{"messageIds"}},
		{"send replyTo", validSend, `{"conversationId":"c","content":"x","clientMsgId":"1","replyTo":"m.1"}`, []string{"replyTo"}},
		{"send without replyTo", validSend, `{"conversationId":"c","content":"x","clientMsgId":"1"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fieldNames(t, tc.check(json.RawMessage(tc.data))); !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("field errors %q, want %q", got, tc.fields)
			}
		})
	}
}

func validReact(raw json.RawMessage) error {
	_, err := decodeValid[reactData](raw, true)
	return err
}

func validReactions(raw json.RawMessage) error {
	_, err := decodeValid[reactionsData](raw, true)
	return err
}

func validSend(raw json.RawMessage) error {
	_, err := decodeValid[sendData](raw, true)
	return err
}
