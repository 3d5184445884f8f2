package errs

import (
	"fmt"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// Reasons of field errors that more than one service gives: a client reads
// the same reason for the same fault whether the edge or a backend found
// it.
const (
	ReasonRequired = "is required"
	ReasonEmpty    = "must not be empty"
	ReasonID       = "must match " + ids.Pattern
	ReasonEachID   = "each must match " + ids.Pattern
)

// ReasonRange is the reason of a number outside lo to hi.
func ReasonRange(lo, hi int) string { return fmt.Sprintf("must be %d to %d", lo, hi) }

// ReasonAtMost is the reason of a list longer than n, of what ("users").
func ReasonAtMost(n int, what string) string { return fmt.Sprintf("at most %d %s", n, what) }

// Fields collects the field errors of one command; Err makes them one
// validation error. The zero value is empty and ready.
type Fields []Field

// Add records that field is invalid for reason.
func (f *Fields) Add(field, reason string) { *f = append(*f, Field{Field: field, Reason: reason}) }

// Required checks a string that must not be empty.
func (f *Fields) Required(field, v string) {
	if v == "" {
		f.Add(field, ReasonRequired)
	}
}

// ID checks a required id.
func (f *Fields) ID(field, v string) {
	switch {
	case v == "":
		f.Add(field, ReasonRequired)
	case !ids.Valid(v):
		f.Add(field, ReasonID)
	}
}

// IDs checks every id of a list (an empty list passes) and reports whether
// all are valid. The field is named once, however many are not.
func (f *Fields) IDs(field string, vs []string) bool {
	for _, v := range vs {
		if !ids.Valid(v) {
			f.Add(field, ReasonEachID)
			return false
		}
	}
	return true
}

// Err is the validation error naming the fields collected, or nil when
// there are none.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return Invalid(f...)
}
