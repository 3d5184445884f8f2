package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/kit/errs"
)

// The decoding of commands as it was before kit/jsonscan, through
// encoding/json alone: the reference the differential tests
// (command_diff_test.go) hold decodeCommand, strictDecode and laneOf to.
// Kept as it was written; only the names changed.

// decodeCommandRef is decodeCommand through a map of the envelope.
func decodeCommandRef(msg []byte) (command, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(msg, &keys); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return command{}, errs.Invalid(errs.Field{Field: "", Reason: reasonObject})
		}
		return command{}, errNotJSON
	}
	var cmd command
	var f errs.Fields
	if raw, ok := keys["id"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &cmd.ID) != nil || cmd.ID == "" || utf8.RuneCountInString(cmd.ID) > maxCommandID {
			cmd.ID = ""
			f.Add("id", fmt.Sprintf("must be a string of 1 to %d characters", maxCommandID))
		}
	}
	var unknown []string
	for k := range keys {
		if k != "id" && k != "type" && k != "data" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		// Unknown fields alone are reported: what else is wrong may only
		// be a misspelling of them.
		slices.Sort(unknown)
		var uf errs.Fields
		for _, k := range unknown {
			uf.Add(k, reasonUnknown)
		}
		return cmd, uf.Err()
	}
	switch raw, ok := keys["type"]; {
	case !ok || isNull(raw):
		f.Add("type", errs.ReasonRequired)
	case json.Unmarshal(raw, &cmd.Type) != nil:
		f.Add("type", "must be a string")
	case commands[cmd.Type] == nil:
		f.Add("type", "unknown command type")
	}
	cmd.Data = keys["data"]
	return cmd, f.Err()
}

// strictDecodeRef is strictDecode through a map of the object's keys.
func strictDecodeRef(data []byte, v any, where string) error {
	notObject := errs.Invalid(errs.Field{Field: where, Reason: reasonObject})
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return notObject
	}
	known := jsonFieldsRef(reflect.TypeOf(v).Elem())
	var unknown []string
	for k := range keys {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		var f errs.Fields
		for _, k := range unknown {
			f.Add(k, reasonUnknown)
		}
		return f.Err()
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return errs.Invalid(errs.Field{Field: typeErr.Field, Reason: "must be " + describe(typeErr.Type)})
	}
	return notObject
}

// jsonFieldCacheRef caches the JSON names of the command structs.
var jsonFieldCacheRef sync.Map // reflect.Type -> map[string]bool

// jsonFieldsRef is the set of the JSON names of struct t's fields.
func jsonFieldsRef(t reflect.Type) map[string]bool {
	if m, ok := jsonFieldCacheRef.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	jsonFieldCacheRef.Store(t, m)
	return m
}

// laneOfRef is laneOf decoding the data into a struct.
func laneOfRef(cmd command) string {
	if f := orderOf[cmd.Type]; f != nil {
		return f(cmd)
	}
	var d struct {
		ConversationID string `json:"conversationId"`
	}
	if json.Unmarshal(cmd.Data, &d) != nil || strings.HasPrefix(d.ConversationID, "\x00") {
		return laneNone // the handler refuses the data
	}
	return d.ConversationID
}

// decodeValidRef is decodeValid through strictDecodeRef.
func decodeValidRef[D any, P dataPtr[D]](raw json.RawMessage, required bool) (P, error) {
	d := P(new(D))
	if len(raw) == 0 || isNull(raw) {
		if required {
			return nil, errs.Invalid(errs.Field{Field: "data", Reason: errs.ReasonRequired})
		}
	} else if err := strictDecodeRef(raw, d, "data"); err != nil {
		return nil, err
	}
	var f errs.Fields
	d.validate(&f)
	if err := f.Err(); err != nil {
		return nil, err
	}
	return d, nil
}
