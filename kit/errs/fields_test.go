package errs

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestFields(t *testing.T) {
	var none Fields
	none.ID("conversationId", "general")
	none.IDs("userIds", []string{"bob", "carol"})
	none.IDs("userIds", nil)
	none.Required("token", "t")
	if err := none.Err(); err != nil {
		t.Fatalf("valid fields: %v", err)
	}

	var f Fields
	f.ID("conversationId", "")
	f.ID("messageId", "a.b")
	f.ID("userId", strings.Repeat("u", 65))
	if f.IDs("userIds", []string{"bob", "x y", "a*"}) {
		t.Error("IDs reported a list with invalid ids valid")
	}
	f.Required("content", "")
	f.Add("limit", ReasonRange(1, 200))
	f.Add("userIds", ReasonAtMost(200, "users"))
	want := []Field{
		{"conversationId", "is required"},
		{"messageId", "must match ^[A-Za-z0-9_-]{1,64}$"},
		{"userId", "must match ^[A-Za-z0-9_-]{1,64}$"},
		{"userIds", "each must match ^[A-Za-z0-9_-]{1,64}$"},
		{"content", "is required"},
		{"limit", "must be 1 to 200"},
		{"userIds", "at most 200 users"},
	}
	var e *Error
	if err := f.Err(); !errors.As(err, &e) || e.Code != CodeValidation {
		t.Fatalf("Err() = %v, want a %s error", err, CodeValidation)
	}
	if !reflect.DeepEqual(e.Fields, want) {
		t.Fatalf("fields\n %q\nwant\n %q", e.Fields, want)
	}
	// The fields survive a trip over NATS.
	if back := FromProto(ToProto(e)); !reflect.DeepEqual(back.Fields, want) {
		t.Fatalf("after ToProto and FromProto: %q", back.Fields)
	}
}
