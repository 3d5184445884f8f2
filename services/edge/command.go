package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
)

// command is a client frame: {"id", "type", "data"}.
type command struct {
	ID   string
	Type string
	Data json.RawMessage
}

// errNotJSON is a text frame that is not JSON at all: closed with 1008.
var errNotJSON = errors.New("frame is not JSON")

const maxCommandID = 64

// decodeCommand parses a frame's envelope, in one pass over the bytes. A
// frame that is not JSON is errNotJSON; a JSON frame that is not a valid
// command is an *errs.Error (validation_failed) whose command still
// carries the id when it had a valid one.
func decodeCommand(msg []byte) (command, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(msg, &keys); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return command{}, errs.Invalid(errs.Field{Field: "", Reason: "must be a JSON object"})
		}
		return command{}, errNotJSON
	}
	var cmd command
	var f fieldErrs
	if raw, ok := keys["id"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &cmd.ID) != nil || cmd.ID == "" || utf8.RuneCountInString(cmd.ID) > maxCommandID {
			cmd.ID = ""
			f.add("id", fmt.Sprintf("must be a string of 1 to %d characters", maxCommandID))
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
		var uf fieldErrs
		for _, k := range unknown {
			uf.add(k, "unknown field")
		}
		return cmd, uf.err()
	}
	switch raw, ok := keys["type"]; {
	case !ok || isNull(raw):
		f.add("type", "is required")
	case json.Unmarshal(raw, &cmd.Type) != nil:
		f.add("type", "must be a string")
	case commands[cmd.Type] == nil:
		f.add("type", "unknown command type")
	}
	cmd.Data = keys["data"]
	return cmd, f.err()
}

// decodeData decodes a command's data into v (a pointer to the command's
// struct), strictly: no unknown field, every field of its type.
func decodeData(raw json.RawMessage, v any, required bool) error {
	if len(raw) == 0 || isNull(raw) {
		if required {
			return errs.Invalid(errs.Field{Field: "data", Reason: "is required"})
		}
		return nil
	}
	return strictDecode(raw, v, "data")
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// strictDecode decodes a JSON object into v (a pointer to a struct) and
// turns the decoder's complaints into field errors a client can act on.
// Field names match exactly (encoding/json alone would take "Type" for
// "type"); where names the object in errors about the object itself.
func strictDecode(data []byte, v any, where string) error {
	notObject := errs.Invalid(errs.Field{Field: where, Reason: "must be a JSON object"})
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return notObject
	}
	known := jsonFields(reflect.TypeOf(v).Elem())
	var unknown []string
	for k := range keys {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		var f fieldErrs
		for _, k := range unknown {
			f.add(k, "unknown field")
		}
		return f.err()
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

// jsonFieldCache caches the JSON names of the command structs.
var jsonFieldCache sync.Map // reflect.Type -> map[string]bool

func jsonFields(t reflect.Type) map[string]bool {
	if m, ok := jsonFieldCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	jsonFieldCache.Store(t, m)
	return m
}

func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(describe(t.Elem()), "a ") + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another type"
}

// fieldErrs collects a command's field errors.
type fieldErrs []errs.Field

func (f *fieldErrs) add(field, reason string) {
	*f = append(*f, errs.Field{Field: field, Reason: reason})
}

func (f fieldErrs) err() error {
	if len(f) == 0 {
		return nil
	}
	return errs.Invalid(f...)
}

// id checks a required id field.
func (f *fieldErrs) id(field, v string) {
	switch {
	case v == "":
		f.add(field, "is required")
	case !ids.Valid(v):
		f.add(field, "must match "+ids.Pattern)
	}
}

// ids checks a required, non-empty list of ids.
func (f *fieldErrs) idList(field string, vs []string, allowEmpty bool) {
	if vs == nil && !allowEmpty {
		f.add(field, "is required")
		return
	}
	if len(vs) == 0 && !allowEmpty {
		f.add(field, "must not be empty")
		return
	}
	for _, v := range vs {
		if !ids.Valid(v) {
			f.add(field, "each must match "+ids.Pattern)
			return
		}
	}
}

func (f *fieldErrs) required(field, v string) {
	if v == "" {
		f.add(field, "is required")
	}
}

// limit checks an optional page size.
func (f *fieldErrs) limit(v *int, max int) uint32 {
	if v == nil {
		return 0
	}
	if *v < 1 || *v > max {
		f.add("limit", fmt.Sprintf("must be 1 to %d", max))
		return 0
	}
	return uint32(*v)
}
