package messaging

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// Reply sizes (docs/protocol.md, "Reply sizes"). A reply whose items are a
// list the caller bounds only in count (list, history, join's missed) ends
// its page early when the next item would not fit, in two measures:
//
//   - on NATS, as protobuf: nothing larger than the connection's max
//     payload is accepted (nats.go refuses to publish it, and the caller
//     waits out its timeout). A page's items get the max payload less a
//     sixteenth and less the reply's other fields.
//   - at the client, as the JSON frame the edge renders: escaping makes a
//     string up to six times longer (`<` is \u003c), and the frame has to
//     fit the socket's send queue (4 MiB by default). A page's items get
//     Config.ReplyBytes of JSON, counted as the edge renders them.
//
// The first item of a page is always taken, so that paging moves on; New
// checks that the largest event fits any reply with room to spare.

// The JSON sizes follow the edge's rendering (services/edge/render.go and
// conversations.go): each string as encoding/json escapes it, plus an
// allowance for one item's field names, numbers, times and separators. A
// field the edge renders more must be counted here too.
const (
	eventJSONFixed   = 256
	summaryJSONFixed = 224 // with "unread"
	// lastMessageJSONFixed is a summary's lastMessage besides its strings:
	// field names, braces and the time.
	lastMessageJSONFixed = 128
)

// summaryParticipants is how many participant ids a list summary carries.
const summaryParticipants = 100

// The fields of a reply besides its page, in protobuf: has_more; a list's
// cursor (<seq>.<conversation id>); a join's flags and last seq, on top of
// what it measures of its record, markers and typists.
const (
	historyFixedBytes = 8
	listFixedBytes    = 32 + ids.MaxLen
	joinFixedBytes    = 32
)

// budget is what a page's items may still take.
type budget struct {
	wire  int // bytes of protobuf on NATS
	json  int // bytes of JSON in the client's frame
	taken int // items taken
}

// wireLimit is the largest reply this instance sends: the connection's
// max payload less a sixteenth (64 KiB of the default 1 MiB) of margin.
func (s *Service) wireLimit() int {
	mp := int(s.nc.MaxPayload())
	return mp - mp/16
}

// budget is a page's budget in a reply whose other fields take fixed bytes
// of protobuf.
func (s *Service) budget(fixed int) *budget {
	return &budget{wire: s.wireLimit() - fixed, json: s.cfg.ReplyBytes}
}

// fetchBytes is how many stored bytes are worth reading for the page: a
// stored event is no larger than either of its measures.
func (b *budget) fetchBytes() int { return max(1, min(b.wire, b.json)) }

// take counts an item of these sizes and reports whether it fits; the
// first item always does.
func (b *budget) take(wire, json int) bool {
	if b.taken > 0 && (wire > b.wire || json > b.json) {
		return false
	}
	b.wire -= wire
	b.json -= json
	b.taken++
	return true
}

func (b *budget) event(ev *chatv1.Event) bool {
	return b.take(itemSize(proto.Size(ev)), eventJSONSize(ev))
}

func (b *budget) summary(c *chatv1.ConversationSummary) bool {
	json := summaryJSONFixed + jsonStringSize(c.ConversationId) + jsonStringSize(c.Title) + stringsJSONSize(c.Participants)
	if m := c.LastMessage; m != nil {
		json += lastMessageJSONFixed + jsonStringSize(m.MessageId) + jsonStringSize(m.SenderId) + jsonStringSize(m.Content)
	}
	return b.take(itemSize(proto.Size(c)), json)
}

// itemSize is what a message of n bytes takes in a repeated field: its
// tag and length too.
func itemSize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// eventJSONSize bounds ev's frame as the edge renders it.
func eventJSONSize(ev *chatv1.Event) int {
	n := eventJSONFixed + jsonStringSize(ev.ConversationId)
	switch b := ev.Body.(type) {
	case *chatv1.Event_MessageNew:
		m := b.MessageNew
		n += jsonStringSize(m.MessageId) + jsonStringSize(m.SenderId) + jsonStringSize(m.Content) + jsonStringSize(m.ClientMsgId) + jsonStringSize(m.ReplyTo)
		n += attachmentsJSONSize(m.Attachments)
	case *chatv1.Event_MessageEdited:
		m := b.MessageEdited
		n += jsonStringSize(m.MessageId) + jsonStringSize(m.SenderId) + jsonStringSize(m.Content)
	case *chatv1.Event_MessageReacted:
		m := b.MessageReacted
		n += jsonStringSize(m.MessageId) + jsonStringSize(m.UserId) + jsonStringSize(m.Emoji)
	case *chatv1.Event_MessageDeleted:
		n += jsonStringSize(b.MessageDeleted.MessageId) + jsonStringSize(b.MessageDeleted.SenderId)
	case *chatv1.Event_ConversationUpdated:
		n += stringsJSONSize(b.ConversationUpdated.Participants)
	}
	return n
}

// attachmentJSONFixed bounds an attachment's JSON without its strings:
// {"fileId":,"name":,"size":<20 digits>,"contentType":}, and a comma.
const attachmentJSONFixed = 64

// attachmentsJSONSize bounds a message's "attachments" (absent when none).
func attachmentsJSONSize(as []*chatv1.Attachment) int {
	if len(as) == 0 {
		return 0
	}
	n := len(`,"attachments":[]`)
	for _, a := range as {
		n += attachmentJSONFixed + jsonStringSize(a.FileId) + jsonStringSize(a.Name) + jsonStringSize(a.ContentType)
	}
	return n
}

// maxAttachmentsJSON bounds the attachments of any message: names and
// types of 255 bytes, each byte escaped to six.
const maxAttachmentsJSON = 32 + maxAttachments*(attachmentJSONFixed+2*ids.MaxLen+2*6*255+4)

// stringsJSONSize bounds a JSON list of strings.
func stringsJSONSize(ss []string) int {
	n := 2
	for _, s := range ss {
		n += jsonStringSize(s) + 1
	}
	return n
}

// jsonStringSize bounds s as encoding/json writes it (with its default
// HTML escaping), quotes included: `"` and `\` take two bytes; control
// characters, `<`, `>`, `&`, U+2028, U+2029 and each byte of invalid
// UTF-8 at most six.
func jsonStringSize(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// checkReplySizes refuses limits under which the largest event would not
// fit a join reply on NATS next to the conversation's record, markers and
// typists, all of the longest ids.
func (s *Service) checkReplySizes() error {
	id := itemSize(ids.MaxLen)
	perParticipant := 2*id + itemSize(id+2*11) // record and typing; a marker
	fixed := s.cfg.MaxParticipants*perParticipant + 4*maxTitleChars + 1024
	event := max(s.cfg.MaxParticipants*id, s.cfg.MaxContentBytes+maxAttachmentsJSON) + 1024
	if need := fixed + event; need > s.wireLimit() {
		return fmt.Errorf("messaging: %d participants and %d bytes of content need replies of %d bytes; the NATS connection takes %d (max_payload %d less a margin)",
			s.cfg.MaxParticipants, s.cfg.MaxContentBytes, need, s.wireLimit(), s.nc.MaxPayload())
	}
	return nil
}
