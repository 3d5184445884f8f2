package messaging

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// Requests reach messaging from edges and from internal services alike, so
// every value is checked here again. Field names are the client's (JSON)
// names: the edge passes these errors on as they are.

const (
	maxTitleChars  = 200
	maxClientMsgID = 64
	defaultPage    = 50
	maxPage        = 200
)

var maxClientReason = fmt.Sprintf("must be 1 to %d characters without control characters", maxClientMsgID)

func (s *Service) checkContent(f *errs.Fields, content string) {
	switch {
	case content == "":
		f.Add("content", errs.ReasonRequired)
	case len(content) > s.cfg.MaxContentBytes:
		f.Add("content", fmt.Sprintf("must be at most %d bytes", s.cfg.MaxContentBytes))
	case !utf8.ValidString(content):
		f.Add("content", "must be valid UTF-8")
	}
}

func checkClientMsgID(f *errs.Fields, v string) {
	if v == "" {
		f.Add("clientMsgId", errs.ReasonRequired)
		return
	}
	if utf8.RuneCountInString(v) > maxClientMsgID || !utf8.ValidString(v) {
		f.Add("clientMsgId", maxClientReason)
		return
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			f.Add("clientMsgId", maxClientReason)
			return
		}
	}
}

func checkTitle(f *errs.Fields, v string) {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxTitleChars {
		f.Add("title", fmt.Sprintf("must be at most %d characters of UTF-8", maxTitleChars))
	}
}

// userList validates a list of user ids and returns it without repeats, in
// the order given.
func userList(f *errs.Fields, field string, users []string) []string {
	if !f.IDs(field, users) {
		return nil
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// page turns a requested limit (0: unset) into a page size.
func page(f *errs.Fields, limit uint32) int {
	switch {
	case limit == 0:
		return defaultPage
	case limit > maxPage:
		f.Add("limit", errs.ReasonRange(1, maxPage))
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
