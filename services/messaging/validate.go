package messaging

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// Requests reach messaging from edges and from internal services alike, so
// every value is checked here again. Field names are the client's (JSON)
// names: the edge passes these errors on as they are.

const (
	maxTitleChars   = 200
	maxClientMsgID  = 64
	defaultPage     = 50
	maxPage         = 200
	idReason        = "must match " + ids.Pattern
	maxClientReason = "must be 1 to 64 characters without control characters"
)

// fields collects field errors.
type fields []errs.Field

func (f *fields) add(field, reason string) { *f = append(*f, errs.Field{Field: field, Reason: reason}) }

func (f *fields) id(field, v string) {
	if !ids.Valid(v) {
		f.add(field, idReason)
	}
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return errs.Invalid(f...)
}

func (s *Service) checkContent(f *fields, content string) {
	switch {
	case content == "":
		f.add("content", "must not be empty")
	case len(content) > s.cfg.MaxContentBytes:
		f.add("content", fmt.Sprintf("must be at most %d bytes", s.cfg.MaxContentBytes))
	case !utf8.ValidString(content):
		f.add("content", "must be valid UTF-8")
	}
}

func checkClientMsgID(f *fields, v string) {
	if v == "" || utf8.RuneCountInString(v) > maxClientMsgID || !utf8.ValidString(v) {
		f.add("clientMsgId", maxClientReason)
		return
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			f.add("clientMsgId", maxClientReason)
			return
		}
	}
}

func checkTitle(f *fields, v string) {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxTitleChars {
		f.add("title", fmt.Sprintf("must be at most %d characters of UTF-8", maxTitleChars))
	}
}

// userList validates a list of user ids and returns it without repeats, in
// the order given.
func userList(f *fields, field string, users []string) []string {
	out := make([]string, 0, len(users))
	for _, u := range users {
		if !ids.Valid(u) {
			f.add(field, "each must match "+ids.Pattern)
			return nil
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// page turns a requested limit (0: unset) into a page size.
func page(f *fields, limit uint32) int {
	switch {
	case limit == 0:
		return defaultPage
	case limit > maxPage:
		f.add("limit", fmt.Sprintf("must be 1 to %d", maxPage))
		return 0
	}
	return int(limit)
}

// isParticipant says whether p may act as a member of c: a participant, or
// an internal service acting as the organization.
func isParticipant(c *chatv1.Conversation, p *chatv1.Principal) bool {
	return p.GetSystem() || slices.Contains(c.GetParticipants(), p.GetUser())
}

var errNotParticipant = errs.Forbidden("not a participant of this conversation")
