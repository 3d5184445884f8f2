// Package errs is the one typed error of Switchboard: it carries an error
// code of docs/protocol.md, crosses NATS as chatv1.Error and is translated to
// the client's frame in one place (the edge).
package errs

import (
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// Codes of docs/protocol.md section 2.
const (
	CodeValidation      = "validation_failed"
	CodeRateLimited     = "rate_limited"
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// Field is one invalid field of a command.
type Field struct {
	Field  string
	Reason string
}

// Error is a failure a client may see. Message never holds internals
// (subjects, addresses, stack traces) and never reveals whether a resource
// exists in another organization.
type Error struct {
	Code       string
	Message    string
	Fields     []Field
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an Error with code and a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a validation error naming the fields at fault.
func Invalid(fields ...Field) *Error {
	return &Error{Code: CodeValidation, Message: "invalid command", Fields: fields}
}

// NotFound is the error for a conversation or message that does not exist
// for the caller, whatever the reason (including another organization).
func NotFound(what string) *Error { return New(CodeNotFound, "%s not found", what) }

// Forbidden is the error for a caller who may not do what it asked.
func Forbidden(format string, args ...any) *Error { return New(CodeForbidden, format, args...) }

// Unavailable is the error for a backing service that did not answer.
var Unavailable = &Error{Code: CodeUnavailable, Message: "a backing service did not answer; retry with the same clientMsgId"}

// Internal is what a client sees of an unexpected failure; the cause is
// logged, not sent.
var Internal = &Error{Code: CodeInternal, Message: "internal error"}

// As returns err as an *Error, and Internal for anything else.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal
}

// Is reports whether err is an *Error with code.
func Is(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ToProto converts err for a reply on NATS; nil stays nil.
func ToProto(err error) *chatv1.Error {
	if err == nil {
		return nil
	}
	e := As(err)
	p := &chatv1.Error{Code: e.Code, Message: e.Message, RetryAfterMs: e.RetryAfter.Milliseconds()}
	for _, f := range e.Fields {
		p.Fields = append(p.Fields, &chatv1.FieldError{Field: f.Field, Reason: f.Reason})
	}
	return p
}

// FromProto converts a reply's error back; nil stays nil.
func FromProto(p *chatv1.Error) *Error {
	if p == nil {
		return nil
	}
	e := &Error{Code: p.Code, Message: p.Message, RetryAfter: time.Duration(p.RetryAfterMs) * time.Millisecond}
	for _, f := range p.Fields {
		e.Fields = append(e.Fields, Field{Field: f.Field, Reason: f.Reason})
	}
	return e
}
