package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/jsonscan"
)

// command is a client frame: {"id", "type", "data"}.
type command struct {
	ID   string
	Type string
	Data json.RawMessage
}

// Reasons only the edge gives: about the JSON itself.
const (
	reasonObject  = "must be a JSON object"
	reasonUnknown = "unknown field"
)

// errNotJSON is a text frame that is not JSON at all: closed with 1008.
var errNotJSON = errors.New("frame is not JSON")

const maxCommandID = 64

// decodeCommand parses a frame's envelope, in one pass over the bytes
// (kit/jsonscan). A frame that is not JSON is errNotJSON; a JSON frame that
// is not a valid command is an *errs.Error (validation_failed) whose
// command still carries the id when it had a valid one. The command's Data
// is a slice of msg, which must not change while the command lives (the
// frame reader gives each message a buffer of its own). Keys are read as
// encoding/json reads a map: unescaped, matched exactly, the last of a
// repeated key counting.
func decodeCommand(msg []byte) (command, error) {
	var id, typ, data []byte // the values of the keys, nil when absent
	var unknown []string
	kind := jsonscan.Scan(msg, func(m jsonscan.Member) {
		switch {
		case m.Is("id"):
			id = m.Val
		case m.Is("type"):
			typ = m.Val
		case m.Is("data"):
			data = m.Val
		default:
			unknown = append(unknown, m.Name())
		}
	})
	switch kind {
	case jsonscan.Invalid:
		return command{}, errNotJSON
	case jsonscan.Other:
		return command{}, errs.Invalid(errs.Field{Field: "", Reason: reasonObject})
	}
	var cmd command
	var f errs.Fields
	if id != nil && !isNull(id) {
		if s, ok := jsonString(id); !ok || s == "" || utf8.RuneCountInString(s) > maxCommandID {
			f.Add("id", fmt.Sprintf("must be a string of 1 to %d characters", maxCommandID))
		} else {
			cmd.ID = s
		}
	}
	if len(unknown) > 0 {
		// Unknown fields alone are reported: what else is wrong may only
		// be a misspelling of them.
		return cmd, unknownFields(unknown)
	}
	switch {
	case typ == nil || isNull(typ):
		f.Add("type", errs.ReasonRequired)
	case typ[0] != '"':
		f.Add("type", "must be a string")
	default:
		cmd.Type = commandName(typ)
		if commands[cmd.Type] == nil {
			f.Add("type", "unknown command type")
		}
	}
	cmd.Data = data
	return cmd, f.Err()
}

// unknownFields is the error about unknown keys: each once, sorted.
func unknownFields(keys []string) error {
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var f errs.Fields
	for _, k := range keys {
		f.Add(k, reasonUnknown)
	}
	return f.Err()
}

// jsonString decodes val, a scanned JSON value, when it is a string.
func jsonString(val []byte) (string, bool) {
	if s, ok := jsonscan.PlainString(val); ok {
		return string(s), true
	}
	var s string
	return s, val[0] == '"' && json.Unmarshal(val, &s) == nil
}

// commandNames holds each command type's name, so that a frame's type
// becomes a string without allocating.
var commandNames = sync.OnceValue(func() map[string]string {
	m := make(map[string]string, len(commands))
	for name := range commands {
		m[name] = name
	}
	return m
})

// commandName decodes val, a scanned JSON string, the type of a command.
func commandName(val []byte) string {
	if s, ok := jsonscan.PlainString(val); ok {
		if name, ok := commandNames()[string(s)]; ok {
			return name
		}
	}
	s, _ := jsonString(val)
	return s
}

// decodeData decodes a command's data into v (a pointer to the command's
// struct), strictly: no unknown field, every field of its type.
func decodeData(raw json.RawMessage, v any, required bool) error {
	if len(raw) == 0 || isNull(raw) {
		if required {
			return errs.Invalid(errs.Field{Field: "data", Reason: errs.ReasonRequired})
		}
		return nil
	}
	return strictDecode(raw, v, "data")
}

// commandData is a command's data, which checks its own fields once
// decoded.
type commandData interface{ validate(f *errs.Fields) }

// dataPtr is a pointer to a command's data struct.
type dataPtr[D any] interface {
	*D
	commandData
}

// decodeValid decodes a command's data strictly into a new D and checks it.
func decodeValid[D any, P dataPtr[D]](raw json.RawMessage, required bool) (P, error) {
	d := P(new(D))
	if err := decodeData(raw, d, required); err != nil {
		return nil, err
	}
	var f errs.Fields
	d.validate(&f)
	if err := f.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

// withData is the handler of a command whose data is required: h runs
// with the data decoded and checked.
func withData[D any, P dataPtr[D]](h func(*conn, context.Context, P) (any, error)) handler {
	return dataHandler(h, true)
}

// withOptionalData is withData for a command whose data may be absent.
func withOptionalData[D any, P dataPtr[D]](h func(*conn, context.Context, P) (any, error)) handler {
	return dataHandler(h, false)
}

func dataHandler[D any, P dataPtr[D]](h func(*conn, context.Context, P) (any, error), required bool) handler {
	return func(c *conn, ctx context.Context, cmd command) (any, error) {
		d, err := decodeValid[D, P](cmd.Data, required)
		if err != nil {
			return nil, err
		}
		return h(c, ctx, d)
	}
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// strictDecode decodes a JSON object into v (a pointer to a struct) and
// turns the decoder's complaints into field errors a client can act on.
// Field names match exactly (encoding/json alone would take "Type" for
// "type"); where names the object in errors about the object itself. The
// keys are checked in the pass that checks the text (kit/jsonscan); the
// values are decoded by encoding/json.
func strictDecode(data []byte, v any, where string) error {
	fields := dataFieldsOf(reflect.TypeOf(v).Elem())
	var unknown []string
	var buf [maxPlainMembers]jsonscan.Member
	ms, plain := buf[:0], fields.strings != nil // the members, while setPlainStrings may take them
	kind := jsonscan.Scan(data, func(m jsonscan.Member) {
		if !knownKey(fields.known, m) {
			unknown = append(unknown, m.Name())
		}
		plain = plain && len(ms) < len(buf)
		if plain {
			ms = append(ms, m)
		}
	})
	if kind == jsonscan.Invalid || kind == jsonscan.Other {
		return errs.Invalid(errs.Field{Field: where, Reason: reasonObject})
	}
	if len(unknown) > 0 {
		return unknownFields(unknown)
	}
	if kind == jsonscan.Object && plain && setPlainStrings(ms, fields.strings, v) {
		return nil
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return errs.Invalid(errs.Field{Field: typeErr.Field, Reason: "must be " + describe(typeErr.Type)})
	}
	return errs.Invalid(errs.Field{Field: where, Reason: reasonObject})
}

// knownKey says whether m's key is one of known, without allocating when
// the key is plain.
func knownKey(known map[string]bool, m jsonscan.Member) bool {
	if m.Plain() {
		return known[string(m.Text())]
	}
	return known[m.Name()]
}

// dataFields is what strictDecode knows of a command data struct.
type dataFields struct {
	known map[string]bool // the JSON names of its fields
	// strings maps the JSON name of each field of type string to the
	// field's index; nil when the struct is not simple enough for
	// setPlainStrings (a field untagged, embedded, with tag options or
	// of a name given twice), whose decoding then stays encoding/json's.
	strings map[string]int
}

// dataFieldCache caches the dataFields of the command structs.
var dataFieldCache sync.Map // reflect.Type -> *dataFields

// dataFieldsOf is the dataFields of struct t, made once per type.
func dataFieldsOf(t reflect.Type) *dataFields {
	if d, ok := dataFieldCache.Load(t); ok {
		return d.(*dataFields)
	}
	d := &dataFields{known: map[string]bool{}}
	strs, simple := map[string]int{}, true
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			simple = false
			continue
		}
		if tag != name || sf.Anonymous || !sf.IsExported() || d.known[name] {
			simple = false
		}
		d.known[name] = true
		if sf.Type == reflect.TypeFor[string]() {
			strs[name] = i
		}
	}
	if simple {
		d.strings = strs
	}
	dataFieldCache.Store(t, d)
	return d
}

// maxPlainMembers bounds the members of an object setPlainStrings is
// given: more than a data struct has fields is an object of repeated keys,
// left to encoding/json.
const maxPlainMembers = 8

// setPlainStrings decodes into v (a pointer to a struct whose string
// fields are strs) an object whose every member names one of them with a
// plain string (no escape, valid UTF-8), as encoding/json would: each
// field set to its member's text, the last of a repeated key counting. It
// says false, having set nothing, when the object is not of that kind.
func setPlainStrings(ms []jsonscan.Member, strs map[string]int, v any) bool {
	for _, m := range ms {
		if _, ok := jsonscan.PlainString(m.Val); !ok || m.Form == jsonscan.KeyEscaped {
			return false
		}
		if _, ok := strs[string(m.Text())]; !ok {
			return false
		}
	}
	rv := reflect.ValueOf(v).Elem()
	for _, m := range ms {
		s, _ := jsonscan.PlainString(m.Val)
		rv.Field(strs[string(m.Text())]).SetString(string(s))
	}
	return true
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

// idList checks a required list of ids, which may be empty when allowEmpty.
func idList(f *errs.Fields, field string, vs []string, allowEmpty bool) {
	switch {
	case vs == nil:
		f.Add(field, errs.ReasonRequired)
	case len(vs) == 0 && !allowEmpty:
		f.Add(field, errs.ReasonEmpty)
	default:
		f.IDs(field, vs)
	}
}

// maxPage bounds the limit of a list or history page.
const maxPage = 200

// checkLimit checks an optional page size.
func checkLimit(f *errs.Fields, v *int) {
	if v != nil && (*v < 1 || *v > maxPage) {
		f.Add("limit", errs.ReasonRange(1, maxPage))
	}
}

// pageSize is a checked page size as a request carries it: 0 asks for the
// service's default.
func pageSize(v *int) uint32 {
	if v == nil {
		return 0
	}
	return uint32(*v)
}
